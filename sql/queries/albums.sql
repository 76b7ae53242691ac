-- Albums (issue 26): an owner's own images, in an order.
--
-- Visibility rule, in every read: an album is seen if it is public or the viewer's own; an
-- image in it is seen by the images' rule (public images, plus the viewer's own). So a public
-- album shows others only its public images. :viewer_id is null for anonymous callers.
-- Changes are the owner's only (owner_id = :owner_id), and an album holds only its owner's
-- images: every insert selects the image from images where owner_id = :owner_id.

-- name: insert_album(owner_id, title, description, visibility)$
insert into albums (owner_id, title, description, visibility)
values (:owner_id, :title, :description, :visibility)
returning id;

-- name: get_album(viewer_id, album_id)^
-- The album as this viewer sees it: image_count and the cover count only the images the
-- viewer may see.
select a.id, a.owner_id, u.username as owner, a.title, a.description, a.visibility,
       a.created_at, a.updated_at,
       (select count(*)
        from album_images ai
        join images i on i.id = ai.image_id
        where ai.album_id = a.id
          and (i.visibility = 'public' or i.owner_id = :viewer_id))::int as image_count,
       (select ai.image_id
        from album_images ai
        join images i on i.id = ai.image_id
        where ai.album_id = a.id
          and (i.visibility = 'public' or i.owner_id = :viewer_id)
        order by ai.position
        limit 1) as cover_id
from albums a
join users u on u.id = a.owner_id
where a.id = :album_id
  and (a.visibility = 'public' or a.owner_id = :viewer_id);

-- name: list_albums(viewer_id, owner_id, after_created, after_id, limit)
-- Newest first; keyset pagination on (created_at, id) after the cursor's row.
select a.id, a.owner_id, u.username as owner, a.title, a.description, a.visibility,
       a.created_at, a.updated_at,
       (select count(*)
        from album_images ai
        join images i on i.id = ai.image_id
        where ai.album_id = a.id
          and (i.visibility = 'public' or i.owner_id = :viewer_id))::int as image_count,
       (select ai.image_id
        from album_images ai
        join images i on i.id = ai.image_id
        where ai.album_id = a.id
          and (i.visibility = 'public' or i.owner_id = :viewer_id)
        order by ai.position
        limit 1) as cover_id
from albums a
join users u on u.id = a.owner_id
where (a.visibility = 'public' or a.owner_id = :viewer_id)
  and (:owner_id::uuid is null or a.owner_id = :owner_id)
  and (:after_created::timestamptz is null
       or (a.created_at, a.id) < (:after_created::timestamptz, :after_id::uuid))
order by a.created_at desc, a.id desc
limit :limit;

-- name: update_album(owner_id, album_id, title, description, visibility)$
-- null leaves a field as it is. Making a public album private stamps privatised_at: share
-- links made before then show nothing (shares.sql).
update albums
set title         = coalesce(:title, title),
    description   = coalesce(:description, description),
    privatised_at = case when :visibility::text = 'private' and visibility = 'public'
                         then now() else privatised_at end,
    visibility    = coalesce(:visibility, visibility),
    updated_at    = now()
where id = :album_id
  and owner_id = :owner_id
returning id;

-- name: delete_album(owner_id, album_id)$
-- Its album_images rows go by cascade; the images stay.
delete from albums
where id = :album_id
  and owner_id = :owner_id
returning id;

-- name: list_album_images(viewer_id, album_id, after_position, limit)
-- Album order; keyset pagination on position. The album's rule is checked here too, so the
-- listing never leans on an earlier check.
select v.*, ai.position as album_position
from album_images ai
join albums a on a.id = ai.album_id
join image_view v on v.id = ai.image_id
where ai.album_id = :album_id
  and (a.visibility = 'public' or a.owner_id = :viewer_id)
  and (v.visibility = 'public' or v.owner_id = :viewer_id)
  and (:after_position::int is null or ai.position > :after_position)
order by ai.position
limit :limit;

