//! Group commit of posts: the one way a message enters any room
//! (messaging's API and sockets, the city's). Each process's [`Poster`]
//! hands posts to one writer task, which takes whatever queued up while
//! its previous transaction was being written and writes it as one
//! (`store::post_many`). Each poster is answered once its batch has
//! committed, so nothing is acknowledged before it is durable; a quiet room
//! is written post by post, at once (nothing waits for company). On
//! SQLite, where every statement is a round trip to the database's thread,
//! a busy city then pays a few statements per batch instead of per post.

use daarion_access::Principal;
use daarion_bus::Outbox;
use daarion_kernel::RequestContext;
use daarion_store::Db;
use tokio::sync::{mpsc, oneshot};

use crate::{
    api::ChatMessageView,
    domain::{self, MessagingError, Room},
    events, markdown,
    store::{self, Message, NewMessage, Post},
};

/// Most posts written in one transaction.
const BATCH: usize = 256;
/// Posts waiting for the writer; past this, posters write themselves.
const QUEUE: usize = 4096;

/// A message to post, as the API or another service (the city) hands it.
pub struct Posting<'a> {
    pub body: &'a str,
    pub topic: Option<&'a str>,
    pub reply_to: Option<String>,
    pub attachments: Vec<domain::Attachment>,
    /// The longest body the caller's settings allow.
    pub max_chars: usize,
}

impl Posting<'_> {
    /// Checks and renders it.
    fn check(self) -> Result<NewMessage, MessagingError> {
        let body = domain::body(self.body, self.max_chars)?;
        Ok(NewMessage {
            topic: domain::topic(self.topic.unwrap_or(""))?,
            reply_to: self.reply_to,
            html: markdown::render(&body),
            mentions: domain::mentions(&body),
            attachments: domain::attachments(self.attachments)?,
            body,
        })
    }
}

/// A post waiting for the writer.
struct Job {
    room: Room,
    author: Principal,
    name: String,
    new: NewMessage,
    idempotency_key: Option<String>,
    /// The request's ids, for the events and the writer's logs.
    context: RequestContext,
    answer: oneshot::Sender<Result<(Message, bool), MessagingError>>,
}

impl Job {
    fn post(&self) -> Post<'_> {
        Post {
            room: &self.room.id,
            author: (&self.name, &self.author.handle),
            new: &self.new,
            idempotency_key: self.idempotency_key.as_deref(),
        }
    }

    /// What a new message raises (`message.received`, mentions, usage),
    /// carrying the ids of the request that posted it.
    fn events(&self, room: &Room, message: &Message) -> Vec<daarion_bus::Envelope> {
        self.context.clone().sync_scope(|| {
            let view =
                serde_json::to_value(ChatMessageView::of(message.clone(), &[])).unwrap_or_default();
            events::received(room, message, view, &self.author)
        })
    }

    fn answer(self, result: Result<(Message, bool), MessagingError>) {
        counted(&self.room, &result);
        // A poster that stopped waiting (its client left) needs no answer.
        let _ = self.answer.send(result);
    }
}

fn counted(room: &Room, result: &Result<(Message, bool), MessagingError>) {
    if matches!(result, Ok((_, true))) {
        metrics::counter!("messaging_messages_total", "kind" => room.kind.as_str()).increment(1);
    }
}

/// Posts messages through the process's writer; cheap to clone.
#[derive(Clone)]
pub struct Poster {
    db: Db,
    outbox: Outbox,
    queue: mpsc::Sender<Job>,
}

impl Poster {
    /// Starts the writer; it stops when the last `Poster` is dropped.
    pub fn start(db: Db, outbox: Outbox) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(write(db.clone(), outbox.clone(), jobs));
        Self { db, outbox, queue }
    }

    /// Checks, renders and posts a message in `room`, answering once it is
    /// committed. Its events are staged with it and relayed after commit.
    /// With an idempotency key, a retry returns the first message (and
    /// `false`).
    pub async fn post(
        &self,
        room: &Room,
        author: &Principal,
        posting: Posting<'_>,
        idempotency_key: Option<&str>,
    ) -> Result<(Message, bool), MessagingError> {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            room: room.clone(),
            name: author.name(),
            author: author.clone(),
            new: posting.check()?,
            idempotency_key: idempotency_key.map(str::to_owned),
            context: RequestContext::current_or_generate(),
            answer,
        };
        match self.queue.try_send(job) {
            Ok(()) => answered.await.map_err(|_| {
                MessagingError::Interrupted(
                    "posting was interrupted; retry with the same Idempotency-Key".into(),
                )
            })?,
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                let result = write_alone(&self.db, &self.outbox, &job).await;
                counted(room, &result);
                result
            }
        }
    }
}

/// The writer: one transaction for whatever queued up meanwhile.
async fn write(db: Db, outbox: Outbox, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    while jobs.recv_many(&mut batch, BATCH).await > 0 {
        metrics::histogram!("messaging_post_batch_size").record(batch.len() as f64);
        let taken = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        write_batch(&db, &outbox, taken).await;
    }
}

async fn write_batch(db: &Db, outbox: &Outbox, batch: Vec<Job>) {
    if batch.len() > 1 {
        let posts: Vec<Post<'_>> = batch.iter().map(Job::post).collect();
        let written = store::post_many(db, outbox, &posts, |i, room, message| {
            batch[i].events(room, message)
        })
        .await;
        match written {
            Ok((messages, staged)) => {
                outbox.relay(staged).await;
                for (job, message) in batch.into_iter().zip(messages) {
                    job.answer(Ok((message, true)));
                }
                return;
            }
            Err(error) => {
                tracing::debug!(%error, posts = batch.len(), "posts written one by one");
            }
        }
    }
    for job in batch {
        let result = write_alone(db, outbox, &job).await;
        job.answer(result);
    }
}

/// One post in its own transaction, with its own outcome.
async fn write_alone(
    db: &Db,
    outbox: &Outbox,
    job: &Job,
) -> Result<(Message, bool), MessagingError> {
    job.context
        .clone()
        .scope(async {
            let (message, fresh, staged) = store::post(db, outbox, job.post(), |room, message| {
                job.events(room, message)
            })
            .await?;
            outbox.relay(staged).await;
            Ok((message, fresh))
        })
        .await
}
