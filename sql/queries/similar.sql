-- Search by image on the 64-bit pHash. Visibility rule as everywhere: public images, plus the
-- viewer's own, decided on the covering indexes' columns so the probes stay index-only.
-- :hashes holds the query's pHash (or its 8 rotations and flips); an image's distance is the
-- smallest Hamming distance to any of them. Results: (distance, id) ascending, keyset pages.

-- name: similar_probe(hashes, c0, c1, c2, c3, viewer_id, max_distance, exclude_id, q, head, last_word, tag, owner_id, after_distance, after_id, limit)
-- Multi-index hashing: four index-only probes with the enumerated chunk values, exact
-- distances verified with bit_count, the few matches joined to their rows.
with candidates as (
    select id, phash from images
    where phash_c0 = any(:c0::int[]) and (visibility = 'public' or owner_id = :viewer_id)
    union all
    select id, phash from images
    where phash_c1 = any(:c1::int[]) and (visibility = 'public' or owner_id = :viewer_id)
    union all
    select id, phash from images
    where phash_c2 = any(:c2::int[]) and (visibility = 'public' or owner_id = :viewer_id)
    union all
    select id, phash from images
    where phash_c3 = any(:c3::int[]) and (visibility = 'public' or owner_id = :viewer_id)
),
scored as (
    select c.id, d.distance
    from candidates c
    cross join lateral (
        select min(bit_count((c.phash # h)::bit(64)))::int as distance
        from unnest(:hashes::bigint[]) as h
    ) as d
    where d.distance <= :max_distance
),
matches as (
    select distinct id, distance from scored
)
select v.*, m.distance
from matches m
join images i on i.id = m.id
join image_view v on v.id = m.id
where (:exclude_id::uuid is null or m.id <> :exclude_id)
  and (:q::text is null or i.search_doc @@ image_search_query(:q, :head, :last_word))
  and (:tag::text is null or i.tags @> array[:tag::text])
  and (:owner_id::uuid is null or i.owner_id = :owner_id)
  and (:after_distance::int is null
       or (m.distance, m.id) > (:after_distance::int, :after_id::uuid))
order by m.distance, m.id
limit :limit;

-- name: similar_scan(hashes, viewer_id, max_distance, exclude_id, q, head, last_word, tag, owner_id, after_distance, after_id, limit)
-- Every visible image's distance: for radii where enumerating chunk values would cost more
-- than reading everything (and the baseline of the benchmark).
with scored as (
    select i.id, d.distance
    from images i
    cross join lateral (
        select min(bit_count((i.phash # h)::bit(64)))::int as distance
        from unnest(:hashes::bigint[]) as h
    ) as d
    where (i.visibility = 'public' or i.owner_id = :viewer_id)
      and d.distance <= :max_distance
      and (:exclude_id::uuid is null or i.id <> :exclude_id)
      and (:q::text is null or i.search_doc @@ image_search_query(:q, :head, :last_word))
      and (:tag::text is null or i.tags @> array[:tag::text])
      and (:owner_id::uuid is null or i.owner_id = :owner_id)
      and (:after_distance::int is null
           or (d.distance, i.id) > (:after_distance::int, :after_id::uuid))
    order by d.distance, i.id
    limit :limit
)
select v.*, s.distance
from scored s
join image_view v on v.id = s.id
order by s.distance, s.id;

-- name: get_phash(viewer_id, image_id)$
select phash from images
where id = :image_id and (visibility = 'public' or owner_id = :viewer_id);
