//! The `agent-worker` consumer: one delivery of `agent.run.requested` is
//! one attempt at the run. The run is recorded once, leased (a second
//! delivery while it runs waits for the lease), and executed step by step:
//! model call, tool calls, model call... each finished step checkpointed,
//! so an attempt after a crash replays the finished steps from the store
//! instead of repeating them. The answer is posted with the run's id as
//! its idempotency key (one reply, however many attempts), then the run
//! finishes with its event and the asker's usage record.

//!
//! This module is the delivery side (record, plan and budget, lease,
//! heartbeats, the end); `execute` is the run's steps.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use daarion_access::{Enforcer, Subject};
use daarion_agents::{
    runs::{RunEvent, RunRequest},
    store::Agent,
};
use daarion_bus::{Bus, Envelope, HandlerError, Outbox};
use daarion_control::ControlClient;
use daarion_messaging::Poster;
use daarion_store::Db;
use daarion_usage::{Outcome, UsageKind, UsageRecord};
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE, Settings,
    city::City,
    domain::{self, RunError, RunStatus},
    events,
    store::{self, Ending, Lease, Run},
};

#[derive(Clone)]
pub struct Worker {
    pub db: Db,
    /// The agents' plans (runs at once, a day, people a day).
    pub meter: daarion_usage::Meter,
    pub outbox: Outbox,
    /// For the live events of runs.
    pub bus: Arc<dyn Bus>,
    pub poster: Poster,
    pub city: City,
    pub control: ControlClient,
    /// Communities' knowledge, recalled into runs in their rooms.
    pub knowledge: daarion_memory::Knowledge,
    pub access: Arc<Enforcer>,
    pub settings: Arc<Settings>,
}

