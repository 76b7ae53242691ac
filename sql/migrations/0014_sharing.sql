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

-- The link rule, written once, here: what a live share link shows. A revoked link has no row;
-- an expired one shows nothing; a link stops showing a picture (or album) made private after
-- it was shared: after the link was made, and, in an album, after the picture was added.
create view live_share_links as
select l.*
from share_links l
left join images i on i.id = l.image_id
left join albums a on a.id = l.album_id
where (l.expires_at is null or l.expires_at > now())
  and (i.privatised_at is null or i.privatised_at < l.created_at)
  and (a.privatised_at is null or a.privatised_at < l.created_at);

-- The images a live link shows, with their place (an image link's one image is first).
-- Plain SQL and stable, so the planner inlines it into the query that calls it. The link is
-- found first (one row, by the digest's unique index); an album's images are then excluded
-- only if made private since, which the tiny partial index below answers.
create function share_link_images(link_digest bytea)
returns table (link_id uuid, image_id uuid, "position" integer)
language sql stable
as $$
    with link as materialized (
        select * from live_share_links where digest = link_digest
    )
    select l.id, l.image_id, 1
    from link l
    where l.image_id is not null
    union all
    select l.id, ai.image_id, ai.position
    from link l
    join album_images ai on ai.album_id = l.album_id
    where not exists (select 1 from images i
                      where i.id = ai.image_id
                        and i.privatised_at >= greatest(l.created_at, ai.added_at))
$$;

create index images_privatised on images (id) where privatised_at is not null;
