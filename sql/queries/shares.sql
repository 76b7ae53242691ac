-- Share links. What a link shows is decided in one place, the view live_share_links and the
-- function share_link_images (migration 0014): every read below goes through them, by the
-- token's digest, in the same statement that reads the image, so a revoked link (its row
-- deleted) shows nothing to any process from the moment the revoke commits.

-- name: insert_share(owner_id, image_id, album_id, digest, prefix, allow_download, expires_in_seconds)^
-- Only the owner's own image or album; none inserted (no row back) otherwise.
insert into share_links (owner_id, image_id, album_id, digest, prefix, allow_download,
                         expires_at)
select :owner_id, :image_id, :album_id, :digest, :prefix, :allow_download,
       now() + make_interval(secs => :expires_in_seconds::integer)
where exists (select 1 from images where id = :image_id::uuid and owner_id = :owner_id)
   or exists (select 1 from albums where id = :album_id::uuid and owner_id = :owner_id)
returning id, image_id, album_id, prefix, allow_download, created_at, expires_at, last_used_at,
          false as expired, true as active;

-- name: list_shares(owner_id, image_id, album_id)
-- The owner's links, newest first; `active` says whether the link shows anything now.
select l.id, l.image_id, l.album_id, l.prefix, l.allow_download, l.created_at, l.expires_at,
       l.last_used_at,
       (l.expires_at is not null and l.expires_at <= now()) as expired,
       exists (select 1 from live_share_links v where v.id = l.id) as active
from share_links l
where l.owner_id = :owner_id
  and (:image_id::uuid is null or l.image_id = :image_id)
  and (:album_id::uuid is null or l.album_id = :album_id)
order by l.created_at desc, l.id desc;

-- name: delete_share(owner_id, share_id)^
delete from share_links
where id = :share_id and owner_id = :owner_id
returning id;

-- name: open_share(digest)^
-- A live link by its token: what it shows, whose it is.
select l.id, l.owner_id, l.image_id, l.album_id, l.allow_download, l.created_at,
       l.expires_at, l.last_used_at, u.username as owner
from live_share_links l
join users u on u.id = l.owner_id
where l.digest = :digest;

-- name: touch_share(share_id)!
-- At most one write a minute per link, however busy it is.
update share_links
set last_used_at = now()
where id = :share_id
  and (last_used_at is null or last_used_at < now() - interval '1 minute');

-- name: shared_image(digest, image_id)^
select v.*
from share_link_images(:digest) s
join image_view v on v.id = s.image_id
where s.image_id = :image_id;

-- name: shared_images(digest, after_position, after_id, limit)
-- The link's images in the album's order, keyset on (position, id): the page is chosen
-- first, so only its rows are joined to their owners.
select v.*, s.position
from (select s.image_id, s.position
      from share_link_images(:digest) s
      where :after_position::integer is null
         or (s.position, s.image_id) > (:after_position::integer, :after_id::uuid)
      order by s.position, s.image_id
      limit :limit) s
join image_view v on v.id = s.image_id
order by s.position, s.image_id;

-- name: shared_image_ids(digest)
-- Every image the link shows: the `within` of a search inside the link.
select s.image_id from share_link_images(:digest) s;

-- name: shared_album(digest)^
-- An album link's album, with how many images the link shows.
select a.id, u.username as owner, a.title, a.description, a.visibility, a.created_at,
       a.updated_at, (select count(*) from share_link_images(:digest))::integer as image_count
from live_share_links l
join albums a on a.id = l.album_id
join users u on u.id = a.owner_id
where l.digest = :digest;
