//! Second Me's rules: what a person may say, how a conversation is named,
//! what their agent is told it is.

use daarion_agents::domain::AgentError;
use daarion_memory::MemoryError;
use daarion_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

daarion_kernel::named_enum!(
    /// Who said a turn.
    Speaker {
        /// The person.
        User => "user",
        /// Their Second Me.
        Assistant => "assistant",
    }
);

/// A conversation with one's Second Me.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Conversation {
    /// `smc_…`.
    pub id: String,
    /// Its first message, cut to 80 characters.
    pub title: String,
    /// Turns so far (the person's and the answers).
    pub turns: i64,
    pub created_at: String,
    /// When its last turn was said.
    pub updated_at: String,
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Turn {
    /// Its place in the conversation, from 1.
    pub seq: i64,
    pub role: Speaker,
    pub content: String,
    /// The agent run that answered the person's turn (both turns name it).
    pub run_id: String,
    /// For an answer: whether what the person told before went into it.
    pub recalled: bool,
    pub created_at: String,
}

/// The longest message a person sends their Second Me.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// A conversation's title: its first message, cut to this many characters.
pub const TITLE_CHARS: usize = 80;

#[derive(Debug, thiserror::Error)]
pub enum SecondMeError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

impl From<daarion_store::sql::Error> for SecondMeError {
    fn from(error: daarion_store::sql::Error) -> Self {
        Self::Store(error.into())
    }
}

/// A message as sent: trimmed, 1 to [`MAX_MESSAGE_CHARS`] characters.
pub fn message(raw: &str) -> Result<String, SecondMeError> {
    let text = raw.trim();
    if text.is_empty() || text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(SecondMeError::Invalid(format!(
            "message must be 1 to {MAX_MESSAGE_CHARS} characters"
        )));
    }
    Ok(text.to_owned())
}

/// A conversation's title from its first message: the first line, cut
/// between words to at most [`TITLE_CHARS`] characters (with an ellipsis).
pub fn title(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= TITLE_CHARS {
        return line.to_owned();
    }
    let cut: String = line.chars().take(TITLE_CHARS - 1).collect();
    let cut = match cut.rfind(char::is_whitespace) {
        Some(at) if at > TITLE_CHARS / 2 => cut[..at].trim_end().to_owned(),
        _ => cut,
    };
    format!("{cut}…")
}

/// What a person's agent is told it is (its prompt, which they can change
/// on its page in the hub).
pub fn prompt(handle: &str) -> String {
    format!(
        "You are the Second Me of {handle}: their own assistant in the DAARION city, and you answer \
         only them. What they told you before is recalled for you as a system turn before their \
         message; use it when it bears on what they ask, and say so. When you do not know, say \
         that rather than guess. Answer in the language they write in."
    )
}

/// The heading of what a run recalls from the person's memory.
pub const RECALL_HEADER: &str =
    "From what this person told you before (their own memory), what may bear on their message:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_the_first_line_cut_between_words() {
        assert_eq!(
            title("  My daughter is Olena\nand more"),
            "My daughter is Olena"
        );
        let long = "word ".repeat(40);
        let t = title(&long);
        assert!(t.ends_with('…') && t.chars().count() <= TITLE_CHARS, "{t}");
        assert!(!t.contains("wor…"), "cut inside a word: {t}");
        let unbroken = "x".repeat(200);
        assert_eq!(title(&unbroken).chars().count(), TITLE_CHARS);
    }

    #[test]
    fn messages_are_trimmed_and_bounded() {
        assert_eq!(message("  hi \n").unwrap(), "hi");
        assert!(matches!(message(" \n "), Err(SecondMeError::Invalid(_))));
        assert!(message(&"я".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(message(&"я".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
    }
}
