//! A run's steps, resumed after the finished ones: its context (the
//! agent's prompt, the room's conversation or the caller's, screened by
//! its rule sets), then model call, tool calls, model call... each
//! checkpointed as it finishes, and the answer posted with the run's id as
//! its idempotency key. A crew's run is several such conversations, one
//! per member (`crew`), numbered in one sequence of steps: replaying the
//! finished steps in order walks the same path again.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use daarion_access::{Action, Principal, PrincipalKind};
use daarion_agents::{
    domain::{Crew, Lifecycle, Process},
    runs::{RunEvent, RunRequest},
    store::Agent,
};
use daarion_control::domain::DocKind;
use daarion_filter::{Direction, Screening, Verdict};
use daarion_messaging::{Posting, domain::MessagingError, store::Window};
use serde_json::{Value, json};

use crate::{
    crew,
    domain::{self, Next, RunError, Said},
    store::{self, Step},
    worker::Worker,
};

impl Worker {
    /// The run itself, resumed after its finished steps.
    pub(crate) async fn execute(
        &self,
        request: &RunRequest,
        agent: Option<&Agent>,
        owner: &str,
    ) -> Result<Done, RunError> {
        let agent =
            agent.ok_or_else(|| RunError::Permanent(format!("no agent {:?}", request.agent)))?;
        if agent.status != Lifecycle::Active {
            return Err(RunError::Permanent(
                "the agent is paused or archived".into(),
            ));
        }
        let me = self.agent_principal(&agent.slug).await?;
        let room = if request.room.is_empty() {
            None
        } else {
            Some(self.room_to_answer(request, &me).await?)
        };
        // A stranger's run acts for nobody: no tools; a sequential crew's
        // own agent does not speak (its members do, with theirs).
        let speaks = agent
            .crew
            .as_ref()
            .is_none_or(|crew| crew.process == Process::Hierarchical);
        let (functions, tools) = if request.asker.starts_with("user:") && speaks {
            self.tools(&agent.slug).await?
        } else {
            (Vec::new(), HashMap::new())
        };
        let daos: Vec<&str> = [
            agent.dao.as_deref(),
            room.as_ref().and_then(|r| r.dao.as_deref()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let screening = Screening::for_run(&self.db, &agent.slug, &daos, &request.run_id)
            .await
            .map_err(filter_error)?;
        self.keeps_its_rules(&screening, request).await?;
        let prompt = self.prompt(&agent.slug).await?;
        // A room's window starts at its first message; what came before
        // it reaches the run as the agent's summary.
        let mut earlier = None;
        let mut window_start = None;
        let mut transcript = if room.is_some() {
            let window = self.window(request).await?;
            window_start = window.first().map(|m| m.seq);
            let said: Vec<Said<'_>> = window
                .iter()
                .map(|m| Said {
                    author: &m.author,
                    handle: &m.author_handle,
                    body: &m.body,
                })
                .collect();
            let mut t = domain::transcript(&agent.slug, prompt.as_deref(), &said);
            earlier = self.earlier(&agent.slug, request, &mut t).await;
            t
        } else {
            let mut t = domain::transcript(&agent.slug, prompt.as_deref(), &[]);
            t.extend(request.messages.iter().cloned());
            t
        };
        screen_questions(&screening, &mut transcript).await?;
        if let Some(dao) = room.as_ref().and_then(|r| r.dao.as_deref()) {
            self.recall(dao, &me, &request.asker, &mut transcript).await;
        }
        if let Some(note) = &request.note {
            transcript.push(json!({ "role": "system", "content": note }));
        }
        let done = store::steps(&self.db, &request.run_id).await?;
        let mut progress = Progress {
            done: &done,
            n: 0,
            owner,
            work: Vec::new(),
        };
        let question = transcript
            .iter()
            .rev()
            .find(|turn| turn["role"] == "user")
            .and_then(|turn| turn["content"].as_str())
            .unwrap_or_default()
            .to_owned();
        let answer = match &agent.crew {
            None => {
                let speaker = Speaker {
                    slug: agent.slug.clone(),
                    model: agent.model.clone(),
                    functions,
                    tools,
                    voice: true,
                    crew: None,
                };
                self.converse(request, &speaker, transcript, &mut progress, &screening)
                    .await?
            }
            Some(crew) if crew.process == Process::Sequential => {
                self.in_turn(
                    request,
                    agent,
                    crew,
                    &transcript[1..],
                    &mut progress,
                    &screening,
                )
                .await?
            }
            Some(crew) => {
                let mut functions = functions;
                functions.push(crew::delegate_function(crew));
                transcript.insert(1, crew::manager_note(crew));
                let manager = Speaker {
                    slug: agent.slug.clone(),
                    model: agent.model.clone(),
                    functions,
                    tools,
                    voice: true,
                    crew: Some(crew.clone()),
                };
                self.converse(request, &manager, transcript, &mut progress, &screening)
                    .await?
            }
        };
        let answer = match screening
            .screen(Direction::Output, &answer)
            .await
            .map_err(filter_error)?
        {
            Verdict::Block(why) => {
                return Err(RunError::Permanent(format!(
                    "the answer was filtered: {why}"
                )));
            }
            Verdict::Pass { text, .. } => text,
        };
        let reply = match &room {
            Some(room) => Some(self.reply(request, room, &me, &answer).await?),
            None => None,
        };
        if let (Some(room), Some(_)) = (&room, &agent.crew) {
            let log = crew::log(&agent.name, &question, &progress.work, &answer);
            self.log_crew_work(request, room, &me, &log).await?;
        }
        if let Some(start) = window_start {
            self.fold_later(agent, request, start, earlier);
        }
        Ok(Done { answer, reply })
    }

    /// One speaker's conversation with its model: model call, its tool
    /// calls, model call... until it answers (the answer's words, not yet
    /// screened), each step replayed if it finished before.
    pub(crate) async fn converse(
        &self,
        request: &RunRequest,
        speaker: &Speaker,
        mut transcript: Vec<Value>,
        progress: &mut Progress<'_>,
        screening: &Screening,
    ) -> Result<String, RunError> {
        for _ in 0..self.settings.max_steps {
            let step = match progress.replay() {
                Some(step) => step,
                None => {
                    let step = self
                        .model_step(progress.n, request, speaker, &transcript)
                        .await?;
                    progress.keep(self, request, &step).await?;
                    step
                }
            };
            progress.n += 1;
            transcript.push(assistant_turn(&step.output));
            let calls = match domain::next(&step.output) {
                Next::Answer(text) if text.is_empty() => {
                    return Err(RunError::Permanent(format!(
                        "{} answered nothing",
                        speaker.slug
                    )));
                }
                Next::Answer(answer) => return Ok(answer),
                Next::Tools(calls) => calls,
            };
            for call in calls {
                let step = match &speaker.crew {
                    Some(crew) if call.function == crew::DELEGATE => {
                        Box::pin(self.delegate(request, speaker, crew, &call, progress, screening))
                            .await?
                    }
                    _ => match progress.replay() {
                        Some(step) => step,
                        None => {
                            let step = self.tool_step(progress.n, request, speaker, &call).await?;
                            progress.keep(self, request, &step).await?;
                            step
                        }
                    },
                };
                progress.n += 1;
                let content = match screening
                    .screen(Direction::Tool, &step.output.to_string())
                    .await
                    .map_err(filter_error)?
                {
                    Verdict::Block(why) => {
                        json!({ "error": format!("the tool's answer was withheld: it {why}") })
                            .to_string()
                    }
                    Verdict::Pass { text, .. } => text,
                };
                transcript.push(json!({
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": content,
                }));
            }
        }
        Err(RunError::Permanent(format!(
            "{} gave no answer within {} model calls",
            speaker.slug, self.settings.max_steps
        )))
    }

    /// Quiet hours and answers per minute in the room, from the rule sets.
    async fn keeps_its_rules(
        &self,
        screening: &Screening,
        request: &RunRequest,
    ) -> Result<(), RunError> {
        if let Some(scope) = screening.quiet_now() {
            let why = "the agent keeps quiet hours now";
            screening.refused(scope, why).await.map_err(filter_error)?;
            return Err(RunError::Permanent(why.into()));
        }
        if let (Some(max), false) = (screening.max_answers_per_minute(), request.room.is_empty()) {
            let recent = store::answers_since(
                &self.db,
                &request.agent,
                &request.room,
                &daarion_store::ago(Duration::from_secs(60)),
            )
            .await?;
            if recent >= i64::from(max) {
                let why =
                    format!("the agent answered {recent} times in this room in the last minute");
                screening
                    .refused(&format!("agent:{}", request.agent), &why)
                    .await
                    .map_err(filter_error)?;
                return Err(RunError::Permanent(why));
            }
        }
        Ok(())
    }

    /// The room a run answers in, if the agent may post there.
    async fn room_to_answer(
        &self,
        request: &RunRequest,
        me: &Principal,
    ) -> Result<daarion_messaging::domain::Room, RunError> {
        let room = daarion_messaging::store::room(&self.db, &request.room)
            .await
            .map_err(messaging_error)?
            .ok_or_else(|| RunError::Permanent("the room is gone".into()))?;
        let resource = daarion_messaging::access::room_of(&self.db, &room)
            .await
            .map_err(messaging_error)?;
        if !self.access.allows(me, Action::SendMessage, &resource) {
            return Err(RunError::Permanent(
                "the agent may not post in this room".into(),
            ));
        }
        Ok(room)
    }

    async fn agent_principal(&self, slug: &str) -> Result<Principal, RunError> {
        self.access
            .directory()
            .principal(PrincipalKind::Agent, slug)
            .await
            .map_err(|e| RunError::Transient(e.to_string()))?
            .ok_or_else(|| RunError::Permanent(format!("agent {slug:?} has no identity")))
    }

    pub(crate) async fn prompt(&self, agent: &str) -> Result<Option<String>, RunError> {
        let doc = self
            .control
            .get(DocKind::Prompt, agent)
            .await
            .map_err(|e| RunError::Transient(e.to_string()))?;
        Ok(doc.and_then(|d| d.value["text"].as_str().map(str::to_owned)))
    }

    /// The agent's tools as model functions, and which tool each names.
    pub(crate) async fn tools(
        &self,
        agent: &str,
    ) -> Result<(Vec<Value>, HashMap<String, String>), RunError> {
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
        let mut messages = daarion_messaging::store::history(
            &self.db,
            &request.room,
            crate::context::topic(request),
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

    /// One model call, streamed: its words go out live as they come.
    async fn model_step(
        &self,
        n: usize,
        request: &RunRequest,
        speaker: &Speaker,
        transcript: &[Value],
    ) -> Result<Step, RunError> {
        let mut body = json!({ "model": speaker.model, "messages": transcript });
        if !speaker.functions.is_empty() {
            body["tools"] = Value::from(speaker.functions.clone());
        }
        let (words, mut heard) = tokio::sync::mpsc::unbounded_channel::<String>();
        let voice = speaker.voice;
        let relay = {
            let worker = self.clone();
            let (run, agent) = (request.run_id.clone(), request.agent.clone());
            tokio::spawn(async move {
                while let Some(text) = heard.recv().await {
                    // A crew member's words are its own, not the answer.
                    if voice {
                        let (run, agent) = (run.clone(), agent.clone());
                        worker.live(RunEvent::Token { run, agent, text }).await;
                    }
                }
            })
        };
        let started = Instant::now();
        let completion = self
            .city
            .complete(
                &speaker.slug,
                &body,
                Duration::from_secs(self.settings.run_timeout_secs),
                |text| {
                    let _ = words.send(text);
                },
            )
            .await;
        drop(words);
        // The words go out before the step is known finished.
        let _ = relay.await;
        let completion = completion?;
        Ok(Step {
            n: n as i64,
            agent: speaker.slug.clone(),
            kind: "model".into(),
            name: speaker.model.clone(),
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
        request: &RunRequest,
        speaker: &Speaker,
        call: &domain::ToolCall,
    ) -> Result<Step, RunError> {
        let (tools, asker) = (&speaker.tools, request.asker.as_str());
        self.live(RunEvent::ToolCall {
            run: request.run_id.clone(),
            agent: request.agent.clone(),
            tool: tools.get(&call.function).unwrap_or(&call.function).clone(),
            arguments: call.arguments.clone(),
        })
        .await;
        let started = Instant::now();
        let (name, answer) = match tools.get(&call.function) {
            Some(name) => (
                name.clone(),
                self.city
                    .call_tool(
                        &speaker.slug,
                        name,
                        &call.arguments,
                        asker,
                        &format!("run:{}:{n}", request.run_id),
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
        self.live(RunEvent::ToolResult {
            run: request.run_id.clone(),
            agent: request.agent.clone(),
            tool: name.clone(),
            ok: answer.ok,
        })
        .await;
        Ok(Step {
            n: n as i64,
            agent: speaker.slug.clone(),
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

/// The people's turns through the rule sets: personal data redacted, a
/// blocked turn left out — and the run refused when the blocked turn is the
/// question it answers (the last).
async fn screen_questions(
    screening: &Screening,
    transcript: &mut Vec<Value>,
) -> Result<(), RunError> {
    let last = transcript.iter().rposition(|m| m["role"] == "user");
    let mut kept = Vec::with_capacity(transcript.len());
    for (i, mut turn) in std::mem::take(transcript).into_iter().enumerate() {
        if turn["role"] != "user" {
            kept.push(turn);
            continue;
        }
        let text = turn["content"].as_str().unwrap_or_default().to_owned();
        match screening
            .screen(Direction::Input, &text)
            .await
            .map_err(filter_error)?
        {
            Verdict::Block(why) if Some(i) == last => {
                return Err(RunError::Permanent(format!(
                    "the question was filtered: {why}"
                )));
            }
            Verdict::Block(_) => {}
            Verdict::Pass { text, .. } => {
                turn["content"] = Value::from(text);
                kept.push(turn);
            }
        }
    }
    *transcript = kept;
    Ok(())
}

fn filter_error(error: daarion_filter::FilterError) -> RunError {
    match error {
        daarion_filter::FilterError::Store(e) if e.is_retryable() => {
            RunError::Transient(e.to_string())
        }
        other => RunError::Permanent(format!("the agent's rule sets: {other}")),
    }
}

/// Who talks to a model in a run: the run's agent, or a member of its crew.
pub(crate) struct Speaker {
    pub(crate) slug: String,
    pub(crate) model: String,
    /// Its tools as model functions, and which tool each names.
    pub(crate) functions: Vec<Value>,
    pub(crate) tools: HashMap<String, String>,
    /// Its words are the run's answer: they go out live as they come.
    pub(crate) voice: bool,
    /// The crew it leads and delegates to (a hierarchical crew's agent).
    pub(crate) crew: Option<Crew>,
}

/// Where a run is in its steps: those finished by earlier attempts are
/// replayed in order, the rest are taken and checkpointed by `owner`.
pub(crate) struct Progress<'a> {
    done: &'a [Step],
    pub(crate) n: usize,
    owner: &'a str,
    /// What the crew's members did so far, replayed steps included.
    pub(crate) work: Vec<crew::Contribution>,
}

impl Progress<'_> {
    /// The step at this point, if an earlier attempt finished it.
    pub(crate) fn replay(&self) -> Option<Step> {
        self.done.get(self.n).cloned()
    }

    pub(crate) async fn keep(
        &self,
        worker: &Worker,
        request: &RunRequest,
        step: &Step,
    ) -> Result<(), RunError> {
        store::checkpoint(&worker.db, &request.run_id, self.owner, step).await
    }
}

/// How a run ended well: its words, and the message that carried them to
/// the room (for a run answering one).
pub(crate) struct Done {
    pub answer: String,
    pub reply: Option<String>,
}

/// The model's turn as the next call reads it.
fn assistant_turn(message: &Value) -> Value {
    let mut turn = json!({ "role": "assistant", "content": message["content"] });
    if message["tool_calls"].is_array() {
        turn["tool_calls"] = message["tool_calls"].clone();
    }
    turn
}

pub(crate) fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn messaging_error(error: MessagingError) -> RunError {
    match error {
        MessagingError::Interrupted(m) => RunError::Transient(m),
        MessagingError::Store(e) if e.is_retryable() => RunError::Transient(e.to_string()),
        MessagingError::Bus(e) => RunError::Transient(e.to_string()),
        MessagingError::Cache(e) => RunError::Transient(e.to_string()),
        other => RunError::Permanent(other.to_string()),
    }
}
