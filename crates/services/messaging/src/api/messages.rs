//! What is said in rooms: history both ways, posting, edits with their
//! history, deletes, reactions, topics with unread counts, read markers,
//! search.

use axum::{
    Extension,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use daarion_access::{Action, Facts, Principal};
use daarion_cache::RateLimit;
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query, created},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{readable, room_id};
use crate::{
    MessagingState,
    domain::{self, Attachment, MessagingError},
    events, markdown,
    store::{self, Message, ReactionCount, Rewrite, Window},
};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatReactionView {
    pub emoji: String,
    pub count: i64,
    /// The caller reacted so.
    pub mine: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatMessageView {
    pub id: String,
    pub room: String,
    /// Its place in the room: 1, 2, 3...
    pub seq: i64,
    /// Its topic within the room (`""`: none).
    pub topic: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// `user:<id>` or `agent:<id>`.
    pub author: String,
    /// How the author is shown: a username, or `agent:<id>`.
    pub author_handle: String,
    /// Markdown as written (`""` once deleted).
    pub body: String,
    /// The body rendered safely: no raw HTML, only http(s) and mailto links.
    pub html: String,
    /// Who it mentions: usernames and `agent:<id>`.
    pub mentions: Vec<String>,
    pub attachments: Vec<Attachment>,
    pub reactions: Vec<ChatReactionView>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// A tombstone: it was here, its words are gone.
    pub deleted: bool,
}

impl ChatMessageView {
    pub fn of(m: Message, reactions: &[ReactionCount]) -> Self {
        let reactions = reactions
            .iter()
            .filter(|r| r.message == m.id)
            .map(|r| ChatReactionView {
                emoji: r.emoji.clone(),
                count: r.count,
                mine: r.mine,
            })
            .collect();
        Self {
            id: m.id,
            room: m.room,
            seq: m.seq,
            topic: m.topic,
            reply_to: m.reply_to,
            author: m.author,
            author_handle: m.author_handle,
            body: m.body,
            html: m.html,
            mentions: m.mentions,
            attachments: m.attachments,
            reactions,
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted: m.deleted_at.is_some(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostChatMessage {
    /// Markdown.
    pub body: String,
    /// A topic within the room (Zulip's), up to 60 characters.
    #[serde(default)]
    pub topic: Option<String>,
    /// A message of the same room this answers.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Files by reference (at most 10).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditChatMessage {
    pub body: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// Everything up to this sequence number is read.
    #[schema(minimum = 0)]
    pub seq: i64,
    /// Only in this topic.
    #[serde(default)]
    pub topic: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatMessageEditView {
    pub version: i64,
    /// The body before this edit.
    pub body: String,
    /// When it was replaced.
    pub replaced_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatTopicView {
    /// `""`: messages without a topic.
    pub topic: String,
    pub messages: i64,
    pub last_seq: i64,
    pub unread: i64,
    pub unread_mentions: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryParams {
    /// Only this topic (`""`: messages without one).
    #[param(max_length = 60)]
    pub topic: Option<String>,
    /// Newer messages than this sequence number, oldest first (to catch
    /// up); without it, the newest first.
    #[param(minimum = 0)]
    pub after_seq: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchParams {
    /// Words that must all appear (whole words, case and accents aside).
    #[param(min_length = 1, max_length = 200)]
    pub q: String,
}

impl MessagingState {
    /// Messages as answered to `reader`, with their reactions.
    async fn views(
        &self,
        reader: &Principal,
        page: Page<Message>,
    ) -> Result<Page<ChatMessageView>, ApiError> {
        let ids: Vec<String> = page.items.iter().map(|m| m.id.clone()).collect();
        let reactions = store::reactions(&self.db, &ids, &reader.name()).await?;
        Ok(page.map(|m| ChatMessageView::of(m, &reactions)))
    }

    async fn view_one(
        &self,
        reader: &Principal,
        message: Message,
    ) -> Result<ChatMessageView, ApiError> {
        let reactions =
            store::reactions(&self.db, std::slice::from_ref(&message.id), &reader.name()).await?;
        Ok(ChatMessageView::of(message, &reactions))
    }

    /// Slow mode and the per-person rate in a room.
    async fn pace(&self, room: &crate::domain::Room, who: &str) -> Result<(), MessagingError> {
        let settings = &self.settings;
        let mut limits = vec![(
            format!("messaging:rate:{}:{who}", room.id),
            RateLimit {
                per_second: settings.posts_per_second,
                burst: settings.posts_burst,
            },
        )];
        if room.slow_mode_secs > 0 {
            limits.push((
                format!("messaging:slow:{}:{who}", room.id),
                RateLimit {
                    per_second: 1.0 / f64::from(room.slow_mode_secs),
                    burst: 1,
                },
            ));
        }
        for (key, limit) in limits {
            let decision = self.cache.rate_limit(&key, limit).await?;
            if !decision.allowed {
                let retry_after = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
                return Err(MessagingError::TooFast {
                    message: format!("slow down: post again in {retry_after} s"),
                    retry_after,
                });
            }
        }
        Ok(())
    }

    /// The room the path names: as the enforcement layer read it for
    /// this request (`access::MessagingResources`), or read now.
    async fn room(
        &self,
        raw: &str,
        loaded: Option<Extension<crate::domain::Room>>,
    ) -> Result<crate::domain::Room, ApiError> {
        let id = room_id(raw)?;
        match loaded {
            Some(Extension(room)) if room.id == id => Ok(room),
            _ => store::room(&self.db, &id)
                .await?
                .ok_or_else(|| ApiError::not_found("no such room")),
        }
    }
}

/// Decodes a history cursor: `b<seq>` goes on to older messages, `a<seq>`
/// to newer ones.
fn window(cursor: Option<String>, after_seq: Option<i64>) -> Result<Window, ApiError> {
    let invalid = || ApiError::bad_request("cursor is not one this endpoint gave");
    match (cursor, after_seq) {
        (Some(c), _) => {
            let (direction, seq) = c.split_at_checked(1).ok_or_else(invalid)?;
            let seq: i64 = seq.parse().map_err(|_| invalid())?;
            match direction {
                "b" => Ok(Window::Before(seq)),
                "a" => Ok(Window::After(seq)),
                _ => Err(invalid()),
            }
        }
        (None, Some(seq)) if seq >= 0 => Ok(Window::After(seq)),
        (None, Some(_)) => Err(ApiError::validation("after_seq must not be negative")),
        (None, None) => Ok(Window::Latest),
    }
}

/// A room's messages: the newest first (going back with `next_cursor`),
/// or, with `after_seq`, those after it oldest first (going forward).
#[utoipa::path(get, path = "/rooms/{room}/messages", tag = "messaging",
    params(("room" = String, Path, description = "The room's id"), PageParams, HistoryParams),
    responses((status = 200, body = Page<ChatMessageView>), (status = 400), (status = 401),
        (status = 403), (status = 404), (status = 422)))]
pub(super) async fn history(
    State(state): State<MessagingState>,
    principal: Principal,
    Path(room): Path<String>,
    Query(page): Query<PageParams>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<Page<ChatMessageView>>, ApiError> {
    let limit = page.limit()?;
    let window = window(page.after()?, params.after_seq)?;
    let topic = params.topic.as_deref().map(domain::topic).transpose()?;
    let rows = store::history(&state.db, &room_id(&room)?, topic.as_deref(), window, limit).await?;
    let direction = if matches!(window, Window::After(_)) {
        'a'
    } else {
        'b'
    };
    let page = Page::from_rows(rows, limit, |m| format!("{direction}{}", m.seq));
    Ok(Json(state.views(&principal, page).await?))
}

/// Posts a message (markdown). Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/rooms/{room}/messages", tag = "messaging", request_body = PostChatMessage,
    params(("room" = String, Path, description = "The room's id"), IdempotencyKey),
    responses((status = 201, body = ChatMessageView), (status = 200, description = "Replay", body = ChatMessageView),
        (status = 401), (status = 403), (status = 404),
        (status = 409, description = "Archived room, or the key was used for another message"),
        (status = 422, description = "Empty or too long, bad topic, reply or attachment"),
        (status = 429, description = "Slow mode or too many messages")))]
pub(super) async fn post_chat_message(
    State(state): State<MessagingState>,
    principal: Principal,
    loaded: Option<Extension<crate::domain::Room>>,
    Path(room): Path<String>,
    key: IdempotencyKey,
    Json(input): Json<PostChatMessage>,
) -> Result<Response, ApiError> {
    let room = state.room(&room, loaded).await?;
    // Bad input is refused before it spends the caller's pace.
    domain::body(&input.body, state.settings.max_message_chars)?;
    state.pace(&room, &principal.name()).await?;
    let posting = crate::Posting {
        body: &input.body,
        topic: input.topic.as_deref(),
        reply_to: input.reply_to,
        attachments: input.attachments,
        max_chars: state.settings.max_message_chars,
    };
    let (message, fresh) = state
        .poster
        .post(&room, &principal, posting, key.as_deref())
        .await?;
    // A new message has no reactions yet; a replayed one may.
    let view = if fresh {
        ChatMessageView::of(message, &[])
    } else {
        state.view_one(&principal, message).await?
    };
    Ok(created(fresh, view))
}

/// Edits one's own message; the earlier body is kept.
#[utoipa::path(patch, path = "/rooms/{room}/messages/{message}", tag = "messaging", request_body = EditChatMessage,
    params(("room" = String, Path, description = "The room's id"), ("message" = String, Path)),
    responses((status = 200, body = ChatMessageView), (status = 401),
        (status = 403, description = "Not its author"), (status = 404),
        (status = 409, description = "Deleted, or the room is archived"), (status = 422)))]
pub(super) async fn edit_message(
    State(state): State<MessagingState>,
    principal: Principal,
    Path((room, message)): Path<(String, String)>,
    Json(input): Json<EditChatMessage>,
) -> Result<Json<ChatMessageView>, ApiError> {
    let body = domain::body(&input.body, state.settings.max_message_chars)?;
    let html = markdown::render(&body);
    let mentions = domain::mentions(&body);
    let by = principal.name();
    let room = room_id(&room)?;
    let (edited, staged) = store::rewrite(
        &state.db,
        &state.outbox,
        &room,
        &message,
        Rewrite::Edit {
            by: &by,
            body: &body,
            html: &html,
            mentions: &mentions,
        },
        |change, seq, m| {
            let view =
                serde_json::to_value(ChatMessageView::of(m.clone(), &[])).unwrap_or_default();
            vec![events::changed(change, seq, &room, view, &principal.handle)]
        },
    )
    .await?;
    state.outbox.relay(staged).await;
    Ok(Json(state.view_one(&principal, edited).await?))
}

/// Deletes a message: its author, or the room's managers. A tombstone
/// keeps its place.
#[utoipa::path(delete, path = "/rooms/{room}/messages/{message}", tag = "messaging",
    params(("room" = String, Path, description = "The room's id"), ("message" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 401),
        (status = 403, description = "Neither its author nor a manager"), (status = 404),
        (status = 409, description = "Already deleted, or the room is archived")))]
pub(super) async fn delete_message(
    State(state): State<MessagingState>,
    principal: Principal,
    loaded: Option<Extension<crate::domain::Room>>,
    Path((room, message)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let current = state.room(&room, loaded).await?;
    let by = principal.name();
    let existing = store::message(&state.db, &current.id, &message).await?;
    let moderator = existing.author != by && {
        let resource = crate::access::room_of(&state.db, &current).await?;
        state
            .access
            .check(&principal, Action::Manage, &resource, Facts::default())
            .await
            .is_ok()
    };
    let (_, staged) = store::rewrite(
        &state.db,
        &state.outbox,
        &current.id,
        &message,
        Rewrite::Delete { by: &by, moderator },
        |change, seq, m| {
            let view =
                serde_json::to_value(ChatMessageView::of(m.clone(), &[])).unwrap_or_default();
            vec![events::changed(
                change,
                seq,
                &current.id,
                view,
                &principal.handle,
            )]
        },
    )
    .await?;
    state.outbox.relay(staged).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A message's earlier bodies, oldest first.
#[utoipa::path(get, path = "/rooms/{room}/messages/{message}/edits", tag = "messaging",
    params(("room" = String, Path, description = "The room's id"), ("message" = String, Path)),
    responses((status = 200, body = Page<ChatMessageEditView>), (status = 401), (status = 403), (status = 404)))]
pub(super) async fn message_edits(
    State(state): State<MessagingState>,
    Path((room, message)): Path<(String, String)>,
) -> Result<Json<Page<ChatMessageEditView>>, ApiError> {
    let edits = store::edits(&state.db, &room_id(&room)?, &message).await?;
    Ok(Json(Page {
        items: edits
            .into_iter()
            .map(|e| ChatMessageEditView {
                version: e.version,
                body: e.body,
                replaced_at: e.replaced_at,
            })
            .collect(),
        next_cursor: None,
    }))
}

async fn reaction(
    state: &MessagingState,
    principal: &Principal,
    (room, message, emoji): (String, String, String),
    add: bool,
) -> Result<Json<ChatMessageView>, ApiError> {
    let emoji = domain::reaction(&emoji)?;
    let room = room_id(&room)?;
    let who = principal.name();
    let staged = store::react(
        &state.db,
        &state.outbox,
        &room,
        &message,
        (&who, &emoji),
        add,
        |seq, m, counts| {
            let view =
                serde_json::to_value(ChatMessageView::of(m.clone(), counts)).unwrap_or_default();
            vec![events::reacted(seq, &room, view, principal, (&emoji, add))]
        },
    )
    .await?;
    state.outbox.relay(staged).await;
    let current = store::message(&state.db, &room, &message).await?;
    Ok(Json(state.view_one(principal, current).await?))
}

/// Reacts to a message (once per emoji).
#[utoipa::path(put, path = "/rooms/{room}/messages/{message}/reactions/{emoji}", tag = "messaging",
    params(("room" = String, Path, description = "The room's id"), ("message" = String, Path),
        ("emoji" = String, Path, description = "One emoji, or `:name:`")),
    responses((status = 200, body = ChatMessageView), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "Already reacted so, or deleted"), (status = 422)))]
