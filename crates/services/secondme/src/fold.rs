//! A conversation's rolling summary: once `summary_every` turns have left
//! the window a run reads, the agent itself folds them into the next
//! version of its summary of the conversation, in a run of its own on the
//! summary so far and those turns (named after the last of them, so a
//! retry is the same run). Runs read the latest before their window.

use daarion_access::Principal;
use daarion_agents::{chat, runs::RunRequest, store::Agent};
use daarion_memory::summaries::{self, ConversationSummary, Fold};

use crate::{SecondMeState, domain::Speaker, store};

/// Most turns one fold reads (a longer backlog folds over several).
const FOLD_AT_MOST: u32 = 200;

/// The summaries' name for a conversation.
pub fn key(conversation: &str) -> String {
    format!("secondme:{conversation}")
}

/// The latest summary of `conversation` by `agent` (a failed read leaves
/// the run without it).
pub async fn latest(
    state: &SecondMeState,
    agent: &str,
    conversation: &str,
) -> Option<ConversationSummary> {
    summaries::latest(&state.db, agent, &key(conversation))
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, agent, "Second Me answers without its conversation's summary");
            None
        })
}

/// Folds, in the background, what has left the window (which starts at
/// turn `window_start`) since `previous`, when enough has.
pub fn later(
    state: &SecondMeState,
    person: &Principal,
    agent: &Agent,
    (conversation, window_start): (&str, i64),
    previous: Option<ConversationSummary>,
) {
    let every = state.settings.summary_every;
    if !summaries::may_be_due(previous.as_ref(), window_start, every) {
        return;
    }
    let (state2, person) = (state.clone(), (person.name(), person.handle.clone()));
    let (agent, conversation) = (agent.clone(), conversation.to_owned());
    state.tasks.spawn(async move {
        let folded = fold(&state2, &person, &agent, (&conversation, window_start), previous.as_ref()).await;
        if let Err(error) = folded {
            tracing::warn!(%error, agent = %agent.slug, "a Second Me conversation's summary was not folded");
        }
    });
}

async fn fold(
    state: &SecondMeState,
    (person, handle): &(String, String),
    agent: &Agent,
    (conversation, window_start): (&str, i64),
    previous: Option<&ConversationSummary>,
) -> Result<(), String> {
    let since = previous.map_or(0, |p| p.through);
    let mut left = store::turns(&state.db, conversation, since, FOLD_AT_MOST)
        .await
        .map_err(|e| e.to_string())?;
    left.truncate(FOLD_AT_MOST as usize);
    left.retain(|t| t.seq < window_start);
    let Some(last) = left.last() else {
        return Ok(());
    };
    if left.len() < state.settings.summary_every {
        return Ok(());
    }
    let through = last.seq;
    let said: Vec<(String, String)> = left
        .iter()
        .map(|t| {
            let who = match t.role {
                Speaker::User => format!("@{handle}"),
                Speaker::Assistant => "Second Me".to_owned(),
            };
            (who, t.content.clone())
        })
        .collect();
    let run_id = chat::run_id(
        &format!("secondme fold {conversation}"),
        Some(&through.to_string()),
    );
    let request = RunRequest {
        run_id: run_id.clone(),
        agent: agent.slug.clone(),
        room: String::new(),
        topic: String::new(),
        message_id: None,
        messages: summaries::request(previous.map(|p| p.summary.as_str()), &said),
        asker: person.clone(),
        note: None,
    };
    let events = chat::ask(state.bus.as_ref(), &request)
        .await
        .map_err(|e| e.to_string())?;
    let (summary, _, _) = chat::answer_of(events, &run_id)
        .await
        .map_err(|e| e.to_string())?;
    let fold = Fold {
        summary: &summary,
        through,
        folded: i64::try_from(left.len()).unwrap_or(i64::MAX),
        model: &agent.model,
    };
    summaries::keep(
        &state.db,
        (&agent.slug, &key(conversation)),
        previous,
        &fold,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}
