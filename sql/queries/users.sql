-- name: insert_user(username, password_hash)^
insert into users (username, password_hash)
values (:username, :password_hash)
returning id, username, created_at;

-- name: get_user(user_id)^
select id, username, created_at
from users
where id = :user_id;

-- name: get_login(username_key)^
-- Names compare without regard to case (unique index on lower(username)); the key is
-- already folded (server/usernames.py), and names are ASCII.
select id, username, password_hash
from users
where lower(username) = :username_key;

-- name: delete_user(user_id)^
delete from users
where id = :user_id
returning id;
