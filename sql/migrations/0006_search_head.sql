-- The "head" of the search document: title (A) and tags (B) alone, with its own GIN index.
-- For words too frequent to rank every match cheaply, the best candidates are the images
-- that carry the word in their title or tags (they outrank description-only matches), and
-- this much smaller set can be found and ranked without visiting every matching row.
alter table images add column search_head tsvector generated always as (
    setweight(to_tsvector('english', title), 'A')
    || setweight(to_tsvector('simple', image_tags_text(tags)), 'B')
    || setweight(to_tsvector('english', image_tags_text(tags)), 'B')
) stored;

create index images_search_head on images using gin (search_head);
