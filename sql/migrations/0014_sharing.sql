-- Sharing (issue 26): albums, and share links to one image or one album.
--
-- Albums hold their owner's own images, in an order; deleting an album never deletes an
-- image, and deleting an image takes it out of every album (cascade).
create table albums (
    id            uuid primary key default gen_random_uuid(),
    owner_id      uuid not null references users (id) on delete cascade,
    title         text not null
                  constraint album_title_length check (length(title) between 1 and 200),
    description   text not null default ''
                  constraint album_description_length check (length(description) <= 5000),
    visibility    text not null default 'private'
                  constraint album_visibility_value check (visibility in ('private', 'public')),
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    -- When the album was last made private: links made before then show nothing.
    privatised_at timestamptz
);

-- Listing, newest first, keyset on (created_at, id): one index for "mine", one for public.
create index albums_owner_created on albums (owner_id, created_at desc, id desc);
create index albums_public_created on albums (created_at desc, id desc)
    where visibility = 'public';

create table album_images (
    album_id  uuid not null references albums (id) on delete cascade,
    image_id  uuid not null references images (id) on delete cascade,
    -- The album's order: ascending; gaps are fine, ties never happen within one album.
    position  integer not null,
    added_at  timestamptz not null default now(),
    primary key (album_id, image_id)
);
create index album_images_order on album_images (album_id, position);
create index album_images_image on album_images (image_id);

-- When the image was last made private: share links made before then no longer show it
-- (nor do album links for an image added to the album before then).
alter table images add column privatised_at timestamptz;

-- A share link: an unguessable token (shown once; only its SHA-256 digest is kept) that
-- shows one image or one album to whoever holds it. Revoking deletes the row.
create table share_links (
    id             uuid primary key default gen_random_uuid(),
    owner_id       uuid not null references users (id) on delete cascade,
    image_id       uuid references images (id) on delete cascade,
    album_id       uuid references albums (id) on delete cascade,
    digest         bytea not null unique
                   constraint share_digest_length check (length(digest) = 32),
    prefix         text not null,
    allow_download boolean not null default false,
    created_at     timestamptz not null default now(),
    expires_at     timestamptz
                   constraint share_expires_after_creation check (expires_at > created_at),
    last_used_at   timestamptz,
    constraint share_target check (num_nonnulls(image_id, album_id) = 1)
);
create index share_links_owner_created on share_links (owner_id, created_at desc, id desc);
create index share_links_image on share_links (image_id) where image_id is not null;
create index share_links_album on share_links (album_id) where album_id is not null;
