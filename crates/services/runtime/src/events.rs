//! What the runtime publishes on `AGENT_RUNS`: `agent.run.completed.<agent>`
//! and `agent.run.failed.<agent>` (a cancellation is a failure whose status
//! says so), staged with the run's last write, and each run's live events
//! on `runs.<agent>` (`daarion_agents::runs::RunEvent`). It consumes
//! `agent.run.requested.<agent>` (`worker`).

use daarion_bus::Envelope;
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
