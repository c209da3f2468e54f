//! Carrying out what passed, exactly once: each passed action is one call
//! of the owning service's public API, made as the microDAO's governance
//! (a short service token whose subject is `dao:<slug>`), so that service
//! decides with its own policies and audits it like any other request.
//!
//! Exactly once, whatever crashes: an executor holds a proposal's
//! execution for `execution_lease_secs` (one conditional update, so one
//! replica at a time), makes the call, and records how it ended. Each
//! call is safe to repeat — setting a role (or bringing an agent in) is
//! a `PUT`, a removal that finds the member gone is done, changing an
//! agent sets the same fields again, a transfer carries the proposal as
//! its `Idempotency-Key` — so an executor that dies between the call and the
//! record leaves the next one to find the work done, never to do it
//! twice.

use std::time::Duration;

use daarion_access::token::ServiceTokens;
use daarion_kernel::RequestContext;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    DaoGovState,
    domain::{DaoGovError, Proposal, ProposalAction},
    store::{self, Tried},
};

const TOKEN_LIFETIME: Duration = Duration::from_secs(120);

/// The owning service's API, called as a microDAO's governance.
#[derive(Clone)]
pub struct Executor {
    http: reqwest::Client,
    city: String,
    tokens: ServiceTokens,
}

/// One call of an owning service's API.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The service whose API it is (the token's audience).
    pub service: &'static str,
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    /// A `404` means the work is already done (a removal).
    pub done_if_missing: bool,
}

/// What `action` of the microDAO `dao` asks of its owning service.
pub fn call_for(dao: &str, action: &ProposalAction) -> Call {
    let members = |principal: &str| format!("/api/microdao/daos/{dao}/members/{principal}");
    let microdao = |method, path, body, done_if_missing| Call {
        service: "microdao",
        method,
        path,
        body,
        done_if_missing,
    };
    match action {
        ProposalAction::AddMember { principal, role }
        | ProposalAction::ChangeRole { principal, role } => microdao(
            Method::PUT,
            members(principal),
            Some(json!({ "role": role.as_str() })),
            false,
        ),
        ProposalAction::RemoveMember { principal } => {
            microdao(Method::DELETE, members(principal), None, true)
        }
        ProposalAction::Transfer { to, amount, memo } => microdao(
            Method::POST,
            format!("/api/microdao/daos/{dao}/treasury/transfers"),
            Some(json!({
                "from": format!("dao:{dao}"), "to": to, "amount": amount, "memo": memo,
            })),
            false,
        ),
        ProposalAction::ChangeSettings {
            name,
            description,
            visibility,
        } => microdao(
            Method::PATCH,
            format!("/api/microdao/daos/{dao}"),
            Some(json!({ "name": name, "description": description, "visibility": visibility })),
            false,
        ),
        ProposalAction::AttachAgent { agent } => microdao(
            Method::PUT,
            members(&format!("agent:{agent}")),
            Some(json!({ "role": "agent" })),
            false,
        ),
        ProposalAction::DetachAgent { agent } => microdao(
            Method::DELETE,
            members(&format!("agent:{agent}")),
            None,
            true,
        ),
        ProposalAction::ChangeAgent {
            agent,
            prompt,
            tools,
            model,
            status,
        } => {
            // Only what the proposal changes: a field left out stays as it is.
            let body: serde_json::Map<String, Value> = [
                ("prompt", prompt.as_ref().map(|p| json!(p))),
                ("tools", tools.as_ref().map(|t| json!(t))),
                ("model", model.as_ref().map(|m| json!(m))),
                ("status", status.as_ref().map(|s| json!(s))),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
            Call {
                service: "agents",
                method: Method::PATCH,
                path: format!("/api/agents/agents/{agent}"),
                body: Some(Value::Object(body)),
                done_if_missing: false,
            }
        }
    }
}

impl Executor {
    pub fn new(http: reqwest::Client, city: &str, tokens: ServiceTokens) -> Self {
        Self {
            http,
            city: city.trim_end_matches('/').to_owned(),
            tokens,
        }
    }

    /// Makes `p`'s call once and says how it went.
    pub async fn perform(&self, p: &Proposal) -> Tried {
        let Some(action) = &p.action else {
            return Tried::Failed("a signal has nothing to carry out".into());
        };
        let call = call_for(&p.dao, action);
        let token =
            match self
                .tokens
                .issue_for_dao(crate::SERVICE, &p.dao, call.service, TOKEN_LIFETIME)
            {
                Ok(token) => token,
                Err(e) => return Tried::Failed(format!("no token for {}: {e}", p.dao)),
            };
        let context = RequestContext::current_or_generate();
        let mut request = self
            .http
            .request(call.method.clone(), format!("{}{}", self.city, call.path))
            .bearer_auth(token)
            .header("x-request-id", context.request_id.as_str())
            .header("traceparent", context.traceparent())
            .header("idempotency-key", format!("dao-execution:{}", p.id))
            .timeout(Duration::from_secs(30));
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Tried::Later(format!("{} unreachable: {e}", call.service)),
        };
        let status = response.status();
        let said = response
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if status.is_success() || (status == StatusCode::NOT_FOUND && call.done_if_missing) {
            Tried::Done
        } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Tried::Later(format!("{} answered {status}: {said}", call.service))
        } else {
            Tried::Failed(format!("{} refused ({status}): {said}", call.service))
        }
    }
}

