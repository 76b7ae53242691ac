-- Thumbnails stored beside each original: one row per stored object, so that deletion,
-- the sweep and the backfill can find every one. A size missing here is made on request.
create table image_thumbnails (
    image_id   uuid        not null references images (id) on delete cascade,
    size       smallint    not null check (size > 0),  -- the long side asked for, in px
    storage_key text       not null unique,
    width      integer     not null check (width > 0),
    height     integer     not null check (height > 0),
    size_bytes integer     not null check (size_bytes > 0),
    sha256     bytea       not null check (length(sha256) = 32),
    version    smallint    not null,  -- the pipeline that made it (THUMBNAIL_VERSION)
    created_at timestamptz not null default now(),
    primary key (image_id, size)
);
