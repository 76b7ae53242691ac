-- Secrets the service owns, shared by every process and host of a deployment: made by
-- the first process that needs one (sql/queries/system.sql), read by all at start-up.
create table service_secrets (
    name       text primary key,
    secret     bytea not null constraint secret_length check (length(secret) >= 32),
    created_at timestamptz not null default now()
);

-- Password attempts, per subject: a username ('name:alice', the lockout) or a client address
-- ('address:192.0.2.1', the rate that keeps an anonymous flood of bcrypt work away from the
-- hasher). One table and one query serve both; the lockout's table becomes it. Its rows had
-- no prefix: they are dropped (at most 15 minutes of lockout forgotten).
alter table login_failures rename to password_attempts;
alter table password_attempts rename column username_key to subject;
alter table password_attempts rename column failed_at to attempted_at;
alter index login_failures_recent rename to password_attempts_recent;
alter index login_failures_failed_at rename to password_attempts_at;
delete from password_attempts;
