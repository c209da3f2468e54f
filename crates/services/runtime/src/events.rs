//! What the runtime publishes on `AGENT_RUNS`: `agent.run.completed.<agent>`
//! and `agent.run.failed.<agent>` (a cancellation is a failure whose status
//! says so), staged with the run's last write, and each run's live events
//! on `runs.<agent>` (`daarion_agents::runs::RunEvent`). It consumes
//! `agent.run.requested.<agent>` (`worker`).

use daarion_agents::runs::{self, RunEvent};
use daarion_bus::{Bus, Envelope};
use serde_json::json;

use crate::{SERVICE, domain::RunStatus, store::Run};

pub use daarion_agents::runs::{COMPLETED, FAILED, LIVE, REQUESTED};

/// A run that ended.
pub fn finished(run: &Run) -> Envelope {
    let what = if run.status == RunStatus::Completed {
        "completed"
    } else {
        "failed"
    };
    Envelope::new(
        SERVICE,
        format!("agent.run.{what}.{}", run.agent),
        json!({
            "run_id": run.id,
            "agent": run.agent,
            "room": run.room,
            "status": run.status.as_str(),
            "reply_message_id": run.reply_message_id,
            "answer": run.answer,
            "error": run.error,
            "asker": run.asker,
            "tokens_in": run.tokens_in,
            "tokens_out": run.tokens_out,
        }),
    )
    .with_actor(format!("agent:{}", run.agent))
}

/// Publishes a live event of a run (lost if nobody listens).
pub async fn live(bus: &dyn Bus, event: RunEvent) {
    if let Ok(payload) = serde_json::to_value(&event) {
        let envelope = Envelope::new(SERVICE, runs::live_subject(event.agent()), payload);
        if let Err(error) = bus.publish(&envelope).await {
            tracing::debug!(%error, "a run's live event was not published");
        }
    }
}

/// A finished run's end as its live event.
pub fn ended(run: Run) -> RunEvent {
    match run.status {
        RunStatus::Completed => RunEvent::Completed {
            run: run.id,
            agent: run.agent,
            answer: run.answer.unwrap_or_default(),
            tokens_in: run.tokens_in,
            tokens_out: run.tokens_out,
        },
        _ => RunEvent::Failed {
            run: run.id,
            agent: run.agent,
            error: run.error.unwrap_or_else(|| run.status.as_str().to_owned()),
        },
    }
}
