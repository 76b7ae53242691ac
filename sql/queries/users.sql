-- name: insert_user(username, password_hash)^
insert into users (username, password_hash)
values (:username, :password_hash)
returning id, username, created_at;

-- name: get_user(user_id)^
select id, username, created_at
from users
where id = :user_id;

-- name: get_login(username)^
-- Names compare without regard to case (unique index on lower(username)).
select id, username, password_hash
from users
where lower(username) = lower(:username);

-- name: delete_user(user_id)^
delete from users
where id = :user_id
returning id;
