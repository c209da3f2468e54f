-- Migration: 002
-- Description: The city's rooms and messages move into messaging's store (one store for every kind of room)
-- Date: 2026-12-03
-- Author: DAARION Team
-- Rollback: See 002_take_in_city_rooms.down.sql
-- The city's tables are created by the city's migrations, which run first.
-- Bodies were plain text: their HTML is the text, escaped.
INSERT INTO messaging_rooms (id, kind, room_key, dao, slug, title, description, audience,
    posters, agents_allowed, slow_mode_secs, last_seq, created_by, created_at)
SELECT 'rm_' || substr(r.id, 6), 'public', 'public:' || r.slug, NULL, r.slug, r.title,
    r.description, NULL, NULL, 1, 0,
    (SELECT COUNT(*) FROM city_messages m WHERE m.room_id = r.id), r.created_by, r.created_at
FROM city_rooms r
WHERE NOT EXISTS (SELECT 1 FROM messaging_rooms x WHERE x.room_key = 'public:' || r.slug);

INSERT INTO messaging_messages (id, room_id, seq, topic, reply_to, author, author_handle, body,
    html, mentions, attachments, created_at)
SELECT m.id, 'rm_' || substr(m.room_id, 6),
    ROW_NUMBER() OVER (PARTITION BY m.room_id ORDER BY m.id), '', NULL, m.author, m.author, m.body,
    '<p>' || replace(replace(replace(m.body, '&', '&amp;'), '<', '&lt;'), '>', '&gt;') || '</p>',
    '[]', '[]', m.created_at
FROM city_messages m
WHERE EXISTS (SELECT 1 FROM messaging_rooms x WHERE x.id = 'rm_' || substr(m.room_id, 6));

DELETE FROM city_messages;
DELETE FROM city_rooms;
