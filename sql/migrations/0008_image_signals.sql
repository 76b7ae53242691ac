-- Search by image that survives real edits (crops, captions, borders, small rotations):
-- several signals per image, one row each, every one a 64-bit pHash of a region of the
-- picture (the whole picture with uniform borders trimmed, its centre, a square at each
-- corner), searched by the same multi-index probes as images.phash. The dHash and a 16x16
-- gray thumbnail of the same region verify a candidate before it is answered.
create table image_signals (
    image_id uuid not null references images (id) on delete cascade,
    -- 0 whole (trimmed), 1 centre, 2 top-left, 3 top-right, 4 bottom-left, 5 bottom-right
    region   smallint not null constraint region_known check (region between 0 and 5),
    phash    bigint not null,
    dhash    bigint not null,
    thumb    bytea not null constraint thumb_16x16 check (length(thumb) = 256),
    c0 integer generated always as ((phash >> 48) & 65535) stored,
    c1 integer generated always as ((phash >> 32) & 65535) stored,
    c2 integer generated always as ((phash >> 16) & 65535) stored,
    c3 integer generated always as (phash & 65535) stored,
    primary key (image_id, region)
);

-- A query's variant of one region is compared only with that region: the region leads the
-- key, so a probe reads one region's index tuples (covering: index-only, distance checked
-- on the tuple itself).
create index image_signals_c0 on image_signals (region, c0) include (phash, image_id);
create index image_signals_c1 on image_signals (region, c1) include (phash, image_id);
create index image_signals_c2 on image_signals (region, c2) include (phash, image_id);
create index image_signals_c3 on image_signals (region, c3) include (phash, image_id);

alter table image_signals set (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);

-- Images whose signals are still to be computed (`python -m server rehash`): few, and
-- found at once.
create index images_to_rehash on images (hash_version, id) where hash_version < 2;
