-- A text-search result's headline: the whole title (a fragment that started mid-title would
-- drop its first words) and up to two fragments of the description, matches in <mark>.
create function image_headline(title text, description text, query tsquery) returns text
    language sql immutable parallel safe
    return concat_ws(E'\n',
                     ts_headline('english', title, query,
                                 'StartSel=<mark>, StopSel=</mark>, HighlightAll=true'),
                     nullif(ts_headline('english', description, query,
                                        'StartSel=<mark>, StopSel=</mark>, MaxFragments=2, '
                                        'MinWords=5, MaxWords=20'), ''));