pub(super) async fn react(
    State(state): State<MessagingState>,
    principal: Principal,
    Path(path): Path<(String, String, String)>,
) -> Result<Json<ChatMessageView>, ApiError> {
    reaction(&state, &principal, path, true).await
}

/// Takes one's reaction back.
#[utoipa::path(delete, path = "/rooms/{room}/messages/{message}/reactions/{emoji}", tag = "messaging",
    params(("room" = String, Path, description = "The room's id"), ("message" = String, Path),
        ("emoji" = String, Path, description = "One emoji, or `:name:`")),
    responses((status = 200, body = ChatMessageView), (status = 401), (status = 403),
        (status = 404, description = "No such message, or no such reaction of yours"), (status = 422)))]
pub(super) async fn unreact(
    State(state): State<MessagingState>,
    principal: Principal,
    Path(path): Path<(String, String, String)>,
) -> Result<Json<ChatMessageView>, ApiError> {
    reaction(&state, &principal, path, false).await
}

/// A room's topics, the most recently active first, with unread counts.
#[utoipa::path(get, path = "/rooms/{room}/topics", tag = "messaging",
    params(("room" = String, Path, description = "The room's id")),
    responses((status = 200, body = Page<ChatTopicView>), (status = 401), (status = 403), (status = 404)))]
