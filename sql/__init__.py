"""SQL shipped with the server: numbered migrations and named queries (package data)."""
