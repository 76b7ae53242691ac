-- Visibility rule, in every read: public images, plus the viewer's own.
-- :viewer_id is null for anonymous callers.

-- name: insert_image(owner_id, title, description, tags, visibility, filename, content_type, width, height, size_bytes, sha256, phash, dhash, ahash, whash, colorhash, hash_version, storage_key, public_storage_key, public_size_bytes, public_sha256)$
insert into images (owner_id, title, description, tags, visibility, filename, content_type,
                    width, height, size_bytes, sha256, phash, dhash, ahash, whash, colorhash,
                    hash_version, storage_key, public_storage_key, public_size_bytes,
                    public_sha256)
values (:owner_id, :title, :description, :tags, :visibility, :filename, :content_type,
        :width, :height, :size_bytes, :sha256, :phash, :dhash, :ahash, :whash, :colorhash,
        :hash_version, :storage_key, :public_storage_key, :public_size_bytes, :public_sha256)
returning id;

-- name: get_images_by_ids(ids)
select *
from image_view
where id = any(:ids::uuid[])
order by array_position(:ids::uuid[], id);

-- name: get_image(viewer_id, image_id)^
select *
from image_view
where id = :image_id
  and (visibility = 'public' or owner_id = :viewer_id);

-- name: list_images(viewer_id, owner_id, tag, visibility, after_created, after_id, limit)
-- Newest first; keyset pagination on (created_at, id) after the cursor's row.
select *
from image_view
where (visibility = 'public' or owner_id = :viewer_id)
  and (:owner_id::uuid is null or owner_id = :owner_id)
  and (:tag::text is null or tags @> array[:tag::text])
  and (:visibility::text is null or visibility = :visibility)
  and (:after_created::timestamptz is null
       or (created_at, id) < (:after_created::timestamptz, :after_id::uuid))
order by created_at desc, id desc
limit :limit;

-- name: update_image(owner_id, image_id, title, description, tags, visibility)^
-- null leaves a field as it is. (SET's right-hand sides read the row as it was.)
update images
set title       = coalesce(:title, title),
    description = coalesce(:description, description),
    tags        = coalesce(:tags, tags),
    visibility  = coalesce(:visibility, visibility),
    -- Made private again: every share link made before now stops showing it.
    privatised_at = case when visibility = 'public' and :visibility = 'private' then now()
                         else privatised_at end,
    updated_at  = now()
where id = :image_id
  and owner_id = :owner_id
returning id;

-- name: delete_image(owner_id, image_id)^
-- The thumbnails' rows go by cascade; RETURNING still sees them, to name their objects.
delete from images
where id = :image_id
  and owner_id = :owner_id
returning storage_key, public_storage_key,
          array(select t.storage_key from image_thumbnails t where t.image_id = images.id)
              as thumbnail_keys;

-- name: delete_images(owner_id, ids)
delete from images
where id = any(:ids::uuid[])
  and owner_id = :owner_id
returning id, storage_key, public_storage_key,
          array(select t.storage_key from image_thumbnails t where t.image_id = images.id)
              as thumbnail_keys;

-- name: delete_all_images(owner_id)
delete from images
where owner_id = :owner_id
returning storage_key, public_storage_key,
          array(select t.storage_key from image_thumbnails t where t.image_id = images.id)
              as thumbnail_keys;

-- name: get_user_id(username_key)$
select id from users where lower(username) = :username_key;

-- name: all_storage_keys()
select storage_key from images;

-- name: existing_storage_keys(keys)
-- Which of these object keys have a row (the sweep's question, a batch at a time).
select storage_key from images where storage_key = any(:keys::text[])
union all
select public_storage_key from images where public_storage_key = any(:keys::text[])
union all
select storage_key from image_thumbnails where storage_key = any(:keys::text[]);

-- name: storage_keys_before(before)
-- Rows old enough that their objects must exist by now.
select id, storage_key from images where created_at < :before
union all
select id, public_storage_key from images
where created_at < :before and public_storage_key is not null;
-- (A thumbnail whose object is lost is not reported: its next request makes it again.)
