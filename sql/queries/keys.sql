-- name: insert_key(user_id, name, prefix, digest)^
insert into api_keys (user_id, name, prefix, digest)
values (:user_id, :name, :prefix, :digest)
returning id, name, prefix, created_at;

-- name: authenticate_key(digest)^
-- One indexed lookup (unique index on digest) per authenticated request.
select k.id as key_id, k.last_used_at, u.id as user_id, u.username
from api_keys k
join users u on u.id = k.user_id
where k.digest = :digest
  and k.revoked_at is null;

-- name: touch_key(key_id)!
-- At most one write a minute per key, however busy it is.
update api_keys
set last_used_at = now()
where id = :key_id
  and (last_used_at is null or last_used_at < now() - interval '1 minute');

-- name: list_keys(user_id)
select id, name, prefix, created_at, last_used_at, revoked_at
from api_keys
where user_id = :user_id
order by created_at, id;

-- name: revoke_key(user_id, key_id)^
-- Another user's key is indistinguishable from a missing one; revoking twice is harmless.
update api_keys
set revoked_at = coalesce(revoked_at, now())
where id = :key_id
  and user_id = :user_id
returning id;
