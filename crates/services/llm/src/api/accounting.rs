//! Who may call which alias, who pays, and the ledger each call settles
//! exactly once (when it ends, or from `Drop` when the client left).

use super::*;

/// The alias, if it exists and this caller may use it.
pub(super) async fn authorize(
    state: &LlmState,
    principal: &Principal,
    model: &str,
) -> Result<Arc<Alias>, LlmError> {
    let alias = state
        .catalog
        .aliases
        .get(model)
        .cloned()
        .ok_or_else(|| LlmError::model_not_found(model))?;
    if let Credential::ApiKey { limits, .. } = &principal.credential
        && !limits.allows_model(model)
    {
        return Err(LlmError {
            param: Some("model"),
            ..LlmError::new(
                StatusCode::FORBIDDEN,
                "model_not_allowed",
                format!("this API key may not use the model `{model}`"),
            )
        });
    }
    let resource = Resource::tool(&format!("llm:{model}"), true, &[], &[]);
    state
        .access
        .check(principal, Action::ExecTool, &resource, Default::default())
        .await?;
    Ok(alias)
}

/// Who pays: the person (an agent's owner), the agent, and the microDAO
/// the caller names, if it belongs to it.
pub(super) fn subjects(principal: &Principal, headers: &HeaderMap) -> Result<Subjects, LlmError> {
    let mut s = Subjects::of(principal);
    if let Some(dao) = headers.get(DAO_HEADER) {
        let dao = dao.to_str().unwrap_or_default();
        let prefix = format!("dao:{dao}:");
        let member = principal.kind == PrincipalKind::Service
            || principal.roles.iter().any(|r| r.starts_with(&prefix));
        if dao.is_empty() || !member {
            return Err(LlmError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{} cannot charge microDAO {dao:?}", principal.handle),
            ));
        }
        s.dao = Some(dao.to_owned());
    }
    Ok(s)
}

pub(super) fn extra_limits(principal: &Principal, alias: &Alias) -> Vec<ExtraLimit> {
    let mut extra = Vec::new();
    if let Credential::ApiKey { id, limits } = &principal.credential
        && (limits.requests_per_minute.is_some() || limits.tokens_per_minute.is_some())
    {
        extra.push(ExtraLimit {
            name: format!("API key {id}"),
            key: format!("key:{id}"),
            requests_per_minute: limits.requests_per_minute,
            tokens_per_minute: limits.tokens_per_minute,
        });
    }
    if alias.model.requests_per_minute.is_some() || alias.model.tokens_per_minute.is_some() {
        extra.push(ExtraLimit {
            name: format!("model {}", alias.name),
            key: format!("model:{}", alias.name),
            requests_per_minute: alias.model.requests_per_minute,
            tokens_per_minute: alias.model.tokens_per_minute,
        });
    }
    extra
}

/// What one call owes, settled exactly once: when the call ends, or — if
/// the client went away first and the handler was dropped — from `Drop`.
/// The meter settles before the reply ends, so a caller's next call sees
/// this one's real cost (not its reservation); the usage record is queued
/// for publishing in a batch, off the reply's path.
pub(super) struct Ledger {
    pub(super) pending: Option<Pending>,
}

pub(super) struct Pending {
    pub(super) state: LlmState,
    pub(super) admission: Admission,
    pub(super) record: UsageRecord,
    pub(super) price: daarion_usage::Price,
    pub(super) prompt_bytes: usize,
    pub(super) started: Instant,
}

/// How a call ended, for its record.
pub(super) struct Ending<'a> {
    /// The deployment that answered.
    pub(super) target: Option<&'a str>,
    pub(super) tokens: Option<Tokens>,
    pub(super) output_bytes: usize,
    pub(super) outcome: Outcome,
    pub(super) error: Option<&'static str>,
    /// Served from the response cache: nothing was spent upstream.
    pub(super) cached: bool,
}

impl Ending<'_> {
    pub(super) fn failed(error: &LlmError) -> Ending<'static> {
        Ending {
            target: None,
            tokens: None,
            output_bytes: 0,
            outcome: Outcome::Error,
            error: Some(error.code),
            cached: false,
        }
    }
}

