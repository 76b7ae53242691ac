-- Copy detection by local features: the stored features, their inverted file, and the
-- candidates of a query (vote counting: the stored pictures sharing the most keys with the
-- query; containment, not Jaccard, since a query may hold a picture among much else).

-- name: delete_features(image_id)!
-- Before new features replace older ones: the old number's postings then match no row.
delete from image_features where image_id = :image_id;

-- name: insert_features(image_id, version, width, height, points, descriptors, thumb, keys)!
-- An image's features under a new number, and its postings, in the caller's transaction.
with features as (
    insert into image_features (image_id, version, width, height, points, descriptors, thumb)
    values (:image_id, :version, :width, :height, :points, :descriptors, :thumb)
    returning seq
)
insert into feature_postings_recent (key, seq)
select k, f.seq from features f, unnest(:keys::int4[]) as k;

-- name: feature_postings_of(keys, max_df)^
-- The postings of the query's keys, for vote counting in the CPU pool (copies.Postings):
-- the merged arrays' keys and lengths, in key order, and their elements in that order in
-- binary (array_send without its header: a 4-byte length, then the 4-byte seq); the recent
-- table's (key, seq) pairs (4 bytes each). All big-endian. Keys whose postings are longer
-- than :max_df (features that much of the library has) are skipped unread. Counting here
-- with unnest and a hash aggregate cost 62 ms at a million images; shipping the postings
-- and counting them in numpy costs ~2 ms more than reading them.
select m.keys, m.lengths, m.merged, r.recent
from (
    select array_agg(p.key order by p.key) as keys,
           array_agg(cardinality(p.seqs) order by p.key) as lengths,
           string_agg(substr(array_send(p.seqs), 21), ''::bytea order by p.key) as merged
    from feature_postings p
    where p.key = any(:keys::int4[]) and p.df <= :max_df
) m, (
    select string_agg(int4send(r.key) || int4send(r.seq), ''::bytea) as recent
    from feature_postings_recent r
    where r.key = any(:keys::int4[])
) r;

-- name: visible_features(seqs, viewer_id, exclude_id, within)
-- Of these feature numbers (the best voted), those of images the viewer may see (and, with
-- :within, among those images; null: any).
select f.seq, f.image_id, i.phash
from image_features f
join images i on i.id = f.image_id
where f.seq = any(:seqs::int4[])
  and (i.visibility = 'public' or i.owner_id = :viewer_id)
  and (:exclude_id::uuid is null or i.id <> :exclude_id)
  and (:within::uuid[] is null or i.id in (select unnest(:within::uuid[])));

-- name: feature_seqs_of(ids)$
-- The feature numbers of these images (a search within them counts only their votes).
select coalesce(array_agg(seq), '{}') from image_features where image_id = any(:ids::uuid[]);

-- name: features_by_seqs(seqs)
-- The features to verify (of candidates found visible just before).
select seq, width, height, points, descriptors, thumb
from image_features
where seq = any(:seqs::int4[]);

-- name: features_of(viewer_id, image_id)^
-- A stored image's own features (for "similar to this one"), if the viewer may see it.
select f.width, f.height, f.points, f.descriptors, f.thumb
from image_features f
join images i on i.id = f.image_id
where f.image_id = :image_id and (i.visibility = 'public' or i.owner_id = :viewer_id);

-- name: features_by_ids(ids)
-- The features of these images (already found visible by the caller), for confirmation.
select image_id, width, height, points, descriptors, thumb
from image_features
where image_id = any(:ids::uuid[]);

-- name: merge_postings(limit)$
-- Fold up to :limit of the oldest recent postings into the merged arrays, in one
-- transaction (readers see them in one place or the other, never both or neither). Postings
-- of deleted images stay until a rebuild; the join to image_features drops them.
with moved as (
    delete from feature_postings_recent
    where ctid = any(array(select ctid from feature_postings_recent limit :limit))
    returning key, seq
),
grouped as (
    select key, count(*)::int as df, array_agg(seq order by seq) as seqs
    from moved
    group by key
),
merged as (
    insert into feature_postings as p (key, df, seqs)
    select key, df, seqs from grouped
    on conflict (key) do update
        set df = p.df + excluded.df, seqs = p.seqs || excluded.seqs
    returning 1
)
select count(*)::int from moved;

-- name: count_recent_postings()$
select count(*)::int from feature_postings_recent;
