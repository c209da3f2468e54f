//! The `agent-worker` consumer: one delivery of `agent.run.requested` is
//! one attempt at the run. The run is recorded once, leased (a second
//! delivery while it runs waits for the lease), and executed step by step:
//! model call, tool calls, model call... each finished step checkpointed,
//! so an attempt after a crash replays the finished steps from the store
//! instead of repeating them. The answer is posted with the run's id as
//! its idempotency key (one reply, however many attempts), then the run
//! finishes with its event and the asker's usage record.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use daarion_access::{Action, Enforcer, Principal, PrincipalKind};
use daarion_agents::domain::Lifecycle;
use daarion_bus::{Envelope, HandlerError, Outbox};
use daarion_control::{ControlClient, domain::DocKind};
use daarion_messaging::{Poster, Posting, domain::MessagingError, store::Window};
use daarion_store::Db;
use daarion_usage::{Outcome, UsageKind, UsageRecord};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE, Settings,
    city::City,
    domain::{self, Next, RunError, RunRequest, RunStatus, Said},
    events,
    store::{self, Ending, Lease, Run, Step},
};

#[derive(Clone)]
pub struct Worker {
    pub db: Db,
    pub outbox: Outbox,
    pub poster: Poster,
    pub city: City,
    pub control: ControlClient,
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
        let owner = format!("w_{}", uuid::Uuid::now_v7().simple());
        let attempts =
            match store::lease(&self.db, &request.run_id, &owner, &self.lease_until()).await? {
                Lease::Finished(_) => return Ok(()),
                Lease::Held => {
                    return Err(RunError::Transient(format!(
                        "{} is held by another worker",
                        request.run_id
                    )));
                }
                Lease::Taken(attempts) => attempts,
            };
        let started = Instant::now();
        let lost = CancellationToken::new();
        let heartbeat = tokio::spawn(self.clone().heartbeat(
            request.run_id.clone(),
            owner.clone(),
            lost.clone(),
        ));
        let timeout = Duration::from_secs(self.settings.run_timeout_secs);
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(timeout, self.execute(request, &owner)) => {
                outcome.unwrap_or_else(|_| Err(RunError::Permanent(format!(
                    "the run took longer than {} s", timeout.as_secs()
                ))))
            }
            () = lost.cancelled() => Err(RunError::Conflict("the run's lease was lost".into())),
        };
        heartbeat.abort();
        let latency = started.elapsed();
        match outcome {
            Ok(reply) => {
                self.finish(
                    request,
                    &owner,
                    RunStatus::Completed,
                    Some(&reply),
                    None,
                    latency,
                )
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
                self.finish(
                    request,
                    &owner,
                    RunStatus::Failed,
                    None,
                    Some(&message),
                    latency,
                )
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

    async fn finish(
        &self,
        request: &RunRequest,
        owner: &str,
        status: RunStatus,
        reply: Option<&str>,
        error: Option<&str>,
        latency: Duration,
    ) -> Result<(), RunError> {
        let ending = Ending {
            status,
            reply_message_id: reply,
            error,
        };
        let finished = store::finish(
            &self.db,
            &self.outbox,
            &request.run_id,
            Some(owner),
            ending,
            |run| vec![events::finished(run), usage_event(run, latency)],
        )
        .await?;
        if let Some((run, staged)) = finished {
            self.outbox.relay(staged).await;
            metrics::counter!("runtime_runs_total", "status" => run.status.as_str()).increment(1);
        }
        Ok(())
    }

    /// The run itself, resumed after its finished steps; answers the
    /// reply's message id.
    async fn execute(&self, request: &RunRequest, owner: &str) -> Result<String, RunError> {
        let agent = daarion_agents::store::get(&self.db, &request.agent)
            .await
            .map_err(|e| RunError::Transient(e.to_string()))?
            .ok_or_else(|| RunError::Permanent(format!("no agent {:?}", request.agent)))?;
        if agent.status != Lifecycle::Active {
            return Err(RunError::Permanent(
                "the agent is paused or archived".into(),
            ));
        }
        let room = daarion_messaging::store::room(&self.db, &request.room)
            .await
            .map_err(messaging_error)?
            .ok_or_else(|| RunError::Permanent("the room is gone".into()))?;
        let me = self.agent_principal(&agent.slug).await?;
        let room_resource = daarion_messaging::access::room_of(&self.db, &room)
            .await
            .map_err(messaging_error)?;
        if !self.access.allows(&me, Action::SendMessage, &room_resource) {
            return Err(RunError::Permanent(
                "the agent may not post in this room".into(),
            ));
        }
        let (functions, tools) = self.tools(&agent.slug).await?;
        let mut transcript = domain::transcript(
            &agent.slug,
            self.prompt(&agent.slug).await?.as_deref(),
            &self
                .window(request)
                .await?
                .iter()
                .map(|m| Said {
                    author: &m.author,
                    handle: &m.author_handle,
                    body: &m.body,
                })
                .collect::<Vec<_>>(),
        );
        let done = store::steps(&self.db, &request.run_id).await?;
        let mut n = 0usize;
        for _ in 0..self.settings.max_steps {
            let step = match done.get(n) {
                Some(step) => step.clone(),
                None => {
                    let step = self
                        .model_step(n, &agent.model, &agent.slug, &transcript, &functions)
                        .await?;
                    store::checkpoint(&self.db, &request.run_id, owner, &step).await?;
                    step
                }
            };
            n += 1;
            transcript.push(assistant_turn(&step.output));
            let calls = match domain::next(&step.output) {
                Next::Answer(text) if text.is_empty() => {
                    return Err(RunError::Permanent("the model answered nothing".into()));
                }
                Next::Answer(text) => return self.reply(request, &room, &me, &text).await,
                Next::Tools(calls) => calls,
            };
            for call in calls {
                let step = match done.get(n) {
                    Some(step) => step.clone(),
                    None => {
                        let step = self
                            .tool_step(n, &agent.slug, &tools, &call, &request.asker)
                            .await?;
                        store::checkpoint(&self.db, &request.run_id, owner, &step).await?;
                        step
                    }
                };
                n += 1;
                transcript.push(json!({
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": step.output.to_string(),
                }));
            }
        }
        Err(RunError::Permanent(format!(
            "no answer within {} model calls",
            self.settings.max_steps
        )))
    }

    async fn agent_principal(&self, slug: &str) -> Result<Principal, RunError> {
        self.access
            .directory()
            .principal(PrincipalKind::Agent, slug)
            .await
            .map_err(|e| RunError::Transient(e.to_string()))?
            .ok_or_else(|| RunError::Permanent(format!("agent {slug:?} has no identity")))
    }

    async fn prompt(&self, agent: &str) -> Result<Option<String>, RunError> {
        let doc = self
            .control
            .get(DocKind::Prompt, agent)
            .await
            .map_err(|e| RunError::Transient(e.to_string()))?;
        Ok(doc.and_then(|d| d.value["text"].as_str().map(str::to_owned)))
    }

    /// The agent's tools as model functions, and which tool each names.
    async fn tools(&self, agent: &str) -> Result<(Vec<Value>, HashMap<String, String>), RunError> {
        let policy = self
            .control
            .get(DocKind::AgentPolicy, agent)
            .await
            .map_err(|e| RunError::Transient(e.to_string()))?;
        let names: Vec<String> = policy
            .and_then(|doc| doc.value["allowed_tools"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        let mut functions = Vec::new();
        let mut tools = HashMap::new();
        for name in names {
            // A tool the city no longer has is left out, not fatal.
            let Some(tool) = self.city.tool(agent, &name).await? else {
                continue;
            };
            if tool["enabled"] == false {
                continue;
            }
            let function = domain::function_name(&name);
            functions.push(json!({"type": "function", "function": {
                "name": function,
                "description": tool["description"],
                "parameters": tool["parameters"],
            }}));
            tools.insert(function, name);
        }
        Ok((functions, tools))
    }

    /// The room's conversation up to the message answered, oldest first.
    async fn window(
        &self,
        request: &RunRequest,
    ) -> Result<Vec<daarion_messaging::store::Message>, RunError> {
        let bound = match &request.message_id {
            Some(id) => {
                let asked = daarion_messaging::store::message(&self.db, &request.room, id)
                    .await
                    .map_err(messaging_error)?;
                Window::Before(asked.seq + 1)
            }
            None => Window::Latest,
        };
        let topic = (!request.topic.is_empty()).then_some(request.topic.as_str());
        let mut messages = daarion_messaging::store::history(
            &self.db,
            &request.room,
            topic,
            bound,
            self.settings.window_messages,
        )
        .await
        .map_err(messaging_error)?;
        messages.truncate(self.settings.window_messages as usize);
        messages.retain(|m| m.deleted_at.is_none());
        messages.reverse();
        Ok(messages)
    }

    async fn model_step(
        &self,
        n: usize,
        model: &str,
        agent: &str,
        transcript: &[Value],
        functions: &[Value],
    ) -> Result<Step, RunError> {
        let mut request = json!({ "model": model, "messages": transcript });
        if !functions.is_empty() {
            request["tools"] = Value::from(functions.to_vec());
        }
        let started = Instant::now();
        let completion = self
            .city
            .complete(
                agent,
                &request,
                Duration::from_secs(self.settings.run_timeout_secs),
            )
            .await?;
        Ok(Step {
            n: n as i64,
            kind: "model".into(),
            name: model.to_owned(),
            input: Value::Null,
            output: completion.message,
            ok: true,
            tokens_in: completion.tokens_in,
            tokens_out: completion.tokens_out,
            latency_ms: elapsed_ms(started),
            created_at: daarion_store::now(),
        })
    }

    async fn tool_step(
        &self,
        n: usize,
        agent: &str,
        tools: &HashMap<String, String>,
        call: &domain::ToolCall,
        asker: &str,
    ) -> Result<Step, RunError> {
        let started = Instant::now();
        let (name, answer) = match tools.get(&call.function) {
            Some(name) => (
                name.clone(),
                self.city
                    .call_tool(
                        agent,
                        name,
                        &call.arguments,
                        asker,
                        Duration::from_secs(self.settings.run_timeout_secs),
                    )
                    .await?,
            ),
            None => (
                call.function.clone(),
                crate::city::ToolAnswer {
                    ok: false,
                    output: json!({ "error": format!("{} is not among your tools", call.function) }),
                },
            ),
        };
        Ok(Step {
            n: n as i64,
            kind: "tool".into(),
            name,
            input: call.arguments.clone(),
            output: answer.output,
            ok: answer.ok,
            tokens_in: 0,
            tokens_out: 0,
            latency_ms: elapsed_ms(started),
            created_at: daarion_store::now(),
        })
    }

    async fn reply(
        &self,
        request: &RunRequest,
        room: &daarion_messaging::domain::Room,
        me: &Principal,
        text: &str,
    ) -> Result<String, RunError> {
        let body = domain::reply_body(text, self.settings.max_reply_chars);
        let posting = Posting {
            body: &body,
            topic: Some(&request.topic),
            reply_to: request.message_id.clone(),
            attachments: Vec::new(),
            max_chars: self.settings.max_reply_chars,
        };
        let key = format!("run:{}", request.run_id);
        let (message, _) = self
            .poster
            .post(room, me, posting, Some(&key))
            .await
            .map_err(messaging_error)?;
        Ok(message.id)
    }
}

/// The model's turn as the next call reads it.
fn assistant_turn(message: &Value) -> Value {
    let mut turn = json!({ "role": "assistant", "content": message["content"] });
    if message["tool_calls"].is_array() {
        turn["tool_calls"] = message["tool_calls"].clone();
    }
    turn
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn messaging_error(error: MessagingError) -> RunError {
    match error {
        MessagingError::Interrupted(m) => RunError::Transient(m),
        MessagingError::Store(e) if e.is_retryable() => RunError::Transient(e.to_string()),
        MessagingError::Bus(e) => RunError::Transient(e.to_string()),
        MessagingError::Cache(e) => RunError::Transient(e.to_string()),
        other => RunError::Permanent(other.to_string()),
    }
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