impl Pending {
    pub(super) async fn account(mut self, end: Ending<'_>) {
        let (tokens, estimated) = match end.tokens {
            Some(t) => (t, false),
            None if end.outcome == Outcome::Error && end.output_bytes == 0 => {
                (Tokens::default(), false)
            }
            None => (
                Tokens {
                    input: estimate_tokens(self.prompt_bytes),
                    output: estimate_tokens(end.output_bytes),
                    cached: 0,
                },
                true,
            ),
        };
        let cost = if end.cached {
            0
        } else {
            self.price
                .cost_micros(tokens.input, tokens.cached, tokens.output)
        };
        let r = &mut self.record;
        r.provider = end.target.map(str::to_owned);
        r.tokens_in = tokens.input;
        r.tokens_out = tokens.output;
        r.tokens_cached = tokens.cached;
        r.estimated = estimated;
        r.cost_micros = cost;
        r.latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        r.outcome = end.outcome;
        r.error_code = end.error.map(str::to_owned);
        let model = r.model.clone().unwrap_or_default();
        metrics::counter!("llm_requests_total", "model" => model.clone(), "outcome" => end.outcome.as_str()).increment(1);
        metrics::counter!("llm_tokens_total", "model" => model.clone(), "direction" => "in")
            .increment(tokens.input);
        metrics::counter!("llm_tokens_total", "model" => model, "direction" => "out")
            .increment(tokens.output);
        self.state
            .meter
            .settle(self.admission, tokens.input + tokens.output, cost)
            .await;
        self.state
            .records
            .publish(daarion_usage::event(SERVICE, &self.record))
            .await;
    }
}

impl Ledger {
    pub(super) async fn close(mut self, end: Ending<'_>) {
        if let Some(pending) = self.pending.take() {
            pending.account(end).await;
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            let tasks = pending.state.tasks.clone();
            tasks.spawn(pending.account(Ending {
                target: None,
                tokens: None,
                output_bytes: 0,
                outcome: Outcome::Cancelled,
                error: Some("client_disconnected"),
                cached: false,
            }));
        }
    }
}

/// Everything up to the upstream call: checks, authorization, admission.
pub(super) async fn admit(
    state: &LlmState,
    principal: &Principal,
    headers: &HeaderMap,
    body: &Bytes,
    op: Op,
) -> Result<(Value, Arc<Alias>, Ledger), LlmError> {
    let value = parse_body(body)?;
    match op {
        Op::Chat => check_chat(&value)?,
        Op::Embeddings => check_embeddings(&value)?,
    }
    let model = value["model"].as_str().unwrap_or_default();
    let alias = authorize(state, principal, model).await?;
    let subjects = subjects(principal, headers)?;
    let prompt_tokens = estimate_tokens(body.len());
    // With both set, the larger: a provider may honour either.
    let output_tokens = match op {
        Op::Chat => positive_int(&value, "max_completion_tokens")?
            .max(positive_int(&value, "max_tokens")?)
            .unwrap_or(alias.model.max_output_tokens),
        Op::Embeddings => 0,
    };
    let estimate = alias
        .model
        .price
        .cost_micros(prompt_tokens, 0, output_tokens);
    let admission = state
        .meter
        .admit(
            &subjects,
            &extra_limits(principal, &alias),
            estimate,
            prompt_tokens + output_tokens,
        )
        .await?;
    let mut record = UsageRecord::new(
        match op {
            Op::Chat => UsageKind::Llm,
            Op::Embeddings => UsageKind::Embedding,
        },
        Outcome::Ok,
    )
    .by(principal, &subjects);
    record.model = Some(alias.name.clone());
    record.currency = Some(state.currency.to_string());
    let ledger = Ledger {
        pending: Some(Pending {
            state: state.clone(),
            admission,
            record,
            price: alias.model.price,
            prompt_bytes: body.len(),
            started: Instant::now(),
        }),
    };
    Ok((value, alias, ledger))
}