/// Carries out one passed action if no one else holds it.
pub async fn execute(state: &DaoGovState, id: &str) -> Result<(), DaoGovError> {
    let until = daarion_store::format_time(
        chrono::Utc::now() + chrono::Duration::seconds(state.settings.execution_lease_secs),
    );
    let Some(p) = store::claim_execution(&state.db, id, &until).await? else {
        return Ok(());
    };
    let tried = state.executor.perform(&p).await;
    if let Tried::Failed(error) | Tried::Later(error) = &tried {
        tracing::warn!(proposal = %p.id, dao = %p.dao, %error, "a passed action was not carried out");
    }
    if let Some((_, staged)) = store::finish_execution(
        &state.db,
        &state.outbox,
        id,
        tried,
        state.settings.max_execution_attempts,
    )
    .await?
    {
        state.outbox.relay(staged).await;
    }
    Ok(())
}

/// Carries out every passed action waiting (and not held).
pub async fn execute_due(state: &DaoGovState) -> Result<(), DaoGovError> {
    for id in store::executable(&state.db, 100).await? {
        execute(state, &id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use daarion_access::vocab::roles::DaoRole;

    use super::*;

    #[test]
    fn each_action_is_one_repeatable_call_of_its_owner() {
        let add = call_for(
            "makers",
            &ProposalAction::AddMember {
                principal: "user:u1".into(),
                role: DaoRole::Member,
            },
        );
        assert_eq!(
            (add.method, add.path.as_str()),
            (Method::PUT, "/api/microdao/daos/makers/members/user:u1")
        );
        let remove = call_for(
            "makers",
            &ProposalAction::RemoveMember {
                principal: "user:u1".into(),
            },
        );
        assert!(remove.done_if_missing);
        let pay = call_for(
            "makers",
            &ProposalAction::Transfer {
                to: "user:u1".into(),
                amount: 5,
                memo: None,
            },
        );
        assert_eq!(pay.body.unwrap()["from"], "dao:makers");
        let attach = call_for(
            "makers",
            &ProposalAction::AttachAgent {
                agent: "helper".into(),
            },
        );
        assert_eq!(
            (attach.method, attach.path.as_str()),
            (
                Method::PUT,
                "/api/microdao/daos/makers/members/agent:helper"
            )
        );
        let change = call_for(
            "makers",
            &ProposalAction::ChangeAgent {
                agent: "helper".into(),
                prompt: Some("Be brief.".into()),
                tools: None,
                model: None,
                status: Some("paused".into()),
            },
        );
        assert_eq!(
            (change.service, change.path.as_str()),
            ("agents", "/api/agents/agents/helper")
        );
        assert_eq!(
            change.body.unwrap(),
            json!({ "prompt": "Be brief.", "status": "paused" }),
            "a field the proposal leaves out is not sent"
        );
    }
}