pub(super) async fn topics(
    State(state): State<MessagingState>,
    principal: Principal,
    Path(room): Path<String>,
) -> Result<Json<Page<ChatTopicView>>, ApiError> {
    let list = store::topics(
        &state.db,
        &room_id(&room)?,
        &principal.name(),
        &principal.handle,
    )
    .await?;
    Ok(Json(Page {
        items: list
            .into_iter()
            .map(|t| ChatTopicView {
                topic: t.topic,
                messages: t.messages,
                last_seq: t.last_seq,
                unread: t.unread,
                unread_mentions: t.mentions,
            })
            .collect(),
        next_cursor: None,
    }))
}

/// Marks the room (or one topic) read up to a sequence number. A marker
/// never moves back.
#[utoipa::path(post, path = "/rooms/{room}/read", tag = "messaging", request_body = MarkRead,
    params(("room" = String, Path, description = "The room's id")),
    responses((status = 204, description = "Marked"), (status = 401), (status = 403), (status = 404),
        (status = 422, description = "A sequence number the room has not reached")))]
pub(super) async fn mark_read(
    State(state): State<MessagingState>,
    principal: Principal,
    loaded: Option<Extension<crate::domain::Room>>,
    Path(room): Path<String>,
    Json(input): Json<MarkRead>,
) -> Result<StatusCode, ApiError> {
    let room = state.room(&room, loaded).await?;
    if input.seq < 0 || input.seq > room.last_seq {
        return Err(ApiError::validation(format!(
            "seq must be between 0 and {}",
            room.last_seq
        )));
    }
    let topic = input.topic.as_deref().map(domain::topic).transpose()?;
    store::mark_read(
        &state.db,
        &room.id,
        &principal.name(),
        topic.as_deref(),
        input.seq,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn find(
    state: &MessagingState,
    principal: &Principal,
    room: Option<&str>,
    params: (&PageParams, &SearchParams),
) -> Result<Json<Page<ChatMessageView>>, ApiError> {
    let (page, search) = params;
    let q = search.q.trim();
    if q.is_empty() || q.chars().count() > 200 {
        return Err(ApiError::validation("q must be 1 to 200 characters"));
    }
    let limit = page.limit()?;
    let rows = store::search(
        &state.db,
        &readable(principal),
        room,
        q,
        page.after()?.as_deref(),
        limit,
    )
    .await?;
    let page = Page::from_rows(rows, limit, |m| m.id.clone());
    Ok(Json(state.views(principal, page).await?))
}

/// Searches one room, newest first.
#[utoipa::path(get, path = "/rooms/{room}/search", tag = "messaging",
    params(("room" = String, Path, description = "The room's id"), SearchParams, PageParams),
    responses((status = 200, body = Page<ChatMessageView>), (status = 400), (status = 401),
        (status = 403), (status = 404), (status = 422)))]
pub(super) async fn search_room(
    State(state): State<MessagingState>,
    principal: Principal,
    Path(room): Path<String>,
    Query(page): Query<PageParams>,
    Query(search): Query<SearchParams>,
) -> Result<Json<Page<ChatMessageView>>, ApiError> {
    let room = room_id(&room)?;
    find(&state, &principal, Some(&room), (&page, &search)).await
}

/// Searches every room the caller may read, newest first.
#[utoipa::path(get, path = "/search", tag = "messaging", params(SearchParams, PageParams),
    responses((status = 200, body = Page<ChatMessageView>), (status = 400), (status = 401), (status = 422)))]
pub(super) async fn search(
    State(state): State<MessagingState>,
    principal: Principal,
    Query(page): Query<PageParams>,
    Query(search): Query<SearchParams>,
) -> Result<Json<Page<ChatMessageView>>, ApiError> {
    find(&state, &principal, None, (&page, &search)).await
}
