//! New messages: one post, or several in one transaction (group commit,
//! `crate::posting`). Each takes its room's next sequence number and is
//! written to the room's log, its events staged with it.

use daarion_bus::{Envelope, Outbox, Staged};
use daarion_store::{
    Backend, Db,
    idempotency::{self, Claim},
    sql,
};

use super::{
    Change, Message, NewMessage, Tx,
    messages::{advance, gone, log, message_in},
};
use crate::domain::{MessagingError, Room};

/// A message to post in a room, by someone (principal name, handle).
#[derive(Debug, Clone, Copy)]
pub struct Post<'a> {
    pub room: &'a str,
    pub author: (&'a str, &'a str),
    pub new: &'a NewMessage,
    pub idempotency_key: Option<&'a str>,
}

impl Post<'_> {
    /// Where its author's idempotency keys live.
    fn key_scope(&self) -> String {
        format!("messaging.messages:{}", self.author.0)
    }

    fn fingerprint(&self) -> String {
        idempotency::fingerprint(&[self.room, &self.new.topic, &self.new.body])
    }

    /// Claims the idempotency key — `Some(id)` when it was used before
    /// for this message (a retry) — then refuses a reply to a message that
    /// is not in the room.
    async fn claim(&self, tx: &mut Tx) -> Result<Option<String>, MessagingError> {
        if let Some(key) = self.idempotency_key {
            let (scope, hash) = (self.key_scope(), self.fingerprint());
            if let Claim::Replay(id) = idempotency::claim(tx, &scope, key, &hash).await? {
                return Ok(Some(id));
            }
        }
        let Some(parent) = &self.new.reply_to else {
            return Ok(None);
        };
        let found =
            sql::query("SELECT 1 AS found FROM messaging_messages WHERE id = $1 AND room_id = $2")
                .bind(parent.as_str())
                .bind(self.room)
                .fetch_optional(&mut **tx)
                .await?;
        match found {
            Some(_) => Ok(None),
            None => Err(MessagingError::Invalid(
                "reply_to names no message of this room".into(),
            )),
        }
    }

    fn message(&self, seq: i64) -> Message {
        let new = self.new;
        Message {
            id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            room: self.room.to_owned(),
            seq,
            topic: new.topic.clone(),
            reply_to: new.reply_to.clone(),
            author: self.author.0.to_owned(),
            author_handle: self.author.1.to_owned(),
            body: new.body.clone(),
            html: new.html.clone(),
            mentions: new.mentions.clone(),
            attachments: new.attachments.clone(),
            created_at: daarion_store::now(),
            edited_at: None,
            deleted_at: None,
        }
    }
}

/// Writes claimed posts: one sequence update per room (rooms in id order,
/// so two writers never wait for each other's rows; a room's messages take
/// its numbers in the order given), the messages and their log rows one
/// statement each, the keys completed. Returns the messages in the order
/// given and what `events(i, room, message)` says to stage with each.
async fn place(
    tx: &mut Tx,
    posts: &[Post<'_>],
    events: impl Fn(usize, &Room, &Message) -> Vec<Envelope>,
) -> Result<(Vec<Message>, Vec<Envelope>), MessagingError> {
    let mut order: Vec<usize> = (0..posts.len()).collect();
    order.sort_by_key(|&i| posts[i].room);
    let mut placed: Vec<(usize, usize, Message)> = Vec::with_capacity(posts.len());
    let mut rooms = Vec::new();
    for group in order.chunk_by(|&a, &b| posts[a].room == posts[b].room) {
        let room = advance(tx, posts[group[0]].room, group.len() as i64).await?;
        let first = room.last_seq - group.len() as i64;
        for (k, &i) in group.iter().enumerate() {
            placed.push((i, rooms.len(), posts[i].message(first + 1 + k as i64)));
        }
        rooms.push(room);
    }
    placed.sort_by_key(|(i, _, _)| *i);
    let (rooms_of, messages): (Vec<usize>, Vec<Message>) =
        placed.into_iter().map(|(_, room, m)| (room, m)).unzip();
    insert(tx, &messages).await?;
    let mut staged = Vec::with_capacity(posts.len() * 2);
    for (i, (post, message)) in posts.iter().zip(&messages).enumerate() {
        if let Some(key) = post.idempotency_key {
            idempotency::complete(tx, &post.key_scope(), key, &message.id).await?;
        }
        staged.extend(events(i, &rooms[rooms_of[i]], message));
    }
    Ok((messages, staged))
}

/// Writes new messages and their log rows: one statement each.
async fn insert(tx: &mut Tx, messages: &[Message]) -> Result<(), MessagingError> {
    let rows: Vec<_> = messages
        .iter()
        .map(|m| {
            serde_json::json!([
                m.id,
                m.room,
                m.seq,
                m.topic,
                m.reply_to,
                m.author,
                m.author_handle,
                m.body,
                m.html,
                serde_json::to_string(&m.mentions).unwrap_or_else(|_| "[]".into()),
                serde_json::to_string(&m.attachments).unwrap_or_else(|_| "[]".into()),
                m.created_at
            ])
        })
        .collect();
    let text = format!(
        "INSERT INTO messaging_messages (id, room_id, seq, topic, reply_to, author,
             author_handle, body, html, mentions, attachments, created_at)
         SELECT c0, c1, CAST(c2 AS BIGINT), c3, c4, c5, c6, c7, c8, c9, c10, c11 FROM ({}) AS j",
        sql::json_rows(Backend::of(tx), 1, 12)
    );
    sql::query(sql::AssertSqlSafe(text))
        .bind(serde_json::Value::from(rows).to_string())
        .execute(&mut **tx)
        .await?;
    let entries: Vec<_> = messages
        .iter()
        .map(|m| (m.room.as_str(), m.seq, Change::Posted, m.id.as_str()))
        .collect();
    log(tx, &entries).await
}

