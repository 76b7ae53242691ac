-- Copy detection by local features (issue 22; docs/copy-study.md, docs/retrieval-study.md):
-- each stored picture's ORB features, for verification, and an inverted file of their keys
-- (sampled descriptor bits), for finding the candidates. One row of features per image, read
-- only for the few candidates of a query; `seq` is a dense number that the postings store
-- instead of the 16-byte uuid.
create table image_features (
    seq         int4 generated always as identity primary key,
    image_id    uuid not null unique references images (id) on delete cascade,
    version     smallint not null,
    width       smallint not null,   -- of the working image the points are in
    height      smallint not null,
    points      bytea not null,      -- n x (x, y) uint16 little-endian, in half pixels
    descriptors bytea not null,      -- n x 32 bytes (ORB)
    thumb       bytea not null,      -- 16 x 16 gray levels of the working image
    constraint features_paired check (length(descriptors) = 8 * length(points)),
    constraint features_thumb_16x16 check (length(thumb) = 256)
);
-- Descriptors do not compress: skip pglz, keep them out of line only when large.
alter table image_features alter column points set storage external,
                           alter column descriptors set storage external;

-- The inverted file, merged: one row per key with the image numbers holding it (~5 bytes a
-- posting, where one row per posting would cost ~50).
create table feature_postings (
    key  int4 primary key,
    df   int4 not null,
    seqs int4[] not null
);

-- Postings of new images, appended by each upload (rewriting ~250 arrays per upload would
-- not scale) and folded into feature_postings in batches (services/postings.py). Queries read
-- both, so a picture is findable from every process as soon as its upload is committed.
create table feature_postings_recent (
    key int4 not null,
    seq int4 not null
);
create index feature_postings_recent_key on feature_postings_recent (key) include (seq);

alter table feature_postings_recent set (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);
