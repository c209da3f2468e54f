//! Crews: what each member reads and the manager's `crew.delegate` tool
//! (plain functions), and a crew's steps in a run (`impl Worker`). A crew
//! answers as its own agent; a sequential crew's members work in turn,
//! each reading the task and the work before it; a hierarchical crew's
//! agent delegates tasks to members and answers with what they found
//! (CrewAI's two processes). An orchestrator's crew keeps its work in its
//! microDAO's `crew` room.

use std::{collections::HashMap, time::Instant};

use daarion_access::{Action, Principal};
use daarion_agents::{
    domain::{Crew, CrewMember, Lifecycle},
    runs::{RunEvent, RunRequest},
    store::Agent,
};
use daarion_filter::Screening;
use daarion_messaging::Posting;
use serde_json::{Value, json};

use crate::{
    domain::{self, RunError},
    execute::{Progress, Speaker, elapsed_ms, messaging_error},
    store::Step,
    worker::Worker,
};

/// The manager's delegation tool, as its model sees it.
pub const DELEGATE: &str = "crew__delegate";
/// …and as the run's steps name it.
pub const DELEGATE_TOOL: &str = "crew.delegate";

/// The function a hierarchical crew's agent delegates with: one of its
/// members (by slug) and the task, self-contained.
pub fn delegate_function(crew: &Crew) -> Value {
    let members: Vec<&str> = crew.members.iter().map(|m| m.agent.as_str()).collect();
    json!({"type": "function", "function": {
        "name": DELEGATE,
        "description": "Gives one member of your crew a task and returns their answer. \
            The member sees only the task: say everything they need.",
        "parameters": {
            "type": "object",
            "properties": {
                "member": {"type": "string", "enum": members,
                    "description": "The member's agent id"},
                "task": {"type": "string", "minLength": 1, "maxLength": 8000},
            },
            "required": ["member", "task"],
            "additionalProperties": false,
        },
    }})
}

/// What the crew's agent is told about its crew (after its own prompt).
pub fn manager_note(crew: &Crew) -> Value {
    let roster: Vec<String> = crew.members.iter().map(introduce).collect();
    json!({"role": "system", "content": format!(
        "You lead a crew. Give its members tasks with {DELEGATE_TOOL} and answer with \
         what they found. Your crew:\n{}", roster.join("\n")
    )})
}

fn introduce(member: &CrewMember) -> String {
    if member.goal.is_empty() {
        format!("- {} ({})", member.agent, member.role)
    } else {
        format!("- {} ({}): {}", member.agent, member.role, member.goal)
    }
}

/// What a member did in a run: the manager's task (none in turn) and its
/// answer.
#[derive(Debug, Clone)]
pub struct Contribution {
    pub member: String,
    pub role: String,
    pub task: Option<String>,
    pub answer: String,
}

impl Contribution {
    pub fn of(member: &CrewMember, task: Option<String>, answer: String) -> Self {
        Self {
            member: member.agent.clone(),
            role: member.role.clone(),
            task,
            answer,
        }
    }
}

/// The longest part of a question or of a member's answer a crew's log
/// shows.
const LOG_PART_CHARS: usize = 600;