/// Posts a message; `events` says what to stage with it. With an
/// idempotency key, a retry returns the first message.
pub async fn post(
    db: &Db,
    outbox: &Outbox,
    post: Post<'_>,
    events: impl Fn(&Room, &Message) -> Vec<Envelope>,
) -> Result<(Message, bool, Staged), MessagingError> {
    let mut tx = db.begin().await?;
    if let Some(id) = post.claim(&mut tx).await? {
        let message = message_in(&mut tx, post.room, &id).await?;
        return Ok((message, false, Staged::none()));
    }
    let (mut messages, staged) = place(&mut tx, &[post], |_, room, m| events(room, m)).await?;
    let staged = outbox.stage(&mut tx, staged).await?;
    tx.commit().await?;
    let message = messages.pop().ok_or_else(gone)?;
    Ok((message, true, staged))
}

/// Posts several messages in one transaction (group commit), as [`place`]
/// writes them, every event staged at once. Any refusal (a key used
/// before, a reply to nothing, an archived room) or failure writes
/// nothing: the caller then posts each alone, which gives each its own
/// answer.
pub async fn post_many(
    db: &Db,
    outbox: &Outbox,
    posts: &[Post<'_>],
    events: impl Fn(usize, &Room, &Message) -> Vec<Envelope>,
) -> Result<(Vec<Message>, Staged), MessagingError> {
    let mut tx = db.begin().await?;
    for post in posts {
        if post.claim(&mut tx).await?.is_some() {
            return Err(MessagingError::Conflict("a retry is answered alone".into()));
        }
    }
    let (messages, staged) = place(&mut tx, posts, events).await?;
    let staged = outbox.stage(&mut tx, staged).await?;
    tx.commit().await?;
    Ok((messages, staged))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use daarion_bus::{EmbeddedBus, subject::Streams};

    use super::*;
    use crate::{
        events::general_room,
        store::{Window, changes, history},
    };

    fn new(body: &str, reply_to: Option<&str>) -> NewMessage {
        NewMessage {
            topic: String::new(),
            reply_to: reply_to.map(str::to_owned),
            body: body.to_owned(),
            html: body.to_owned(),
            mentions: Vec::new(),
            attachments: Vec::new(),
        }
    }

    fn received(room: &Room, message: &Message) -> Vec<Envelope> {
        let payload = serde_json::json!({ "room_seq": message.seq });
        vec![Envelope::new(
            "messaging",
            format!("message.received.{}", room.id),
            payload,
        )]
    }

    /// Group commit: posts of two rooms in one transaction take each
    /// room's next numbers in the order given, with their events; a batch
    /// with anything refused writes nothing at all, so that posting each
    /// alone afterwards gives each its own answer.
    #[tokio::test]
    async fn posts_written_together_take_their_rooms_numbers_in_order() {
        // Migration 2 takes in the city's tables, which this crate lacks.
        static WITHOUT_CITY: &[daarion_store::Migration] = &[
            daarion_store::migration!(1, "001_create_messaging_tables"),
            daarion_store::migration!(3, "003_add_room_responders"),
        ];
        let first = daarion_store::MigrationSet {
            service: crate::SERVICE,
            migrations: WITHOUT_CITY,
        };
        let sets = [first, daarion_bus::MIGRATIONS, idempotency::MIGRATIONS];
        for test in daarion_testkit::migrated_dbs(&sets).await {
            let db = &test.db;
            let streams = Streams::new([daarion_bus::subject::StreamDef {
                name: "MESSAGES",
                subjects: &["message.>"],
            }])
            .unwrap();
            let outbox = Outbox::new(db.clone(), Arc::new(EmbeddedBus::new(db.clone(), streams)));
            let mut rooms = Vec::new();
            for dao in ["one", "two"] {
                let made =
                    super::super::create_room(db, &outbox, &general_room(dao), "x", None, |_| {
                        Vec::new()
                    })
                    .await
                    .unwrap();
                rooms.push(made.room.id);
            }
            let (a, b) = (rooms[0].as_str(), rooms[1].as_str());
            let bodies = [(b, "b1"), (a, "a1"), (b, "b2"), (a, "a2"), (a, "a3")];
            let news: Vec<NewMessage> = bodies.iter().map(|(_, body)| new(body, None)).collect();
            let posts: Vec<Post<'_>> = bodies
                .iter()
                .zip(&news)
                .map(|((room, _), new)| Post {
                    room,
                    author: ("user:u1", "alice"),
                    new,
                    idempotency_key: Some(new.body.as_str()),
                })
                .collect();
            let (messages, staged) = post_many(db, &outbox, &posts, |_, room, message| {
                received(room, message)
            })
            .await
            .unwrap();
            let placed: Vec<(&str, i64)> =
                messages.iter().map(|m| (m.body.as_str(), m.seq)).collect();
            assert_eq!(
                placed,
                [("b1", 1), ("a1", 1), ("b2", 2), ("a2", 2), ("a3", 3)]
            );
            let seqs: Vec<i64> = staged
                .events()
                .iter()
                .map(|e| e.payload["room_seq"].as_i64().unwrap())
                .collect();
            assert_eq!(seqs, [1, 1, 2, 2, 3], "one event each, in order");
            let newest = history(db, a, None, Window::Latest, 10).await.unwrap();
            let newest: Vec<&str> = newest.iter().map(|m| m.body.as_str()).collect();
            assert_eq!(newest, ["a3", "a2", "a1"]);
            let logged = changes(db, b, 0, 10).await.unwrap().unwrap();
            let logged: Vec<(i64, &str)> = logged
                .iter()
                .map(|(seq, kind, _)| (*seq, kind.as_str()))
                .collect();
            assert_eq!(logged, [(1, "posted"), (2, "posted")]);
            outbox.relay(staged).await;

            // A retried key, a reply to nothing, an archived room: each
            // refuses the whole batch, and nothing of it is written.
            super::super::archive_room(db, b).await.unwrap();
            let fresh = new("a4", None);
            let nowhere = new("a5", Some("msg_none"));
            let later = new("b3", None);
            let retried = new("a1", None);
            let good = Post {
                room: a,
                author: ("user:u1", "alice"),
                new: &fresh,
                idempotency_key: Some("a4"),
            };
            for bad in [
                Post {
                    new: &nowhere,
                    ..good
                },
                Post {
                    room: b,
                    new: &later,
                    ..good
                },
                Post {
                    new: &retried,
                    idempotency_key: Some("a1"),
                    ..good
                },
            ] {
                let refused = post_many(db, &outbox, &[good, bad], |_, room, message| {
                    received(room, message)
                })
                .await;
                assert!(refused.is_err(), "{:?}", bad.new.body);
                let room = super::super::room(db, a).await.unwrap().unwrap();
                assert_eq!(room.last_seq, 3, "nothing taken");
            }
            // Alone, the good post goes in, its key with it.
            let (message, fresh, _) = post(db, &outbox, good, received).await.unwrap();
            assert_eq!((message.seq, fresh), (4, true));
            let (again, fresh, _) = post(db, &outbox, good, received).await.unwrap();
            assert_eq!((again.id, fresh), (message.id, false));
        }
    }
}
