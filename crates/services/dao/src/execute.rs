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
        // The document whole: `Executor::within_means` fills it in from
        // the control plane's current one.
        ProposalAction::LimitSpending { .. } => Call {
            service: "control",
            method: Method::PUT,
            path: format!("/api/control/quotas/dao:{dao}"),
            body: None,
            done_if_missing: false,
        },
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
        let mut call = call_for(&p.dao, action);
        if let ProposalAction::LimitSpending { .. } = action {
            match self.within_means(p, action).await {
                Ok(document) => call.body = Some(document),
                Err(tried) => return tried,
            }
        }
        match self.send(p, &call).await {
            Ok(_) => Tried::Done,
            Err(tried) => tried,
        }
    }

    /// The microDAO's quota document with the proposal's lower limits in
    /// it, read from the control plane; refused when a limit is above what
    /// the city gives the microDAO now (`usage`'s effective limits).
    async fn within_means(&self, p: &Proposal, action: &ProposalAction) -> Result<Value, Tried> {
        let subject = format!("dao:{}", p.dao);
        let get = |service, path| Call {
            service,
            method: Method::GET,
            path,
            body: None,
            done_if_missing: true,
        };
        let effective = self
            .send(
                p,
                &get("usage", format!("/api/usage/subjects/{subject}/quota")),
            )
            .await?;
        let current = self
            .send(p, &get("control", format!("/api/control/quotas/{subject}")))
            .await?;
        lowered(action, &effective, current["value"].clone()).map_err(Tried::Failed)
    }

    /// One call as the proposal's microDAO: its answer's body, or how it
    /// failed (a `404` of a call that allows it answers `null`).
    async fn send(&self, p: &Proposal, call: &Call) -> Result<Value, Tried> {
        let token = self
            .tokens
            .issue_for_dao(crate::SERVICE, &p.dao, call.service, TOKEN_LIFETIME)
            .map_err(|e| Tried::Failed(format!("no token for {}: {e}", p.dao)))?;
        let request = self
            .http
            .request(call.method.clone(), format!("{}{}", self.city, call.path))
            .bearer_auth(token)
            .header("idempotency-key", format!("dao-execution:{}", p.id))
            .timeout(Duration::from_secs(30));
        let mut request = daarion_kernel::context::propagate(request);
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Tried::Later(format!("{} unreachable: {e}", call.service)))?;
        let status = response.status();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        if status == StatusCode::NOT_FOUND && call.done_if_missing {
            return Ok(Value::Null);
        }
        let said = body["error"]["message"].as_str().unwrap_or_default();
        Err(
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                Tried::Later(format!("{} answered {status}: {said}", call.service))
            } else {
                Tried::Failed(format!("{} refused ({status}): {said}", call.service))
            },
        )
    }
}

/// `current` (a quota document, or null) with the limits of a
/// `limit_spending` action, each at or below `effective` (what the usage
/// service enforces now: its own limit where the document or its plan has
/// one, none where unlimited) — else why not.
pub fn lowered(
    action: &ProposalAction,
    effective: &Value,
    current: Value,
) -> Result<Value, String> {
    let ProposalAction::LimitSpending {
        requests_per_minute,
        tokens_per_minute,
        budget_cents_per_month,
    } = action
    else {
        return Err("not a limit on spending".into());
    };
    let mut document = match current {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let budget_cents = effective["budget_micros_per_month"]
        .as_u64()
        .map(|micros| micros / 10_000);
    let limits = [
        (
            "requests_per_minute",
            requests_per_minute.map(u64::from),
            effective["requests_per_minute"].as_u64(),
        ),
        (
            "tokens_per_minute",
            *tokens_per_minute,
            effective["tokens_per_minute"].as_u64(),
        ),
        (
            "budget_cents_per_month",
            *budget_cents_per_month,
            budget_cents,
        ),
    ];
    for (name, wanted, now) in limits {
        let Some(wanted) = wanted else { continue };
        if let Some(now) = now.filter(|now| wanted > *now) {
            return Err(format!(
                "{name} {wanted} is above the {now} the city gives the microDAO: a community may lower its limits, the city's admins raise them"
            ));
        }
        document.insert(name.to_owned(), json!(wanted));
    }
    Ok(Value::Object(document))
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

    #[test]
    fn a_community_lowers_its_limits_and_never_raises_them() {
        let limit = |rpm: Option<u32>, cents: Option<u64>| ProposalAction::LimitSpending {
            requests_per_minute: rpm,
            tokens_per_minute: None,
            budget_cents_per_month: cents,
        };
        let city = json!({"requests_per_minute": 100, "tokens_per_minute": null,
            "budget_micros_per_month": 50_000_000});
        let current = json!({"plan": "pro", "requests_per_minute": 100});
        assert_eq!(
            lowered(&limit(Some(60), Some(2_000)), &city, current.clone()).unwrap(),
            json!({"plan": "pro", "requests_per_minute": 60, "budget_cents_per_month": 2_000}),
            "the rest of the document stays"
        );
        assert_eq!(
            lowered(&limit(Some(100), Some(5_000)), &city, current.clone()).unwrap()["budget_cents_per_month"],
            5_000,
            "at the city's limit is within it"
        );
        let above = lowered(&limit(None, Some(5_001)), &city, current).unwrap_err();
        assert!(
            above.contains("budget_cents_per_month 5001 is above the 5000"),
            "{above}"
        );
        assert_eq!(
            lowered(&limit(Some(1_000_000), None), &json!({}), Value::Null).unwrap(),
            json!({"requests_per_minute": 1_000_000}),
            "anything is below no limit"
        );
    }
}