fn clipped(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(LOG_PART_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A run's work as a microDAO's `crew` room shows it (markdown): what was
/// asked, each member's part, the answer.
pub fn log(crew_name: &str, question: &str, work: &[Contribution], answer: &str) -> String {
    let mut text = format!("**{crew_name}** was asked: {}\n", clipped(question));
    for part in work {
        text.push_str(&format!("\n**{}** (@{})", part.role, part.member));
        if let Some(task) = &part.task {
            text.push_str(&format!(", given: {}", clipped(task)));
        }
        text.push_str(&format!(
            "\n> {}\n",
            clipped(&part.answer).replace('\n', "\n> ")
        ));
    }
    text.push_str(&format!("\n**Answer:** {}", clipped(answer)));
    text
}

/// A member's conversation: its own prompt, its place in the crew, then
/// `task` (the people's turns, or the manager's task), then the work the
/// crew did before it, if any.
pub fn member_transcript(
    prompt: Option<&str>,
    crew_name: &str,
    member: &CrewMember,
    task: &[Value],
    work: &[Contribution],
) -> Vec<Value> {
    let mut turns = Vec::with_capacity(task.len() + 3);
    if let Some(prompt) = prompt.filter(|p| !p.trim().is_empty()) {
        turns.push(json!({"role": "system", "content": prompt}));
    }
    let mut place = format!("You are the {} of the crew {crew_name}.", member.role);
    if !member.goal.is_empty() {
        place.push_str(&format!(" Your goal: {}", member.goal));
    }
    turns.push(json!({"role": "system", "content": place}));
    turns.extend(task.iter().cloned());
    if !work.is_empty() {
        let done: Vec<String> = work
            .iter()
            .map(|part| format!("## {} ({})\n{}", part.role, part.member, part.answer))
            .collect();
        turns.push(json!({"role": "user", "content": format!(
            "The crew's work so far:\n\n{}\n\nNow do your part.", done.join("\n\n")
        )}));
    }
    turns
}

/// The delegation the manager asked for: the member and the task, or why
/// it cannot be (told back to the manager as the tool's answer).
pub fn delegation<'a>(
    crew: &'a Crew,
    arguments: &Value,
) -> Result<(&'a CrewMember, String), String> {
    let asked = arguments["member"].as_str().unwrap_or_default();
    let member = crew
        .members
        .iter()
        .find(|m| m.agent == asked)
        .ok_or_else(|| format!("{asked:?} is not in your crew"))?;
    let task = arguments["task"].as_str().unwrap_or_default().trim();
    if task.is_empty() {
        return Err("give the member a task".into());
    }
    Ok((member, task.to_owned()))
}

impl Worker {
    /// A sequential crew: each member in turn, reading the task and the
    /// work before it; the last one's answer is the crew's (and only its
    /// words go out live).
    pub(crate) async fn in_turn(
        &self,
        request: &RunRequest,
        agent: &Agent,
        crew: &Crew,
        task: &[Value],
        progress: &mut Progress<'_>,
        screening: &Screening,
    ) -> Result<String, RunError> {
        let mut answer = String::new();
        for (i, member) in crew.members.iter().enumerate() {
            let (speaker, prompt) = self
                .member(request, &member.agent, i + 1 == crew.members.len())
                .await?;
            let transcript =
                member_transcript(prompt.as_deref(), &agent.name, member, task, &progress.work);
            answer = self
                .converse(request, &speaker, transcript, progress, screening)
                .await?;
            progress
                .work
                .push(Contribution::of(member, None, answer.clone()));
        }
        Ok(answer)
    }

    /// A hierarchical crew's agent gives a member a task: the member's
    /// conversation on it, then the delegation as a step whose answer is
    /// the member's (or why it could not answer, for the manager to weigh).
    pub(crate) async fn delegate(
        &self,
        request: &RunRequest,
        manager: &Speaker,
        crew: &Crew,
        call: &domain::ToolCall,
        progress: &mut Progress<'_>,
        screening: &Screening,
    ) -> Result<Step, RunError> {
        let started = Instant::now();
        self.live(RunEvent::ToolCall {
            run: request.run_id.clone(),
            agent: request.agent.clone(),
            tool: DELEGATE_TOOL.into(),
            arguments: call.arguments.clone(),
        })
        .await;
        let output = match delegation(crew, &call.arguments) {
            Err(why) => Err(why),
            Ok((member, task)) => {
                let (speaker, prompt) = self.member(request, &member.agent, false).await?;
                let asked = [json!({"role": "user", "content": task})];
                let transcript =
                    member_transcript(prompt.as_deref(), &manager.slug, member, &asked, &[]);
                match self
                    .converse(request, &speaker, transcript, progress, screening)
                    .await
                {
                    Ok(answer) => {
                        let said = json!({"member": member.agent, "answer": answer});
                        progress
                            .work
                            .push(Contribution::of(member, Some(task), answer));
                        Ok(said)
                    }
                    Err(RunError::Permanent(why)) => Err(why),
                    Err(other) => return Err(other),
                }
            }
        };
        if let Some(step) = progress.replay() {
            return Ok(step);
        }
        let ok = output.is_ok();
        self.live(RunEvent::ToolResult {
            run: request.run_id.clone(),
            agent: request.agent.clone(),
            tool: DELEGATE_TOOL.into(),
            ok,
        })
        .await;
        let step = Step {
            n: progress.n as i64,
            agent: manager.slug.clone(),
            kind: "tool".into(),
            name: DELEGATE_TOOL.into(),
            input: call.arguments.clone(),
            output: output.unwrap_or_else(|why| json!({ "error": why })),
            ok,
            tokens_in: 0,
            tokens_out: 0,
            latency_ms: elapsed_ms(started),
            created_at: daarion_store::now(),
        };
        progress.keep(self, request, &step).await?;
        Ok(step)
    }

    /// A crew member as a speaker (active, and not a crew itself), with
    /// its prompt; `voice`: its words are the crew's answer.
    async fn member(
        &self,
        request: &RunRequest,
        slug: &str,
        voice: bool,
    ) -> Result<(Speaker, Option<String>), RunError> {
        let agent = daarion_agents::store::get(&self.db, slug)
            .await
            .map_err(|e| RunError::Transient(e.to_string()))?
            .ok_or_else(|| RunError::Permanent(format!("crew member {slug:?} is gone")))?;
        if agent.status != Lifecycle::Active {
            return Err(RunError::Permanent(format!(
                "crew member {slug:?} is paused or archived"
            )));
        }
        if agent.crew.is_some() {
            return Err(RunError::Permanent(format!(
                "crew member {slug:?} is a crew itself; crews do not nest"
            )));
        }
        let (functions, tools) = if request.asker.starts_with("user:") {
            self.tools(slug).await?
        } else {
            (Vec::new(), HashMap::new())
        };
        let prompt = self.prompt(slug).await?;
        let speaker = Speaker {
            slug: agent.slug,
            model: agent.model,
            functions,
            tools,
            voice,
            crew: None,
        };
        Ok((speaker, prompt))
    }

    /// A microDAO's orchestrator keeps its crew's work in the microDAO's
    /// `crew` room, when the run answers in one of the microDAO's rooms
    /// (once per run, by its key).
    pub(crate) async fn log_crew_work(
        &self,
        request: &RunRequest,
        room: &daarion_messaging::domain::Room,
        me: &Principal,
        log: &str,
    ) -> Result<(), RunError> {
        let Some(dao) = room.dao.as_deref() else {
            return Ok(());
        };
        let orchestrates = daarion_microdao::store::dao(&self.db, dao)
            .await
            .map_err(|e| RunError::Transient(e.to_string()))?
            .is_some_and(|d| d.orchestrator.as_deref() == Some(me.id.as_str()));
        if !orchestrates {
            return Ok(());
        }
        let Some(crew_room) = daarion_messaging::store::by_key(
            &self.db,
            &daarion_messaging::domain::dao_room_key(dao, "crew"),
        )
        .await
        .map_err(messaging_error)?
        else {
            return Ok(());
        };
        let resource = daarion_messaging::access::room_of(&self.db, &crew_room)
            .await
            .map_err(messaging_error)?;
        if !self.access.allows(me, Action::SendMessage, &resource) {
            return Ok(());
        }
        let body = domain::reply_body(log, self.settings.max_reply_chars);
        let posting = Posting {
            body: &body,
            topic: None,
            reply_to: None,
            attachments: Vec::new(),
            max_chars: self.settings.max_reply_chars,
        };
        self.poster
            .post(
                &crew_room,
                me,
                posting,
                Some(&format!("crew:{}", request.run_id)),
            )
            .await
            .map_err(messaging_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use daarion_agents::domain::Process;

    use super::*;

    fn crew() -> Crew {
        Crew {
            process: Process::Hierarchical,
            members: vec![
                CrewMember {
                    agent: "scout".into(),
                    role: "researcher".into(),
                    goal: "find facts".into(),
                },
                CrewMember {
                    agent: "quill".into(),
                    role: "writer".into(),
                    goal: String::new(),
                },
            ],
        }
    }

    #[test]
    fn the_manager_delegates_only_to_its_members_and_only_tasks() {
        let crew = crew();
        let function = delegate_function(&crew);
        assert_eq!(
            function["function"]["parameters"]["properties"]["member"]["enum"],
            json!(["scout", "quill"])
        );
        let (member, task) =
            delegation(&crew, &json!({"member": "quill", "task": " write it "})).unwrap();
        assert_eq!(
            (member.role.as_str(), task.as_str()),
            ("writer", "write it")
        );
        assert!(delegation(&crew, &json!({"member": "mallory", "task": "x"})).is_err());
        assert!(delegation(&crew, &json!({"member": "scout", "task": "  "})).is_err());
        let note = manager_note(&crew)["content"].as_str().unwrap().to_owned();
        assert!(note.contains("- scout (researcher): find facts"), "{note}");
    }

    #[test]
    fn a_member_reads_its_place_the_task_and_the_work_before_it() {
        let crew = crew();
        let task = [json!({"role": "user", "content": "bob: how tall is Hoverla?"})];
        let first = member_transcript(Some("Be brief."), "team", &crew.members[0], &task, &[]);
        assert_eq!(first.len(), 3);
        assert_eq!(first[0]["content"], "Be brief.");
        assert_eq!(
            first[1]["content"],
            "You are the researcher of the crew team. Your goal: find facts"
        );
        let work = [Contribution::of(&crew.members[0], None, "2061 m".into())];
        let second = member_transcript(None, "team", &crew.members[1], &task, &work);
        assert_eq!(second[0]["content"], "You are the writer of the crew team.");
        let last = second.last().unwrap()["content"].as_str().unwrap();
        assert!(last.contains("## researcher (scout)\n2061 m"), "{last}");
    }

    #[test]
    fn a_crews_log_shows_the_question_each_part_and_the_answer_clipped() {
        let crew = crew();
        let work = [
            Contribution::of(
                &crew.members[0],
                Some("find it".into()),
                "2061 m\nby GPS".into(),
            ),
            Contribution::of(&crew.members[1], None, "x".repeat(700)),
        ];
        let text = log("Team", "how tall is Hoverla?", &work, "It is 2061 m.");
        assert!(
            text.starts_with("**Team** was asked: how tall is Hoverla?\n"),
            "{text}"
        );
        assert!(
            text.contains("**researcher** (@scout), given: find it\n> 2061 m\n> by GPS\n"),
            "{text}"
        );
        assert!(text.contains(&format!("**writer** (@quill)\n> {}…\n", "x".repeat(600))));
        assert!(text.ends_with("**Answer:** It is 2061 m."), "{text}");
    }
}
