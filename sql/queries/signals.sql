-- Robust search by image: the signals (region hashes) of each image, and the probes that
-- find candidates for a query's variants. The probes are exact: every stored signal of a
-- region within :radius bits of a variant of that region is found (multi-index hashing, as
-- in similar.sql); verification happens in the service.

-- name: insert_signals(image_id, regions, phashes, dhashes, thumbs)!
insert into image_signals (image_id, region, phash, dhash, thumb)
select :image_id, r, p, d, t
from unnest(:regions::smallint[], :phashes::bigint[], :dhashes::bigint[], :thumbs::bytea[])
     as s(r, p, d, t)
on conflict (image_id, region) do update
    set phash = excluded.phash, dhash = excluded.dhash, thumb = excluded.thumb;

-- name: signal_candidates(regions, hashes, radii, p0, n0, p1, n1, p2, n2, p3, n3, viewer_id, within)
-- :regions/:hashes/:radii describe the query's variants (1-based position n); :pK/:nK are
-- the chunk-K values to probe and the variant each belongs to. A hit is a stored signal of
-- the variant's region within the variant's radius, checked on the index tuple; each hit is
-- then read whole (dHash, thumbnail) with its image's visibility, for verification; with
-- :within (uuid[]: an album's images, a share link's), only those images; null: all.
with variants as (
    select v.region, v.hash, v.radius, v.n
    from unnest(:regions::smallint[], :hashes::bigint[], :radii::int[])
         with ordinality as v(region, hash, radius, n)
),
hits as (
    select s.image_id, s.region, v.n, bit_count((s.phash # v.hash)::bit(64))::int as distance
    from unnest(:p0::int[], :n0::int[]) as p(value, n)
    join variants v on v.n = p.n
    join image_signals s on s.region = v.region and s.c0 = p.value
    where bit_count((s.phash # v.hash)::bit(64)) <= v.radius
    union all
    select s.image_id, s.region, v.n, bit_count((s.phash # v.hash)::bit(64))::int as distance
    from unnest(:p1::int[], :n1::int[]) as p(value, n)
    join variants v on v.n = p.n
    join image_signals s on s.region = v.region and s.c1 = p.value
    where bit_count((s.phash # v.hash)::bit(64)) <= v.radius
    union all
    select s.image_id, s.region, v.n, bit_count((s.phash # v.hash)::bit(64))::int as distance
    from unnest(:p2::int[], :n2::int[]) as p(value, n)
    join variants v on v.n = p.n
    join image_signals s on s.region = v.region and s.c2 = p.value
    where bit_count((s.phash # v.hash)::bit(64)) <= v.radius
    union all
    select s.image_id, s.region, v.n, bit_count((s.phash # v.hash)::bit(64))::int as distance
    from unnest(:p3::int[], :n3::int[]) as p(value, n)
    join variants v on v.n = p.n
    join image_signals s on s.region = v.region and s.c3 = p.value
    where bit_count((s.phash # v.hash)::bit(64)) <= v.radius
)
select distinct on (h.image_id, h.region, h.n)
       h.image_id, h.region, h.n::int as variant, h.distance, s.dhash, s.thumb
from hits h
join image_signals s on s.image_id = h.image_id and s.region = h.region
join images i on i.id = h.image_id
where (i.visibility = 'public' or i.owner_id = :viewer_id)
  and (:within::uuid[] is null or h.image_id in (select unnest(:within::uuid[])))
order by h.image_id, h.region, h.n;

-- name: signals_of(viewer_id, image_id)
-- A stored image's own signals (for "similar to this one"), if the viewer may see it.
select s.region, s.phash, s.dhash, s.thumb
from image_signals s
join images i on i.id = s.image_id
where s.image_id = :image_id and (i.visibility = 'public' or i.owner_id = :viewer_id)
order by s.region;

-- name: images_to_rehash(version, features_version, after_id, limit)
-- The next images whose hashes and signals come from an older pipeline, or whose local
-- features are missing or older, in id order (resumable).
select i.id, i.storage_key, i.content_type
from images i
left join image_features f on f.image_id = i.id
where (i.hash_version < :version or f.image_id is null or f.version < :features_version)
  and (:after_id::uuid is null or i.id > :after_id)
order by i.id
limit :limit;

-- name: count_to_rehash(version, features_version)$
select count(*)
from images i
left join image_features f on f.image_id = i.id
where i.hash_version < :version or f.image_id is null or f.version < :features_version;

-- name: set_hash_version(image_id, version, phash, dhash, ahash, whash, colorhash)!
update images
set hash_version = :version, phash = :phash, dhash = :dhash, ahash = :ahash, whash = :whash,
    colorhash = :colorhash
where id = :image_id;

-- name: any_unsignalled()$
-- Whether some image still lacks signals (the old whole-picture search then covers it).
select exists (select from images where hash_version < 2);

-- name: visible_images(ids, viewer_id, exclude_id, q, head, last_word, tag, owner_id, within)
-- The rows of matched images that the viewer may see and that pass the filters.
select v.*
from image_view v
join images i on i.id = v.id
where v.id = any(:ids::uuid[])
  and (v.visibility = 'public' or v.owner_id = :viewer_id)
  and (:exclude_id::uuid is null or v.id <> :exclude_id)
  and (:q::text is null or i.search_doc @@ image_search_query(:q, :head, :last_word))
  and (:tag::text is null or v.tags @> array[:tag::text])
  and (:owner_id::uuid is null or v.owner_id = :owner_id)
  and (:within::uuid[] is null or v.id in (select unnest(:within::uuid[])));
