-- Idempotency-Key on POST /images: the first request's answer, kept 24 hours per user and key,
-- so that a retry gets it again instead of storing the files twice. A row without a status is
-- a request in flight: its holder (token) renews lease_until while it runs; a lease that ran
-- out means its process died, and the key may be taken again.
create table idempotency_keys (
    user_id     uuid        not null references users (id) on delete cascade,
    key         text        not null check (length(key) between 1 and 255),
    route       text        not null,
    token       uuid        not null,
    lease_until timestamptz not null,
    fingerprint bytea,
    status      smallint,
    response    text,
    created_at  timestamptz not null default now(),
    primary key (user_id, key)
);

-- "Which of these files do I have already?" (the CLI's resumable import) for one owner.
create index images_owner_sha256 on images (owner_id, sha256);
