-- name: claim_idempotency_key(user_id, key, route, token, lease_seconds)$
-- Take the key for one request: a new row, an expired one (over 24 hours old) or one whose
-- holder's lease ran out. Null when someone else holds it or has answered already.
insert into idempotency_keys as k (user_id, key, route, token, lease_until)
values (:user_id, :key, :route, :token, now() + make_interval(secs => :lease_seconds))
on conflict (user_id, key) do update
    set route = excluded.route, token = excluded.token, lease_until = excluded.lease_until,
        fingerprint = null, status = null, response = null, created_at = now()
    where k.created_at < now() - interval '24 hours'
       or (k.status is null and k.lease_until < now())
returning token;

-- name: get_idempotency_key(user_id, key)^
select route, fingerprint, status, response, lease_until
from idempotency_keys
where user_id = :user_id and key = :key;

-- name: renew_idempotency_lease(user_id, key, token, lease_seconds)!
update idempotency_keys
set lease_until = now() + make_interval(secs => :lease_seconds)
where user_id = :user_id and key = :key and token = :token and status is null;

-- name: complete_idempotency_key(user_id, key, token, fingerprint, status, response)!
update idempotency_keys
set fingerprint = :fingerprint, status = :status, response = :response
where user_id = :user_id and key = :key and token = :token;

-- name: release_idempotency_key(user_id, key, token)!
-- The request failed: a retry may try again.
delete from idempotency_keys
where user_id = :user_id and key = :key and token = :token and status is null;

-- name: prune_idempotency_keys(user_id)!
delete from idempotency_keys
where user_id = :user_id and created_at < now() - interval '24 hours';

-- name: known_images(owner_id, digests)
-- One of the owner's images for each of these SHA-256 digests that it holds.
select distinct on (sha256) encode(sha256, 'hex') as sha256, id
from images
where owner_id = :owner_id and sha256 = any(:digests::bytea[])
order by sha256, created_at;
