-- Accounts and API keys. Neither passwords nor keys are stored in a readable form:
-- passwords as bcrypt hashes, keys as SHA-256 digests.

create table users (
    id            uuid primary key default gen_random_uuid(),
    username      text not null
                  constraint username_format check (username ~ '^[A-Za-z0-9_.-]{3,32}$'),
    password_hash text not null
                  constraint password_hash_is_bcrypt check (password_hash like '$2_$%'),
    created_at    timestamptz not null default now()
);
-- Names are unique without regard to case; the display form keeps the case given.
create unique index users_username_lower on users (lower(username));

create table api_keys (
    id           uuid primary key default gen_random_uuid(),
    user_id      uuid not null references users (id) on delete cascade,
    name         text not null default '' constraint name_length check (length(name) <= 100),
    prefix       text not null,
    digest       bytea not null constraint digest_is_sha256 check (length(digest) = 32),
    created_at   timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
-- Authentication is one lookup by digest.
create unique index api_keys_digest on api_keys (digest);
create index api_keys_user on api_keys (user_id, created_at);

-- Failed password checks, per lower-cased username, for the brute-force lockout.
-- Kept in PostgreSQL so that the limit holds across processes.
create table login_failures (
    username_key text not null,
    failed_at    timestamptz not null default now()
);
create index login_failures_recent on login_failures (username_key, failed_at);
-- For pruning expired rows of every name.
create index login_failures_failed_at on login_failures (failed_at);
