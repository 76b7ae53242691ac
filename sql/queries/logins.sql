-- Brute-force limits, kept in PostgreSQL so that they hold across processes. An attempt is
-- recorded *before* the password is checked (and forgiven after a success): however many
-- attempts run at once, at most :max_attempts checks start inside the window. The advisory
-- lock, taken by a statement of its own in the same transaction, makes the count and the
-- insert one step (the next statement's snapshot sees every attempt recorded before it).

-- name: lock_attempts(key)$
select pg_advisory_xact_lock(hashtextextended(:key, 7));

-- name: reserve_login_attempt(username_key, window_seconds, max_failures)^
-- Records an attempt for the name unless :max_failures are already in the window; answers
-- whether it was recorded and, if not, the seconds until the oldest one expires. Also
-- prunes every expired row (index on failed_at).
with expired as (
    delete from login_failures
    where failed_at <= now() - make_interval(secs => :window_seconds)
),
recent as (
    select count(*)::int as failures, min(failed_at) as oldest
    from (select failed_at from login_failures
          where username_key = :username_key
            and failed_at > now() - make_interval(secs => :window_seconds)
          order by failed_at desc
          limit :max_failures) as r
),
recorded as (
    insert into login_failures (username_key)
    select :username_key from recent where failures < :max_failures
    returning 1
)
select (select count(*) from recorded) > 0 as allowed,
       coalesce(extract(epoch from (select oldest from recent)
                + make_interval(secs => :window_seconds) - now()), 0)::float8 as retry_after;

-- name: clear_login_failures(username_key)!
delete from login_failures
where username_key = :username_key;

-- name: reserve_password_attempt(address, window_seconds, max_attempts)^
-- The same for the client's address: every password check counts, right or wrong.
with expired as (
    delete from password_attempts
    where attempted_at <= now() - make_interval(secs => :window_seconds)
),
recent as (
    select count(*)::int as attempts, min(attempted_at) as oldest
    from (select attempted_at from password_attempts
          where address = :address
            and attempted_at > now() - make_interval(secs => :window_seconds)
          order by attempted_at desc
          limit :max_attempts) as r
),
recorded as (
    insert into password_attempts (address)
    select :address from recent where attempts < :max_attempts
    returning 1
)
select (select count(*) from recorded) > 0 as allowed,
       coalesce(extract(epoch from (select oldest from recent)
                + make_interval(secs => :window_seconds) - now()), 0)::float8 as retry_after;
