-- name: login_lockout(username_key, window_seconds, max_failures)^
-- Failures within the window (at most max_failures counted), and the seconds until the
-- oldest of those expires: the Retry-After of a locked-out name.
select count(*)::int as failures,
       coalesce(extract(epoch from min(failed_at)
                + make_interval(secs => :window_seconds) - now()), 0)::float8 as retry_after
from (
    select failed_at
    from login_failures
    where username_key = :username_key
      and failed_at > now() - make_interval(secs => :window_seconds)
    order by failed_at desc
    limit :max_failures
) as recent;

-- name: record_login_failure(username_key, window_seconds)!
-- Records one failure and prunes every expired one (index on failed_at).
with expired as (
    delete from login_failures
    where failed_at <= now() - make_interval(secs => :window_seconds)
)
insert into login_failures (username_key)
values (:username_key);

-- name: clear_login_failures(username_key)!
delete from login_failures
where username_key = :username_key;
