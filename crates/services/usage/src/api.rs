//! HTTP routes.

use axum::{
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
};
use daarion_access::Subject;
use daarion_kernel::{
    ApiError,
    http::{Json, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    UsageState,
    meter::{PlanLimits, QuotaStatus},
    store::{self, Bucket, Granularity, GroupBy, Scope, SummaryQuery},
};

/// Schemas the query parameters name (`IntoParams` refers to them without
/// registering them).
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(GroupBy, Granularity, crate::UsageKind, Format)))]
struct ParamSchemas;

pub fn router() -> OpenApiRouter<UsageState> {
    OpenApiRouter::with_openapi(<ParamSchemas as utoipa::OpenApi>::openapi())
        .routes(routes!(city_summary))
        .routes(routes!(subject_summary))
        .routes(routes!(quota))
        .routes(routes!(plans))
}

/// `user:<id>`, `agent:<id>` or `dao:<id>`.
pub fn parse_subject(raw: &str) -> Result<Subject, ApiError> {
    Subject::parse(raw).map_err(|e| ApiError::validation(e.to_string()))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SummaryParams {
    /// Group by `user`, `agent`, `microdao`, `model`, `provider`, `kind` or `api_key`.
    group_by: Option<GroupBy>,
    /// Start, inclusive (RFC 3339); default: 30 days before `to`.
    from: Option<String>,
    /// End, exclusive (RFC 3339); default: now.
    to: Option<String>,
    /// `hour`, `day` (default) or `total`.
    granularity: Option<Granularity>,
    /// Only records of this kind (`llm`, `embedding`, `tool`, `agent_run`, `message`).
    kind: Option<crate::UsageKind>,
    /// `json` (default) or `csv`.
    format: Option<Format>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub from: String,
    pub to: String,
    pub currency: String,
    pub items: Vec<Bucket>,
}

fn time(raw: Option<&str>, name: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    raw.map(|raw| {
        chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|_| {
                ApiError::validation(format!(
                    "{name} is an RFC 3339 time like 2026-11-23T00:00:00Z"
                ))
            })
    })
    .transpose()
}

async fn summarize(
    state: &UsageState,
    scope: Scope,
    params: SummaryParams,
) -> Result<Response, ApiError> {
    let to = time(params.to.as_deref(), "to")?.unwrap_or_else(chrono::Utc::now);
    let from =
        time(params.from.as_deref(), "from")?.unwrap_or_else(|| to - chrono::Duration::days(30));
    if from >= to {
        return Err(ApiError::validation("from must be before to"));
    }
    let (from, to) = (
        daarion_store::format_time(from),
        daarion_store::format_time(to),
    );
    let max_buckets = state.meter.settings().max_summary_buckets;
    let items = store::summary(
        &state.db,
        &SummaryQuery {
            scope: &scope,
            from: &from,
            to: &to,
            group_by: params.group_by,
            granularity: params.granularity.unwrap_or(Granularity::Day),
            kind: params.kind.map(crate::UsageKind::as_str),
            max_buckets,
        },
    )
    .await
    .map_err(|e| ApiError::unavailable(&e))?;
    if items.len() > max_buckets {
        return Err(ApiError::validation(format!(
            "more than {max_buckets} buckets: narrow the range or use a coarser granularity"
        )));
    }
    let currency = state.meter.settings().currency.clone();
    Ok(match params.format.unwrap_or_default() {
        Format::Json => Json(Summary {
            from,
            to,
            currency,
            items,
        })
        .into_response(),
        Format::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"usage.csv\"",
                ),
            ],
            csv(&items, &currency),
        )
            .into_response(),
    })
}

/// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn csv(items: &[Bucket], currency: &str) -> String {
    let mut out = String::from(
        "period,key,events,errors,tokens_in,tokens_out,tokens_cached,estimated,cost,currency,avg_latency_ms\r\n",
    );
    for b in items {
        let cost = format!(
            "{}.{:06}",
            b.cost_micros / 1_000_000,
            b.cost_micros % 1_000_000
        );
        let fields = [
            csv_field(&b.period),
            csv_field(b.key.as_deref().unwrap_or("")),
            b.events.to_string(),
            b.errors.to_string(),
            b.tokens_in.to_string(),
            b.tokens_out.to_string(),
            b.tokens_cached.to_string(),
            b.estimated.to_string(),
            cost,
            csv_field(currency),
            b.avg_latency_ms.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Usage of the whole city, bucketed in time and optionally grouped.
#[utoipa::path(get, path = "/summary", tag = "usage", params(SummaryParams),
    responses((status = 200, description = "JSON, or CSV with `format=csv`",
        content((Summary = "application/json"), (String = "text/csv")))))]
async fn city_summary(
    State(state): State<UsageState>,
    Query(params): Query<SummaryParams>,
) -> Result<Response, ApiError> {
    summarize(&state, Scope::City, params).await
}

/// Usage of one person (`user:<id>`), agent (`agent:<id>`) or microDAO (`dao:<id>`).
#[utoipa::path(get, path = "/subjects/{subject}/summary", tag = "usage",
    params(("subject" = String, Path, description = "`user:<id>`, `agent:<id>` or `dao:<id>`"), SummaryParams),
    responses((status = 200, description = "JSON, or CSV with `format=csv`",
        content((Summary = "application/json"), (String = "text/csv")))))]
async fn subject_summary(
    State(state): State<UsageState>,
    Path(subject): Path<String>,
    Query(params): Query<SummaryParams>,
) -> Result<Response, ApiError> {
    summarize(&state, Scope::Of(parse_subject(&subject)?), params).await
}

/// A subject's limits, this minute's use and this month's spend.
#[utoipa::path(get, path = "/subjects/{subject}/quota", tag = "usage",
    params(("subject" = String, Path, description = "`user:<id>`, `agent:<id>` or `dao:<id>`")),
    responses((status = 200, body = QuotaStatus)))]
async fn quota(
    State(state): State<UsageState>,
    Path(subject): Path<String>,
) -> Result<Json<QuotaStatus>, ApiError> {
    Ok(Json(state.meter.status(&parse_subject(&subject)?).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Plans {
    pub free: PlanLimits,
    pub pro: PlanLimits,
    pub enterprise: PlanLimits,
    pub currency: String,
}

/// The plans a quota document can name, with their limits.
#[utoipa::path(get, path = "/plans", tag = "usage", responses((status = 200, body = Plans)))]
async fn plans(State(state): State<UsageState>) -> Json<Plans> {
    let s = state.meter.settings();
    Json(Plans {
        free: s.free,
        pro: s.pro,
        enterprise: s.enterprise,
        currency: s.currency.clone(),
    })
}

impl From<crate::MeterError> for ApiError {
    fn from(error: crate::MeterError) -> Self {
        use crate::MeterError;
        match error {
            MeterError::Exceeded(e) => {
                ApiError::new(daarion_kernel::ErrorCode::RateLimited, e.message)
                    .with_retry_after(e.retry_after)
            }
            MeterError::Store(e) if e.is_retryable() => ApiError::unavailable(&e),
            MeterError::Control(e) => ApiError::unavailable(&e),
            // Refused until an admin stores a readable quota again.
            unreadable @ MeterError::Unreadable(..) => ApiError::unavailable(&unreadable),
            other => ApiError::internal(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("gpt-4o"), "gpt-4o");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn subjects_are_checked() {
        assert_eq!(
            parse_subject("user:u1").ok(),
            Some(Subject::User("u1".into()))
        );
        assert!(parse_subject("team:x").is_err());
        assert!(parse_subject("user:").is_err());
        assert!(parse_subject("user:a b").is_err());
    }
}
