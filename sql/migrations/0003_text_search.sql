-- Full-text search: one weighted document per image, kept current by PostgreSQL itself.
-- Title (A) and description (C) are stemmed as English; tags (B) are indexed both as whole
-- words ('simple') and stemmed, so "cats" finds the tag "cat" and the tag "c++" is kept.

-- array_to_string is only STABLE (it may call type output functions); for text[] it is
-- immutable in fact, which a generated column needs.
create function image_tags_text(tags text[]) returns text
    language sql immutable parallel safe
    return array_to_string(tags, ' ');

alter table images add column search_doc tsvector generated always as (
    setweight(to_tsvector('english', title), 'A')
    || setweight(to_tsvector('simple', image_tags_text(tags)), 'B')
    || setweight(to_tsvector('english', image_tags_text(tags)), 'B')
    || setweight(to_tsvector('english', description), 'C')
) stored;

create index images_search on images using gin (search_doc);
-- Newest-first walks over every image (search of frequent words, filters by date).
create index images_created on images (created_at desc, id desc);

-- The query of `q`: web-search syntax, and the last word, when it is a bare word that is not a
-- stop word, also as a prefix (search as you type). `head` is q without that word.
create function image_search_query(q text, head text, last_word text) returns tsquery
    language sql immutable parallel safe
    return case
        when last_word is null or numnode(websearch_to_tsquery('english', last_word)) = 0
            then websearch_to_tsquery('english', q)
        else websearch_to_tsquery('english', head)
             && (websearch_to_tsquery('english', last_word)
                 || to_tsquery('simple', last_word || ':*'))
    end;
