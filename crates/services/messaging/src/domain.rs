//! Messaging rules, independent of HTTP and SQL: the kinds of room and who
//! belongs in each, what a valid message, topic and reaction are, and the
//! errors callers can act on.

use daarion_access::vocab::roles::DaoRole;
use daarion_bus::BusError;
use daarion_cache::CacheError;
use daarion_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// Slow mode or the per-room rate: try again after this many seconds.
    #[error("{message}")]
    TooFast { message: String, retry_after: u64 },
    /// Posting stopped before its outcome was known (the process is
    /// stopping): retry with the same idempotency key.
    #[error("{0}")]
    Interrupted(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl From<StoreError> for MessagingError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::Store(other),
        }
    }
}

impl From<daarion_store::sql::Error> for MessagingError {
    fn from(error: daarion_store::sql::Error) -> Self {
        StoreError::from(error).into()
    }
}

fn invalid(message: impl Into<String>) -> MessagingError {
    MessagingError::Invalid(message.into())
}

/// The kinds of room: one message store and one live path for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind {
    /// A city room: every citizen reads and talks.
    Public,
    /// A microDAO's room: its members (or only some of its roles).
    Dao,
    /// Two people (or a person and an agent).
    Direct,
    /// A small conversation among those invited.
    Group,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Public => "public",
            RoomKind::Dao => "dao",
            RoomKind::Direct => "direct",
            RoomKind::Group => "group",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Public, Self::Dao, Self::Direct, Self::Group]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }

    /// Conversations list who is in them; other rooms follow a role.
    pub fn has_participants(self) -> bool {
        matches!(self, RoomKind::Direct | RoomKind::Group)
    }
}

/// A room as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Room {
    pub id: String,
    pub kind: RoomKind,
    pub dao: Option<String>,
    pub slug: Option<String>,
    pub title: String,
    pub description: String,
    /// MicroDAO rooms: the least role that reads (default: guests).
    pub audience: Option<DaoRole>,
    /// MicroDAO rooms: the least role that posts (default: members).
    pub posters: Option<DaoRole>,
    pub agents_allowed: bool,
    /// The agent that answers every message (its slug); `None`: agents
    /// answer when mentioned.
    pub responder: Option<String>,
    pub slow_mode_secs: u32,
    pub last_seq: i64,
    pub created_by: String,
    pub created_at: String,
    pub archived_at: Option<String>,
}

/// Room settings a manager may change (and a creator may set).
#[derive(Debug, Clone, Default)]
pub struct RoomSettings {
    pub title: Option<String>,
    pub description: Option<String>,
    pub audience: Option<Option<DaoRole>>,
    pub posters: Option<Option<DaoRole>>,
    pub agents_allowed: Option<bool>,
    pub responder: Option<Option<String>>,
    pub slow_mode_secs: Option<u32>,
}

/// A room's responder: an agent's id, or `""` for none.
pub fn responder(raw: &str) -> Result<Option<String>, MessagingError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let id = raw.strip_prefix("agent:").unwrap_or(raw);
    if daarion_kernel::names::is_slug(id) {
        Ok(Some(id.to_owned()))
    } else {
        Err(invalid("responder is an agent's id (or empty for none)"))
    }
}

pub const MAX_TITLE_CHARS: usize = 120;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
pub const MAX_SLOW_MODE_SECS: u32 = 6 * 3600;
pub const MAX_TOPIC_CHARS: usize = 60;
pub const MAX_ATTACHMENTS: usize = 10;
pub const MAX_MENTIONS: usize = 50;

