-- Scoped API keys (issue 26): what a key may do, and until when.
-- Every key made before this migration keeps full rights: the column's default is every
-- scope, so existing rows (and any row a not-yet-upgraded process inserts) get them all.
-- The list of known scopes is server/scopes.py's SCOPES; both change together.
alter table api_keys
    add column scopes text[] not null default '{read,upload,write,keys,share}'
        constraint scopes_known check (
            cardinality(scopes) > 0
            and array_ndims(scopes) = 1
            and array_position(scopes, null) is null
            and scopes <@ '{read,upload,write,keys,share}'::text[]),
    add column expires_at timestamptz
        constraint expires_after_creation check (expires_at > created_at);
