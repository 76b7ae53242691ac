-- Text search. Visibility rule as everywhere: public images, plus the viewer's own.
-- Ranking: ts_rank_cd (title A > tags B > description C); ties newest first, then by id.
-- Keyset pagination on (rank, created_at, id); headlines by image_headline (migration 0009).
-- :within (uuid[]) restricts the search to those images (an album's, a share link's; at most
-- an album's 10,000); null searches them all. search_ranked takes it for rare words (planned
-- for its value, custom plans: with null the arm folds away); search_within for frequent
-- ones, reading the set's rows rather than every match; search_recent never gets a set.
-- The query expression is repeated rather than
-- kept in a CTE: with a custom plan it folds into a constant the planner can estimate.

-- name: estimate_matches(q, head, last_word, in_head)$
-- The planner's estimate of how many images match, in the whole document or (:in_head) in
-- its title and tags: decides which plan answers. Planned for these values (custom plans),
-- the false arm of the OR folds away and the estimate is that of one GIN index.
explain (format json)
select 1 from images
where (not :in_head and search_doc @@ image_search_query(:q, :head, :last_word))
   or (:in_head and search_head @@ image_search_query(:q, :head, :last_word));

-- name: search_ranked(viewer_id, q, head, last_word, in_head, owner_id, tag, visibility, within, created_after, created_before, after_rank, after_created, after_id, limit)
-- Every match is ranked (GIN bitmap scan, then rank them): right while matches are few. With
-- :in_head, only the images matching in their title or tags (the smaller head index and set
-- of rows), ranked on the whole document. The false arm folds away in a custom plan.
with ranked as (
    select i.id, i.created_at, ts_rank_cd(i.search_doc, image_search_query(:q, :head, :last_word)) as rank
    from images i
    where ((not :in_head and i.search_doc @@ image_search_query(:q, :head, :last_word))
           or (:in_head and i.search_head @@ image_search_query(:q, :head, :last_word)))
      and (i.visibility = 'public' or i.owner_id = :viewer_id)
      and (:owner_id::uuid is null or i.owner_id = :owner_id)
      and (:tag::text is null or i.tags @> array[:tag::text])
      and (:visibility::text is null or i.visibility = :visibility)
      and (:within::uuid[] is null or i.id = any(:within::uuid[]))
      and (:created_after::timestamptz is null or i.created_at >= :created_after)
      and (:created_before::timestamptz is null or i.created_at < :created_before)
),
page as (
    select * from ranked
    where :after_rank::real is null
       or (rank, created_at, id) < (:after_rank::real, :after_created::timestamptz, :after_id::uuid)
    order by rank desc, created_at desc, id desc
    limit :limit
)
select v.*, page.rank as score,
       image_headline(v.title, v.description, image_search_query(:q, :head, :last_word))
           as headline
from page
join image_view v on v.id = page.id
order by page.rank desc, page.created_at desc, page.id desc;

-- name: search_recent(viewer_id, q, head, last_word, owner_id, tag, visibility, created_after, created_before, after_rank, after_created, after_id, limit, candidates)
-- For frequent words: rank only the newest :candidates matches (found by walking the
-- created_at index), never all of them.
with candidates as (
    select i.id, i.created_at, i.search_doc
    from images i
    where i.search_doc @@ image_search_query(:q, :head, :last_word)
      and (i.visibility = 'public' or i.owner_id = :viewer_id)
      and (:owner_id::uuid is null or i.owner_id = :owner_id)
      and (:tag::text is null or i.tags @> array[:tag::text])
      and (:visibility::text is null or i.visibility = :visibility)
      and (:created_after::timestamptz is null or i.created_at >= :created_after)
      and (:created_before::timestamptz is null or i.created_at < :created_before)
    order by i.created_at desc, i.id desc
    limit :candidates
),
ranked as (
    select c.id, c.created_at, ts_rank_cd(c.search_doc, image_search_query(:q, :head, :last_word)) as rank
    from candidates c
),
page as (
    select * from ranked
    where :after_rank::real is null
       or (rank, created_at, id) < (:after_rank::real, :after_created::timestamptz, :after_id::uuid)
    order by rank desc, created_at desc, id desc
    limit :limit
)
select v.*, page.rank as score,
       image_headline(v.title, v.description, image_search_query(:q, :head, :last_word))
           as headline
from page
join image_view v on v.id = page.id
order by page.rank desc, page.created_at desc, page.id desc;

-- name: search_within(viewer_id, q, head, last_word, owner_id, tag, visibility, within, created_after, created_before, after_rank, after_created, after_id, limit)
-- Within a set of images (:within, not null), for words frequent in the library: the set's
-- rows are read by id (OFFSET 0 keeps the word match out of that scan, where it would run on
-- every row of a sequential scan), then every match among them is ranked. The cost follows
-- the set's size, never the library's.
with members as (
    select i.id, i.created_at, i.search_doc
    from images i
    where i.id = any(:within::uuid[])
      and (i.visibility = 'public' or i.owner_id = :viewer_id)
      and (:owner_id::uuid is null or i.owner_id = :owner_id)
      and (:tag::text is null or i.tags @> array[:tag::text])
      and (:visibility::text is null or i.visibility = :visibility)
      and (:created_after::timestamptz is null or i.created_at >= :created_after)
      and (:created_before::timestamptz is null or i.created_at < :created_before)
    offset 0
),
ranked as (
    select m.id, m.created_at,
           ts_rank_cd(m.search_doc, image_search_query(:q, :head, :last_word)) as rank
    from members m
    where m.search_doc @@ image_search_query(:q, :head, :last_word)
),
page as (
    select * from ranked
    where :after_rank::real is null
       or (rank, created_at, id) < (:after_rank::real, :after_created::timestamptz, :after_id::uuid)
    order by rank desc, created_at desc, id desc
    limit :limit
)
select v.*, page.rank as score,
       image_headline(v.title, v.description, image_search_query(:q, :head, :last_word))
           as headline
from page
join image_view v on v.id = page.id
order by page.rank desc, page.created_at desc, page.id desc;
