-- name: ping()$
-- Readiness probe: one round trip to the database.
select 1;
