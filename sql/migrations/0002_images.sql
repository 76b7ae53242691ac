-- Images: metadata and perceptual hashes; the original bytes live in object storage
-- under storage_key (a random UUID, never the client's file name).

create table images (
    id           uuid primary key default gen_random_uuid(),
    owner_id     uuid not null references users (id) on delete cascade,
    title        text not null default '' constraint title_length check (length(title) <= 200),
    description  text not null default ''
                 constraint description_length check (length(description) <= 5000),
    tags         text[] not null default '{}'
                 constraint tags_count check (cardinality(tags) <= 30),
    visibility   text not null default 'private'
                 constraint visibility_value check (visibility in ('private', 'public')),
    filename     text not null default '',
    content_type text not null,
    width        integer not null check (width > 0),
    height       integer not null check (height > 0),
    size_bytes   bigint not null check (size_bytes >= 0),
    sha256       bytea not null constraint sha256_length check (length(sha256) = 32),
    -- 64-bit perceptual hashes as signed bigints (two's complement); colorhash as hex.
    phash        bigint not null,
    dhash        bigint not null,
    ahash        bigint not null,
    whash        bigint not null,
    colorhash    text not null,
    -- Which hashing pipeline produced the hashes, so a later one can re-hash old rows.
    hash_version smallint not null,
    storage_key  text not null unique,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);

-- Listing: newest first, keyset on (created_at, id); one index for "mine", one for public.
create index images_owner_created on images (owner_id, created_at desc, id desc);
create index images_public_created on images (created_at desc, id desc)
    where visibility = 'public';
create index images_tags on images using gin (tags);

-- What the API shows of an image: the row with its owner's name.
create view image_view as
select i.*, u.username as owner
from images i
join users u on u.id = i.owner_id;
