-- name: insert_key(user_id, name, prefix, digest, scopes, expires_at)^
insert into api_keys (user_id, name, prefix, digest, scopes, expires_at)
values (:user_id, :name, :prefix, :digest, :scopes, :expires_at)
returning id, name, prefix, created_at, scopes, expires_at;

-- name: authenticate_key(digest)^
-- One indexed lookup (unique index on digest) per authenticated request. An expired key is
-- returned (flagged) so that the answer can say why it is refused.
select k.id as key_id, k.last_used_at, k.scopes, k.expires_at,
       (k.expires_at is not null and k.expires_at <= now()) as expired,
       u.id as user_id, u.username
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
select id, name, prefix, scopes, created_at, expires_at, last_used_at, revoked_at
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