pub fn title(raw: &str) -> Result<String, MessagingError> {
    let title = raw.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(invalid(format!(
            "title must be 1 to {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(title.to_owned())
}

pub fn description(raw: &str) -> Result<String, MessagingError> {
    let description = raw.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(description.to_owned())
}

pub fn slug(raw: &str) -> Result<String, MessagingError> {
    if daarion_kernel::names::is_slug(raw) {
        Ok(raw.to_owned())
    } else {
        Err(invalid(daarion_kernel::names::SLUG_RULE))
    }
}

pub fn slow_mode(secs: u32) -> Result<u32, MessagingError> {
    if secs > MAX_SLOW_MODE_SECS {
        return Err(invalid(format!(
            "slow_mode_secs must be at most {MAX_SLOW_MODE_SECS}"
        )));
    }
    Ok(secs)
}

/// A microDAO role that bounds who reads or posts in a room (agents are
/// members, so `agent` is not a bound).
pub fn bound(raw: &str) -> Result<DaoRole, MessagingError> {
    match DaoRole::parse(raw) {
        Some(DaoRole::Agent) | None => Err(invalid(
            "a room's audience or posters is one of owner, admin, member, guest",
        )),
        Some(role) => Ok(role),
    }
}

/// The bounds a holder of `role` passes: the role itself and every role
/// it nests in (an admin reads a room for members; an agent, a member).
pub fn bounds_reached(role: DaoRole) -> impl Iterator<Item = DaoRole> {
    std::iter::successors(Some(role), |r| r.parent()).filter(|r| *r != DaoRole::Agent)
}

/// The key that keeps one direct conversation per pair, whoever starts it.
/// A microDAO's room by its slug, as rooms are keyed.
pub fn dao_room_key(dao: &str, slug: &str) -> String {
    format!("dao:{dao}:{slug}")
}

pub fn direct_key(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("direct:{first}|{second}")
}

/// A principal name a conversation may hold: `user:<id>` or `agent:<id>`.
pub fn participant(raw: &str) -> Result<(daarion_access::PrincipalKind, String), MessagingError> {
    let (kind, id) = raw
        .split_once(':')
        .ok_or_else(|| invalid(format!("{raw:?} is not user:<id> or agent:<id>")))?;
    let kind = match kind {
        "user" => daarion_access::PrincipalKind::User,
        "agent" => daarion_access::PrincipalKind::Agent,
        _ => return Err(invalid(format!("{raw:?} is not user:<id> or agent:<id>"))),
    };
    let valid_id = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_id {
        return Err(invalid(format!("{raw:?} is not user:<id> or agent:<id>")));
    }
    Ok((kind, id.to_owned()))
}

/// A message body: not blank, at most `max_chars` characters, no control
/// characters other than newlines and tabs.
pub fn body(raw: &str, max_chars: usize) -> Result<String, MessagingError> {
    if raw.trim().is_empty() {
        return Err(invalid("message body must not be empty"));
    }
    if raw.chars().count() > max_chars {
        return Err(invalid(format!(
            "message body must be at most {max_chars} characters"
        )));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(invalid("message body must not contain control characters"));
    }
    Ok(raw.to_owned())
}

/// A topic (Zulip's: a thread by subject within a room): at most 60
/// characters on one line; blank means none.
pub fn topic(raw: &str) -> Result<String, MessagingError> {
    let topic = raw.trim();
    if topic.chars().count() > MAX_TOPIC_CHARS || topic.chars().any(char::is_control) {
        return Err(invalid(format!(
            "topic must be at most {MAX_TOPIC_CHARS} characters on one line"
        )));
    }
    Ok(topic.to_owned())
}

/// A reaction: one emoji (with its modifiers), or a short `:name:`.
pub fn reaction(raw: &str) -> Result<String, MessagingError> {
    let named = raw.len() >= 3
        && raw.len() <= 32
        && raw.starts_with(':')
        && raw.ends_with(':')
        && raw[1..raw.len() - 1].chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '+' || c == '-'
        });
    let emoji = !raw.is_empty()
        && raw.chars().count() <= 8
        && raw.len() <= 32
        && raw
            .chars()
            .all(|c| !c.is_ascii() && !c.is_control() && !c.is_whitespace());
    if named || emoji {
        Ok(raw.to_owned())
    } else {
        Err(invalid("a reaction is one emoji or a :name:"))
    }
}

/// A file a message points to (uploaded elsewhere: the ingest service, or
/// any HTTPS address); messaging keeps the reference only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// `https://…`, or `attachment:<id>` for one the ingest service holds.
    pub url: String,
    pub name: String,
    /// A MIME type such as `image/png`.
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub size: Option<u64>,
}

pub fn attachments(list: Vec<Attachment>) -> Result<Vec<Attachment>, MessagingError> {
    if list.len() > MAX_ATTACHMENTS {
        return Err(invalid(format!("at most {MAX_ATTACHMENTS} attachments")));
    }
    for a in &list {
        let url_ok = (a.url.starts_with("https://") || a.url.starts_with("attachment:"))
            && a.url.len() <= 2048
            && !a.url.chars().any(|c| c.is_whitespace() || c.is_control());
        if !url_ok {
            return Err(invalid(
                "an attachment's url is https://… or attachment:<id>, without spaces",
            ));
        }
        let name = a.name.trim();
        if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
            return Err(invalid("an attachment's name is 1 to 255 characters"));
        }
        if let Some(media) = &a.media_type {
            let ok = media.len() <= 127
                && media.split_once('/').is_some_and(|(t, s)| {
                    !t.is_empty()
                        && !s.is_empty()
                        && media
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "/.+-_".contains(c))
                });
            if !ok {
                return Err(invalid("an attachment's media_type is a MIME type"));
            }
        }
    }
    Ok(list)
}

