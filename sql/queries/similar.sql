-- Search by image on the 64-bit pHash. Visibility rule as everywhere: public images, plus the
-- viewer's own, decided on the covering indexes' columns so the probes stay index-only.
-- :query is the query's pHash and :others those of its rotations and flips (or none); an
-- image's distance is the smallest Hamming distance to any of them. Results: (distance, id)
-- ascending, keyset pages. :within (uuid[]) restricts the search to those images (an
-- album's, a share link's); null searches them all.

-- name: similar_probe(query, others, c0, c1, c2, c3, viewer_id, max_distance, exclude_id, q, head, last_word, tag, owner_id, within, after_distance, after_id, limit)
-- Multi-index hashing: four index-only probes with the enumerated chunk values, the exact
-- distance checked on the index tuples themselves (the hash is an INCLUDE column), the few
-- matches then joined to their rows. With a single hash (:others empty) the EXISTS arm folds
-- away when the statement is planned.
with matches as (
    select id, phash from images
    where phash_c0 = any(:c0::int[]) and (visibility = 'public' or owner_id = :viewer_id)
      and (bit_count((phash # :query)::bit(64)) <= :max_distance
           or exists (select from unnest(:others::bigint[]) as h
                      where bit_count((phash # h)::bit(64)) <= :max_distance))
    union
    select id, phash from images
    where phash_c1 = any(:c1::int[]) and (visibility = 'public' or owner_id = :viewer_id)
      and (bit_count((phash # :query)::bit(64)) <= :max_distance
           or exists (select from unnest(:others::bigint[]) as h
                      where bit_count((phash # h)::bit(64)) <= :max_distance))
    union
    select id, phash from images
    where phash_c2 = any(:c2::int[]) and (visibility = 'public' or owner_id = :viewer_id)
      and (bit_count((phash # :query)::bit(64)) <= :max_distance
           or exists (select from unnest(:others::bigint[]) as h
                      where bit_count((phash # h)::bit(64)) <= :max_distance))
    union
    select id, phash from images
    where phash_c3 = any(:c3::int[]) and (visibility = 'public' or owner_id = :viewer_id)
      and (bit_count((phash # :query)::bit(64)) <= :max_distance
           or exists (select from unnest(:others::bigint[]) as h
                      where bit_count((phash # h)::bit(64)) <= :max_distance))
),
scored as (
    select m.id,
           least(bit_count((m.phash # :query)::bit(64)),
                 (select min(bit_count((m.phash # h)::bit(64)))
                  from unnest(:others::bigint[]) as h))::int as distance
    from matches m
)
select v.*, s.distance
from scored s
join images i on i.id = s.id
join image_view v on v.id = s.id
where (:exclude_id::uuid is null or s.id <> :exclude_id)
  and (:q::text is null or i.search_doc @@ image_search_query(:q, :head, :last_word))
  and (:tag::text is null or i.tags @> array[:tag::text])
  and (:owner_id::uuid is null or i.owner_id = :owner_id)
  and (:within::uuid[] is null or s.id in (select unnest(:within::uuid[])))
  and (:after_distance::int is null
       or (s.distance, s.id) > (:after_distance::int, :after_id::uuid))
order by s.distance, s.id
limit :limit;

-- name: similar_scan(query, others, viewer_id, max_distance, exclude_id, q, head, last_word, tag, owner_id, within, after_distance, after_id, limit)
-- Every visible image's distance: for radii where enumerating chunk values would cost more
-- than reading everything (and the baseline of the benchmark).
with scored as (
    select i.id,
           least(bit_count((i.phash # :query)::bit(64)),
                 (select min(bit_count((i.phash # h)::bit(64)))
                  from unnest(:others::bigint[]) as h))::int as distance
    from images i
    where (i.visibility = 'public' or i.owner_id = :viewer_id)
      and (bit_count((i.phash # :query)::bit(64)) <= :max_distance
           or exists (select from unnest(:others::bigint[]) as h
                      where bit_count((i.phash # h)::bit(64)) <= :max_distance))
      and (:exclude_id::uuid is null or i.id <> :exclude_id)
      and (:q::text is null or i.search_doc @@ image_search_query(:q, :head, :last_word))
      and (:tag::text is null or i.tags @> array[:tag::text])
      and (:owner_id::uuid is null or i.owner_id = :owner_id)
      and (:within::uuid[] is null or i.id in (select unnest(:within::uuid[])))
),
page as (
    select * from scored
    where :after_distance::int is null
       or (distance, id) > (:after_distance::int, :after_id::uuid)
    order by distance, id
    limit :limit
)
select v.*, page.distance
from page
join image_view v on v.id = page.id
order by page.distance, page.id;

-- name: get_hashes(viewer_id, image_id)^
select phash, dhash, ahash, whash, colorhash, width, height from images
where id = :image_id and (visibility = 'public' or owner_id = :viewer_id);
