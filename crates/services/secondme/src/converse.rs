//! One invoke, end to end: the person's agent (made at their first
//! invoke), their turn stored, what they told it before recalled, what
//! they say now kept in their memory, the run asked for and awaited, the
//! answer stored. The recall comes before the keeping, so a message is
//! never recalled as an echo of itself.

use daarion_access::Principal;
use daarion_agents::{
    chat,
    domain::{self as agents, AgentError, AgentVisibility, Lifecycle},
    runs::RunRequest,
    store::{self as hub, Agent, NewAgent},
};
use daarion_kernel::ApiError;
use daarion_memory::{chunk::DocumentFormat, domain::NewDocument, summaries};
use serde_json::{Value, json};

use crate::{
    SecondMeState,
    domain::{self, Conversation, SecondMeError, Turn},
    fold, store,
};

/// The tools a new Second Me may use; the person allows more on its page
/// in the hub, and every call is checked for them too.
const TOOLS: &[&str] = &["time.now"];

/// What an invoke said and heard.
pub struct Invoked {
    pub conversation: Conversation,
    pub said: Turn,
    pub answer: Turn,
}

/// `person`'s own agent, if made yet.
pub async fn agent(
    state: &SecondMeState,
    person: &Principal,
) -> Result<Option<Agent>, SecondMeError> {
    Ok(hub::get(&state.db, &agents::personal_slug(&person.id)).await?)
}

/// `person`'s own agent, made now if it is not yet: private, theirs, on
/// the configured model.
pub async fn agent_of(state: &SecondMeState, person: &Principal) -> Result<Agent, SecondMeError> {
    if let Some(agent) = agent(state, person).await? {
        return Ok(agent);
    }
    let slug = agents::personal_slug(&person.id);
    let new = NewAgent {
        dao: None,
        name: "Second Me".into(),
        description: format!("{}'s own agent", person.handle),
        avatar_url: None,
        model: state.settings.model.clone(),
        visibility: AgentVisibility::Private,
        blueprint: None,
        prompt: agents::prompt(&slug, &domain::prompt(&person.handle))?,
        tools: TOOLS.iter().map(|t| (*t).to_owned()).collect(),
        personal: true,
        slug,
    };
    match hub::create(&state.db, &state.outbox, &new, &person.name(), None).await {
        Ok((agent, _, written, staged)) => {
            hub::settle(
                (&state.control, state.bus.as_ref(), &state.outbox),
                &agent.slug,
                &written,
                staged,
                &person.name(),
            )
            .await;
            Ok(agent)
        }
        // Made meanwhile by the person's other invoke.
        Err(AgentError::Conflict(_)) => hub::get(&state.db, &new.slug).await?.ok_or_else(|| {
            SecondMeError::Conflict(format!("the agent id {:?} is taken", new.slug))
        }),
        Err(error) => Err(error.into()),
    }
}

/// `person` says `text` to their Second Me, in `conversation` or a new
/// one; with an `Idempotency-Key`, a retry is the same run and gets the
/// same answer.
pub async fn invoke(
    state: &SecondMeState,
    person: &Principal,
    (text, conversation): (&str, Option<&str>),
    key: Option<&str>,
) -> Result<Invoked, ApiError> {
    let text = domain::message(text)?;
    let agent = agent_of(state, person).await?;
    if agent.status != Lifecycle::Active {
        return Err(ApiError::conflict(
            "your Second Me is paused or archived: resume it on its page in the hub",
        ));
    }
    let me = person.name();
    let run_id = chat::run_id(&format!("secondme {me}"), key);
    let (said_in, said, fresh) = store::say(
        &state.db,
        &me,
        conversation,
        (&text, &domain::title(&text), &run_id),
    )
    .await?;
    let same = said.content == text && conversation.is_none_or(|c| c == said_in.id);
    if !fresh && !same {
        return Err(ApiError::conflict(
            "this Idempotency-Key was used with a different message",
        ));
    }
    let conversation = said_in;
    let window = store::window(
        &state.db,
        &conversation.id,
        said.seq,
        state.settings.window_turns,
    )
    .await?;
    let window_start = window.first().map_or(said.seq, |turn| turn.seq);
    // What came before the window reaches the run as the agent's summary.
    let earlier = fold::latest(state, &agent.slug, &conversation.id).await;
    let mut messages: Vec<Value> = earlier
        .iter()
        .map(|summary| json!({"role": "system", "content": summaries::told(summary)}))
        .chain(
            window
                .iter()
                .map(|turn| json!({"role": turn.role.as_str(), "content": turn.content})),
        )
        .collect();
    let recalled = state
        .knowledge
        .recall(
            &me,
            &said.content,
            (domain::RECALL_HEADER, state.settings.recalled_passages),
        )
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "Second Me answers without the person's memory");
            None
        });
    if let Some(note) = &recalled {
        messages.push(json!({"role": "system", "content": note}));
    }
    messages.push(json!({"role": "user", "content": said.content}));
    keep(state, person, &conversation, &said).await?;
    let request = RunRequest {
        run_id: run_id.clone(),
        agent: agent.slug.clone(),
        room: String::new(),
        topic: String::new(),
        message_id: None,
        messages,
        asker: me,
        note: None,
    };
    let events = chat::ask(state.bus.as_ref(), &request).await?;
    let (answer, _, _) = chat::answer_of(events, &run_id).await?;
    let answer = store::answered(
        &state.db,
        &conversation.id,
        (&run_id, &answer, recalled.is_some()),
    )
    .await?
    .ok_or_else(|| {
        SecondMeError::NotFound("the conversation was deleted while it answered".into())
    })?;
    fold::later(
        state,
        person,
        &agent,
        (&conversation.id, window_start),
        earlier,
    );
    Ok(Invoked {
        conversation,
        said,
        answer,
    })
}

/// Keeps what the person said in their own memory (once per run), where
/// later conversations recall it and where they see, export and erase it.
async fn keep(
    state: &SecondMeState,
    person: &Principal,
    conversation: &Conversation,
    said: &Turn,
) -> Result<(), SecondMeError> {
    let note = NewDocument::parse(
        &format!("Second Me — {}", conversation.title),
        Some(DocumentFormat::Text),
        &said.content,
        state.knowledge.max_document_bytes(),
    )?;
    state
        .knowledge
        .add(
            &person.name(),
            &note,
            (&person.name(), &person.handle),
            Some(&format!("secondme:{}", said.run_id)),
        )
        .await?;
    Ok(())
}