impl Worker {
    /// One delivery of a run request.
    pub async fn handle(&self, envelope: Envelope) -> Result<(), HandlerError> {
        let request: RunRequest = match serde_json::from_value(envelope.payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, event = %envelope.id, "a run request that is not one");
                return Ok(());
            }
        };
        if let Err(error) = request.check() {
            tracing::warn!(%error, event = %envelope.id, "a run request that is not valid");
            return Ok(());
        }
        self.attempt(&request).await.map_err(HandlerError::new)
    }

    async fn attempt(&self, request: &RunRequest) -> Result<(), RunError> {
        store::open(&self.db, request).await?;
        let run = store::get(&self.db, &request.run_id)
            .await?
            .ok_or_else(|| RunError::NotFound(format!("no run {:?}", request.run_id)))?;
        let limits = self
            .meter
            .run_limits(&request.agent)
            .await
            .map_err(|e| RunError::Transient(e.to_string()))?;
        // Read once per attempt: the budget check and the run both need it.
        let agent = daarion_agents::store::get(&self.db, &request.agent)
            .await
            .map_err(|e| RunError::Transient(e.to_string()))?;
        if !run.status.is_finished() && run.started_at.is_none() {
            let day = store::day(&self.db, &run, &today()).await?;
            if let Some(why) = domain::refused_today(&limits, &day) {
                return self.refuse(&run, &why).await;
            }
            if let Some(why) = self.budget_spent(&run.agent, agent.as_ref()).await? {
                return self.refuse(&run, &why).await;
            }
        }
        let owner = format!("w_{}", uuid::Uuid::now_v7().simple());
        let lease = store::lease(
            &self.db,
            &run,
            &owner,
            &self.lease_until(),
            limits.concurrent_runs,
        )
        .await?;
        let attempts = match lease {
            Lease::Finished(run) => {
                // Asked again (a caller's retry): its end, told again.
                self.live(events::ended(*run)).await;
                return Ok(());
            }
            Lease::Held => {
                return Err(RunError::Transient(format!(
                    "{} is held by another worker",
                    request.run_id
                )));
            }
            // Comes back later, when one of the agent's runs has ended.
            Lease::Busy => {
                return Err(RunError::Transient(format!(
                    "the agent's plan allows at most {} runs at once",
                    limits.concurrent_runs.unwrap_or(0)
                )));
            }
            Lease::Taken(attempts) => attempts,
        };
        self.live(RunEvent::Started {
            run: request.run_id.clone(),
            agent: request.agent.clone(),
        })
        .await;
        let started = Instant::now();
        let lost = CancellationToken::new();
        let heartbeat = tokio::spawn(self.clone().heartbeat(
            request.run_id.clone(),
            owner.clone(),
            lost.clone(),
        ));
        let timeout = Duration::from_secs(self.settings.run_timeout_secs);
        let run = async {
            tokio::select! {
                outcome = tokio::time::timeout(timeout, self.execute(request, agent.as_ref(), &owner)) => {
                    outcome.unwrap_or_else(|_| Err(RunError::Permanent(format!(
                        "the run took longer than {} s", timeout.as_secs()
                    ))))
                }
                () = lost.cancelled() => Err(RunError::Conflict("the run's lease was lost".into())),
            }
        };
        let report = |status| self.city.presence(&request.agent, status);
        let outcome = busy_while(BUSY_AFTER, report, run).await;
        heartbeat.abort();
        self.city.presence(&request.agent, "online").await;
        let latency = started.elapsed();
        match outcome {
            Ok(done) => {
                let ending = Ending {
                    status: RunStatus::Completed,
                    reply_message_id: done.reply.as_deref(),
                    answer: Some(&done.answer),
                    error: None,
                };
                self.finish(&request.run_id, Some(&owner), ending, Some(latency))
                    .await
            }
            // Cancelled, or taken over by another worker: theirs to finish.
            Err(RunError::Conflict(reason)) => {
                tracing::info!(run = %request.run_id, %reason, "attempt stopped");
                Ok(())
            }
            Err(error)
                if error.is_transient() && attempts < i64::from(self.settings.max_attempts) =>
            {
                store::release(&self.db, &request.run_id, &owner).await?;
                Err(error)
            }
            Err(error) => {
                let message = if error.is_transient() {
                    format!("gave up after {attempts} attempts: {error}")
                } else {
                    error.to_string()
                };
                let ending = Ending {
                    status: RunStatus::Failed,
                    reply_message_id: None,
                    answer: None,
                    error: Some(&message),
                };
                self.finish(&request.run_id, Some(&owner), ending, Some(latency))
                    .await?;
                // The runner dead-letters what keeps failing for the
                // operators; a run refused for good is settled here.
                if error.is_transient() {
                    Err(error)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Why the run may not start for money: the agent's or its owner's
    /// budget for the month spent (the LLM proxy would refuse its first
    /// model call; this refuses before anything runs).
    async fn budget_spent(
        &self,
        slug: &str,
        agent: Option<&Agent>,
    ) -> Result<Option<String>, RunError> {
        let mut payers = vec![(Subject::Agent(slug.to_owned()), "the agent's")];
        if let Some(owner) = agent.and_then(|a| a.owner.strip_prefix("user:")) {
            payers.push((Subject::User(owner.to_owned()), "its owner's"));
        }
        for (subject, whose) in payers {
            let status = self
                .meter
                .status(&subject)
                .await
                .map_err(|e| RunError::Transient(e.to_string()))?;
            let spent = status
                .budget_micros_per_month
                .is_some_and(|b| status.spent_micros + status.reserved_micros >= b);
            if spent {
                return Ok(Some(format!("{whose} budget for the month is spent")));
            }
        }
        Ok(None)
    }

    /// Ends a run the agent's plan or budget does not allow now.
    async fn refuse(&self, run: &Run, why: &str) -> Result<(), RunError> {
        let ending = Ending {
            status: RunStatus::Failed,
            reply_message_id: None,
            answer: None,
            error: Some(why),
        };
        self.finish(&run.id, None, ending, None).await
    }

    fn lease_until(&self) -> String {
        let lease =
            chrono::Duration::seconds(i64::try_from(self.settings.lease_secs).unwrap_or(60));
        daarion_store::format_time(chrono::Utc::now() + lease)
    }

    /// Renews the lease every third of its length; says when it is lost.
    async fn heartbeat(self, run: String, owner: String, lost: CancellationToken) {
        let every = Duration::from_secs(self.settings.lease_secs).div_f64(3.0);
        loop {
            tokio::time::sleep(every).await;
            match store::heartbeat(&self.db, &run, &owner, &self.lease_until()).await {
                Ok(true) => {}
                Ok(false) => return lost.cancel(),
                Err(error) => tracing::warn!(%error, %run, "heartbeat failed"),
            }
        }
    }

    /// Publishes a live event of a run (lost if nobody listens).
    pub(crate) async fn live(&self, event: RunEvent) {
        events::live(&*self.bus, event).await;
    }

    /// Ends a run — held by `owner`, or (`None`) not started — with its
    /// event, its usage record when it ran (`latency`), and its live end.
    async fn finish(
        &self,
        run: &str,
        owner: Option<&str>,
        ending: Ending<'_>,
        latency: Option<Duration>,
    ) -> Result<(), RunError> {
        let finished = store::finish(&self.db, &self.outbox, run, owner, ending, |run| {
            let mut events = vec![events::finished(run)];
            events.extend(latency.map(|latency| usage_event(run, latency)));
            events
        })
        .await?;
        if let Some((run, staged)) = finished {
            self.outbox.relay(staged).await;
            metrics::counter!("runtime_runs_total", "status" => run.status.as_str()).increment(1);
            self.live(events::ended(run)).await;
        }
        Ok(())
    }
}

/// How long a run goes before its agent shows as busy: a run of a few
/// milliseconds would only flicker on the map (and spend a presence write
/// on each side).
const BUSY_AFTER: Duration = Duration::from_millis(300);

/// Runs `work`, reporting the agent busy if it lasts longer than `after`.
async fn busy_while<T, R, F>(after: Duration, report: R, work: impl Future<Output = T>) -> T
where
    R: FnOnce(&'static str) -> F,
    F: Future<Output = ()>,
{
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return done,
        () = tokio::time::sleep(after) => {}
    }
    let (done, ()) = tokio::join!(work, report("busy"));
    done
}

/// The start of today (UTC), as stored.
fn today() -> String {
    daarion_store::format_time(
        chrono::Utc::now()
            .date_naive()
            .and_time(chrono::NaiveTime::MIN)
            .and_utc(),
    )
}

/// The run itself, counted for the person who asked and the agent (its
/// tokens are on the model calls' own records, charged to the agent and
/// its owner: not counted twice).
fn usage_event(run: &Run, latency: Duration) -> Envelope {
    let mut record = UsageRecord::new(
        UsageKind::AgentRun,
        if run.status == RunStatus::Completed {
            Outcome::Ok
        } else {
            Outcome::Error
        },
    );
    record.user = run.asker.strip_prefix("user:").map(str::to_owned);
    record.agent = Some(run.agent.clone());
    record.run_id = Some(run.id.clone());
    record.latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    record.error_code = (run.status == RunStatus::Failed).then(|| "run_failed".into());
    daarion_usage::event(SERVICE, &record)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    async fn reported(work_for: Duration) -> Vec<&'static str> {
        let seen = Mutex::new(Vec::new());
        let report = |status| {
            seen.lock().unwrap().push(status);
            std::future::ready(())
        };
        let done = busy_while(Duration::from_millis(50), report, async {
            tokio::time::sleep(work_for).await;
            7
        })
        .await;
        assert_eq!(done, 7);
        seen.into_inner().unwrap()
    }

    #[tokio::test]
    async fn a_short_run_leaves_presence_alone_and_a_long_one_shows_busy() {
        assert!(reported(Duration::ZERO).await.is_empty());
        assert_eq!(reported(Duration::from_millis(200)).await, ["busy"]);
    }
}
