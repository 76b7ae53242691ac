-- Secrets the service owns, shared by every process and host of a deployment: made by
-- the first process that needs one (sql/queries/system.sql), read by all at start-up.
create table service_secrets (
    name       text primary key,
    secret     bytea not null constraint secret_length check (length(secret) >= 32),
    created_at timestamptz not null default now()
);

-- Password attempts per client address (sign-up, HTTP Basic): an anonymous flood of
-- bcrypt work is refused before it reaches the hasher. Kept in PostgreSQL so the limit
-- holds across processes.
create table password_attempts (
    address      text not null,
    attempted_at timestamptz not null default now()
);
create index password_attempts_recent on password_attempts (address, attempted_at);
create index password_attempts_at on password_attempts (attempted_at);
