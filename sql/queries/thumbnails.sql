-- name: insert_thumbnail(image_id, size, storage_key, width, height, size_bytes, sha256, version)$
-- A thumbnail made twice at once (two first requests) keeps the first: null for the second,
-- whose caller removes its own object and serves the stored one.
insert into image_thumbnails (image_id, size, storage_key, width, height, size_bytes, sha256,
                              version)
values (:image_id, :size, :storage_key, :width, :height, :size_bytes, :sha256, :version)
on conflict (image_id, size) do nothing
returning storage_key;

-- name: get_thumbnail(image_id, size)^
select storage_key, width, height, size_bytes, sha256, version
from image_thumbnails
where image_id = :image_id and size = :size;

-- name: delete_thumbnail(image_id, size, storage_key)!
-- Only the row naming this object: a row that points at a lost object is remade on request.
delete from image_thumbnails
where image_id = :image_id and size = :size and storage_key = :storage_key;

-- name: images_without_thumbnail(size, after_id, limit)
-- The backfill's batches: images lacking this size, in id order after the last batch.
select i.id, i.storage_key, i.content_type
from images i
where not exists (select from image_thumbnails t where t.image_id = i.id and t.size = :size)
  and (:after_id::uuid is null or i.id > :after_id)
order by i.id
limit :limit;

-- name: count_without_thumbnail(size)$
select count(*)
from images i
where not exists (select from image_thumbnails t where t.image_id = i.id and t.size = :size);