-- name: visible_album_image_ids(viewer_id, album_id)^
-- For search within an album: the ids of its images this viewer may see (the `within`
-- filter of search.sql, similar.sql, signals.sql and features.sql); no row when the viewer
-- may not see the album.
select a.id,
       array(select ai.image_id
             from album_images ai
             join images i on i.id = ai.image_id
             where ai.album_id = a.id
               and (i.visibility = 'public' or i.owner_id = :viewer_id)
             order by ai.position) as image_ids
from albums a
where a.id = :album_id
  and (a.visibility = 'public' or a.owner_id = :viewer_id);

-- name: lock_album(owner_id, album_id)$
-- Every change to an album's images holds its row first, so concurrent adds and moves wait
-- their turn. Alone in its statement: a statement that waited for the lock still reads
-- with the snapshot it started with, so what the album holds is read by the next one.
select id
from albums
where id = :album_id
  and owner_id = :owner_id
for update;

-- name: album_size(album_id)^
-- How many images the album holds, and its last position (read once its row is held).
select count(*)::int as image_count, coalesce(max(position), 0) as last_position
from album_images
where album_id = :album_id;

-- name: album_members(album_id, ids)
-- Which of these images the album holds already.
select image_id
from album_images
where album_id = :album_id
  and image_id = any(:ids::uuid[]);

-- name: own_images(owner_id, ids)
-- Which of these ids are the owner's images (others' and unknown ones: not found alike).
select id
from images
where id = any(:ids::uuid[])
  and owner_id = :owner_id;

-- name: album_position(album_id, image_id)$
select position from album_images where album_id = :album_id and image_id = :image_id;

-- name: append_album_images(owner_id, album_id, ids, last_position)!
-- The owner's images among :ids go to the end, in the order given: new ones are added,
-- ones already there move. Nobody else's position changes.
with wanted as (
    select i.id, row_number() over (order by w.n) as n
    from unnest(:ids::uuid[]) with ordinality as w(id, n)
    join images i on i.id = w.id and i.owner_id = :owner_id
)
insert into album_images (album_id, image_id, position)
select :album_id, w.id, :last_position + w.n
from wanted w
on conflict (album_id, image_id) do update set position = excluded.position;

-- name: insert_album_images_before(owner_id, album_id, ids, before)!
-- The owner's images among :ids go just before :before, in the order given; every image of
-- the album is renumbered 1..n (the others keep their order).
with wanted as (
    select i.id, w.n
    from unnest(:ids::uuid[]) with ordinality as w(id, n)
    join images i on i.id = w.id and i.owner_id = :owner_id
),
anchor as (
    select position from album_images where album_id = :album_id and image_id = :before
),
ordered as (
    select ai.image_id as id,
           case when ai.position < (select position from anchor) then 0 else 2 end as part,
           ai.position::bigint as k
    from album_images ai
    where ai.album_id = :album_id
      and ai.image_id not in (select id from wanted)
    union all
    select id, 1, n from wanted
),
renumbered as (
    select id, row_number() over (order by part, k)::int as position from ordered
)
insert into album_images (album_id, image_id, position)
select :album_id, r.id, r.position
from renumbered r
on conflict (album_id, image_id) do update set position = excluded.position
    where album_images.position <> excluded.position;

-- name: renumber_album(album_id)!
-- Positions 1..n in album order (when appending would run past what an integer holds).
update album_images ai
set position = r.position
from (select image_id, row_number() over (order by position)::int as position
      from album_images where album_id = :album_id) r
where ai.album_id = :album_id
  and ai.image_id = r.image_id
  and ai.position <> r.position;

-- name: remove_album_images(owner_id, album_id, ids)
delete from album_images ai
using albums a
where ai.album_id = :album_id
  and a.id = ai.album_id
  and a.owner_id = :owner_id
  and ai.image_id = any(:ids::uuid[])
returning ai.image_id;

-- name: touch_album(album_id)!
update albums set updated_at = now() where id = :album_id;
