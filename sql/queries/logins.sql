-- Brute-force limits, kept in PostgreSQL so that they hold across processes. A subject is a
-- username ('name:...', the lockout) or a client address ('address:...', the rate). An
-- attempt is recorded *before* the password is checked (and a name's forgiven after a
-- success): however many attempts run at once, at most :max_attempts checks start inside the
-- window. The advisory lock, taken by a statement of its own in the same transaction, makes
-- the count and the insert one step (the next statement's snapshot sees every attempt
-- recorded before it).

-- name: lock_attempts(subject)$
select pg_advisory_xact_lock(hashtextextended(:subject, 7));

-- name: reserve_attempt(subject, window_seconds, max_attempts)^
-- Records an attempt unless :max_attempts are already in the window; answers whether it was
-- recorded and, if not, the seconds until the oldest one expires. Also prunes this subject's
-- expired rows, and anyone's older than a day (every window is far shorter; index on
-- attempted_at): subjects have windows of their own, so no one window prunes them all.
with expired as (
    delete from password_attempts
    where (subject = :subject
           and attempted_at <= now() - make_interval(secs => :window_seconds))
       or attempted_at <= now() - interval '1 day'
),
recent as (
    select count(*)::int as attempts, min(attempted_at) as oldest
    from (select attempted_at from password_attempts
          where subject = :subject
            and attempted_at > now() - make_interval(secs => :window_seconds)
          order by attempted_at desc
          limit :max_attempts) as r
),
recorded as (
    insert into password_attempts (subject)
    select :subject from recent where attempts < :max_attempts
    returning 1
)
select (select count(*) from recorded) > 0 as allowed,
       coalesce(extract(epoch from (select oldest from recent)
                + make_interval(secs => :window_seconds) - now()), 0)::float8 as retry_after;

-- name: clear_attempts(subject)!
delete from password_attempts
where subject = :subject;
