-- Location privacy: when an upload carries a GPS position, a copy without it is stored too
-- and served to everyone but the owner.
alter table images
    add column public_storage_key text unique,
    add column public_size_bytes bigint check (public_size_bytes >= 0),
    add column public_sha256 bytea check (length(public_sha256) = 32),
    add constraint public_copy_complete check (
        (public_storage_key is null) = (public_size_bytes is null)
        and (public_storage_key is null) = (public_sha256 is null));

-- What the API reads of an image, with its owner's name; the search document and the hash
-- chunks stay out (they are for the indexes).
drop view image_view;
create view image_view as
select i.id, i.owner_id, i.title, i.description, i.tags, i.visibility, i.filename,
       i.content_type, i.width, i.height, i.size_bytes, i.sha256, i.phash, i.dhash, i.ahash,
       i.whash, i.colorhash, i.hash_version, i.storage_key, i.public_storage_key,
       i.public_size_bytes, i.public_sha256, i.created_at, i.updated_at, u.username as owner
from images i
join users u on u.id = i.owner_id;