/// Who a body mentions: `@username` for people, `@agent:<id>` for agents,
/// each once, in order of first mention (at most [`MAX_MENTIONS`]). Code
/// spans and blocks are not read, so `@` in code mentions nobody.
pub fn mentions(body: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut in_fence = false;
    for line in body.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut in_code = false;
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '`' {
                in_code = !in_code;
            } else if c == '@' && !in_code && (i == 0 || !is_handle_char(chars[i - 1])) {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && (is_handle_char(chars[end]) || chars[end] == ':') {
                    end += 1;
                }
                let handle: String = chars[start..end].iter().collect();
                // "@alice: hi" mentions alice; a bare "@agent:" nobody.
                let mut handle = handle.trim_end_matches(['.', '-']);
                if handle != "agent:" {
                    handle = handle.trim_end_matches(':');
                }
                let handle = handle.to_owned();
                if is_mention(&handle) && !found.contains(&handle) && found.len() < MAX_MENTIONS {
                    found.push(handle);
                }
                i = end;
                continue;
            }
            i += 1;
        }
    }
    found
}

fn is_handle_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

fn is_mention(handle: &str) -> bool {
    match handle.strip_prefix("agent:") {
        Some(id) => !id.is_empty() && !id.contains(':'),
        None => handle.len() >= 2 && !handle.contains(':'),
    }
}

/// The agents among `mentions` (their ids).
pub fn mentioned_agents(mentions: &[String]) -> impl Iterator<Item = &str> {
    mentions.iter().filter_map(|m| m.strip_prefix("agent:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_people_and_agents_outside_code() {
        assert_eq!(
            mentions("hi @alice and @agent:helper, also @alice again. mail a@b.c"),
            vec!["alice", "agent:helper"]
        );
        assert_eq!(mentions("`@nobody`\n```\n@fenced\n```\n@bob."), vec!["bob"]);
        assert!(mentions("@ @x @agent:").is_empty());
        assert_eq!(mentions("@alice: look"), vec!["alice"]);
    }

    #[test]
    fn bodies_topics_and_reactions() {
        assert!(body("hello\nworld", 20).is_ok());
        assert!(body("  ", 20).is_err());
        assert!(body(&"é".repeat(21), 20).is_err());
        assert!(body("bell\u{7}", 20).is_err());
        assert_eq!(
            topic("  Release plan ").ok().as_deref(),
            Some("Release plan")
        );
        assert!(topic("two\nlines").is_err());
        assert!(topic(&"t".repeat(61)).is_err());
        assert!(reaction("👍").is_ok());
        assert!(reaction("👍🏽").is_ok());
        assert!(reaction(":tada:").is_ok());
        assert!(reaction("<script>").is_err());
        assert!(reaction("ok").is_err());
        assert!(reaction("").is_err());
    }

    #[test]
    fn direct_keys_do_not_depend_on_who_starts() {
        assert_eq!(
            direct_key("user:b", "user:a"),
            direct_key("user:a", "user:b")
        );
    }

    #[test]
    fn attachments_are_references_only() {
        let a = |url: &str| Attachment {
            url: url.into(),
            name: "plan.pdf".into(),
            media_type: Some("application/pdf".into()),
            size: Some(10),
        };
        assert!(attachments(vec![a("https://files.example/plan.pdf")]).is_ok());
        assert!(attachments(vec![a("attachment:att_1")]).is_ok());
        assert!(attachments(vec![a("javascript:alert(1)")]).is_err());
        assert!(attachments(vec![a("http://plain.example/x")]).is_err());
        assert!(attachments(vec![a("https://x"); 11]).is_err());
    }

    #[test]
    fn participants_and_bounds() {
        assert!(participant("user:0190abc").is_ok());
        assert!(participant("agent:helper").is_ok());
        assert!(participant("service:x").is_err());
        assert!(participant("user:").is_err());
        assert!(participant("user:a b").is_err());
        assert!(bound("admin").is_ok());
        assert!(bound("agent").is_err());
    }
}
