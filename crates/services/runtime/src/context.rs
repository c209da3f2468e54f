//! What a run is told beside the conversation it reads: its community's
//! knowledge nearest the question (`recall`), and the rolling summary of
//! what has left its window of the room (`earlier`), folded again after it
//! answers once the window has moved far enough (`fold`).

use std::time::Duration;

use daarion_access::{Action, Principal, PrincipalKind};
use daarion_agents::{runs::RunRequest, store::Agent};
use daarion_memory::summaries::{self, ConversationSummary, Fold};
use daarion_messaging::store::Window;
use serde_json::{Value, json};

use crate::worker::Worker;

/// Passages of the community's knowledge a run is given.
const RECALLED: usize = 3;

/// Most messages one fold reads (a longer backlog is folded from its
/// latest messages).
const FOLD_AT_MOST: u32 = 200;

/// The topic a room run answers in, if one.
pub(crate) fn topic(request: &RunRequest) -> Option<&str> {
    (!request.topic.is_empty()).then_some(request.topic.as_str())
}

/// The conversation a room run's window is of.
fn conversation(request: &RunRequest) -> String {
    summaries::room_conversation(&request.room, topic(request))
}

impl Worker {
    /// What the room's community knows about the question, as a system
    /// turn just before it — when both the agent and the asker may read
    /// that knowledge (a guest of the community, or a stranger, gets no
    /// more through the agent than they could read). A failed search
    /// leaves the run without it rather than failing it.
    pub(crate) async fn recall(
        &self,
        dao: &str,
        me: &Principal,
        asker: &str,
        transcript: &mut Vec<Value>,
    ) {
        let Some(at) = transcript.iter().rposition(|turn| turn["role"] == "user") else {
            return;
        };
        let question = transcript[at]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let knowledge = daarion_memory::access::knowledge_resource(dao);
        let asker = match asker.split_once(':') {
            Some(("user", id)) => self
                .access
                .directory()
                .principal(PrincipalKind::User, id)
                .await
                .ok()
                .flatten(),
            _ => None,
        };
        let may_read = |who: &Principal| self.access.allows(who, Action::Read, &knowledge);
        if question.trim().is_empty() || !may_read(me) || !asker.as_ref().is_some_and(may_read) {
            return;
        }
        let header = format!(
            "From the community's knowledge ({dao}), what may bear on the question; cite a document by its title when you use it:"
        );
        let note = match self
            .knowledge
            .recall(dao, &question, (&header, RECALLED))
            .await
        {
            Ok(Some(note)) => note,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, %dao, "run without its community's knowledge");
                return;
            }
        };
        transcript.insert(at, json!({ "role": "system", "content": note }));
    }

    /// The agent's latest summary of what came before its window in the
    /// room, told as a system turn before the window (after the prompt).
    /// A failed read leaves the run without it.
    pub(crate) async fn earlier(
        &self,
        agent: &str,
        request: &RunRequest,
        transcript: &mut Vec<Value>,
    ) -> Option<ConversationSummary> {
        let summary = summaries::latest(&self.db, agent, &conversation(request))
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, agent, "run without the summary of its room");
                None
            })?;
        let at = transcript
            .iter()
            .take_while(|turn| turn["role"] == "system")
            .count();
        let told = summaries::told(&summary);
        transcript.insert(at, json!({ "role": "system", "content": told }));
        Some(summary)
    }

    /// After an answer in a room, in the background (the run ends without
    /// waiting for it): when at least `summary_every` messages have left
    /// the window (it starts at `window_start`) since the last fold, the
    /// agent's model folds them into the next version of the summary
    /// (metered to the agent, like its other calls). A failure is only
    /// logged: the next run tries again.
    pub(crate) fn fold_later(
        &self,
        agent: &Agent,
        request: &RunRequest,
        window_start: i64,
        previous: Option<ConversationSummary>,
    ) {
        let every = self.settings.summary_every as usize;
        if !summaries::may_be_due(previous.as_ref(), window_start, every) {
            return;
        }
        let (worker, agent, request) = (self.clone(), agent.clone(), request.clone());
        tokio::spawn(async move {
            let folded = worker
                .try_fold(&agent, &request, window_start, previous.as_ref())
                .await;
            if let Err(error) = folded {
                tracing::warn!(%error, agent = %agent.slug, room = %request.room, "the room's summary was not folded");
            }
        });
    }

    async fn try_fold(
        &self,
        agent: &Agent,
        request: &RunRequest,
        window_start: i64,
        previous: Option<&ConversationSummary>,
    ) -> Result<(), String> {
        let since = previous.map_or(0, |p| p.through);
        let mut left = daarion_messaging::store::history(
            &self.db,
            &request.room,
            topic(request),
            Window::Before(window_start),
            FOLD_AT_MOST,
        )
        .await
        .map_err(|e| e.to_string())?;
        left.truncate(FOLD_AT_MOST as usize);
        left.retain(|m| m.seq > since && m.deleted_at.is_none());
        if left.len() < self.settings.summary_every as usize {
            return Ok(());
        }
        left.reverse();
        let through = left.last().map_or(since, |m| m.seq);
        let said: Vec<(String, String)> = left
            .iter()
            .map(|m| (format!("@{}", m.author_handle), m.body.clone()))
            .collect();
        let asked = json!({
            "model": agent.model,
            "messages": summaries::request(previous.map(|p| p.summary.as_str()), &said),
        });
        let written = self
            .city
            .complete(
                &agent.slug,
                &asked,
                Duration::from_secs(self.settings.run_timeout_secs),
                |_| {},
            )
            .await
            .map_err(|e| e.to_string())?;
        let text = written.message["content"].as_str().unwrap_or_default();
        let fold = Fold {
            summary: text,
            through,
            folded: i64::try_from(left.len()).unwrap_or(i64::MAX),
            model: &agent.model,
        };
        summaries::keep(
            &self.db,
            (&agent.slug, &conversation(request)),
            previous,
            &fold,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(())
    }
}
