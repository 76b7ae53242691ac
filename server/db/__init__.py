"""PostgreSQL access: the pool, the migration runner and the named queries."""
