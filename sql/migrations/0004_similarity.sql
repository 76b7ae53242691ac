-- Search by image: exact Hamming search on the 64-bit pHash by multi-index hashing.
-- The hash is split into four 16-bit chunks, each with its own B-tree. Any hash within
-- r = 4r' + a bits of the query agrees within r' bits on one of the first a+1 chunks, or
-- within r'-1 bits on one of the others; the service enumerates those chunk values and the
-- exact distance is verified with bit_count.

alter table images
    add column phash_c0 integer generated always as ((phash >> 48) & 65535) stored,
    add column phash_c1 integer generated always as ((phash >> 32) & 65535) stored,
    add column phash_c2 integer generated always as ((phash >> 16) & 65535) stored,
    add column phash_c3 integer generated always as (phash & 65535) stored;

-- Covering: a probe reads the index alone (index-only scan), the visibility rule included.
create index images_phash_c0 on images (phash_c0) include (phash, id, owner_id, visibility);
create index images_phash_c1 on images (phash_c1) include (phash, id, owner_id, visibility);
create index images_phash_c2 on images (phash_c2) include (phash, id, owner_id, visibility);
create index images_phash_c3 on images (phash_c3) include (phash, id, owner_id, visibility);

-- Index-only scans need a current visibility map: vacuum this table early and often.
alter table images set (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);
