-- name: ping()$
-- Readiness probe: one round trip to the database.
select 1;

-- name: service_secret(name)$
-- The named secret, made on first use. gen_random_uuid() draws from PostgreSQL's strong
-- random source: two give 244 random bits. A process that loses the race to make it gets
-- NULL (the winner's row is not in its snapshot) and asks again.
with made as (
    insert into service_secrets (name, secret)
    values (:name, uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
    on conflict (name) do nothing
    returning secret
)
select secret from made
union all
select secret from service_secrets where name = :name
limit 1;
