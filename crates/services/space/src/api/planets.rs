//! The directory: each public microDAO as a planet, with figures from what
//! happened in it, and the nodes serving it as satellites.

use axum::extract::{Path, State};
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    SpaceState,
    domain::{self, Anomaly, Metrics, NodeStatus, SpaceError},
    store::{nodes, planets},
};

pub fn router() -> OpenApiRouter<SpaceState> {
    OpenApiRouter::new()
        .routes(routes!(directory))
        .routes(routes!(get_planet))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanetSummary {
    /// The microDAO's slug.
    pub slug: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub members: i64,
    /// Points its treasury has minted.
    pub treasury_supply: i64,
}

impl From<planets::Planet> for PlanetSummary {
    fn from(p: planets::Planet) -> Self {
        Self {
            slug: p.slug,
            name: p.name,
            parent: p.parent,
            members: p.members,
            treasury_supply: p.supply,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub messages: i64,
    /// Agent runs completed in its rooms.
    pub runs: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Satellite {
    pub id: String,
    pub name: String,
    pub status: NodeStatus,
    pub metrics: Metrics,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanetView {
    #[serde(flatten)]
    pub summary: PlanetSummary,
    /// Messages in its rooms today (UTC) and over the last 7 days.
    pub messages_today: i64,
    pub messages_7d: i64,
    /// Agent runs completed in its rooms today (UTC) and over the last 7
    /// days.
    pub runs_today: i64,
    pub runs_7d: i64,
    /// Messages and runs per day over the last 15 days, oldest first,
    /// every day present.
    pub activity: Vec<DayCount>,
    /// Yesterday's messages against the 14 days before.
    pub anomaly: Anomaly,
    /// The nodes serving it.
    pub satellites: Vec<Satellite>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct DirectoryQuery {
    /// Only planets whose name or slug holds this (any case).
    #[param(max_length = 100)]
    pub q: Option<String>,
}

/// The public communities, as planets, by slug.
#[utoipa::path(get, path = "/planets", tag = "space", params(PageParams, DirectoryQuery),
    responses((status = 200, body = Page<PlanetSummary>),
        (status = 400, description = "A cursor this endpoint did not give"),
        (status = 422, description = "A limit or query out of bounds")))]
async fn directory(
    State(state): State<SpaceState>,
    Query(page): Query<PageParams>,
    Query(query): Query<DirectoryQuery>,
) -> Result<Json<Page<PlanetSummary>>, ApiError> {
    let limit = page.limit()?;
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > 100) {
        return Err(SpaceError::Invalid("q must be at most 100 characters".into()).into());
    }
    let rows = planets::directory(&state.db, q, page.after()?.as_deref(), limit).await?;
    let page = Page::from_rows(rows, limit, |p| p.slug.clone());
    Ok(Json(page.map(PlanetSummary::from)))
}

/// Days `from`..=`to` as `YYYY-MM-DD`, with the counts known (0 elsewhere).
fn every_day(from: chrono::NaiveDate, days: i64, known: &[planets::Day]) -> Vec<DayCount> {
    (0..days)
        .filter_map(|n| from.checked_add_signed(chrono::Duration::days(n)))
        .map(|date| {
            let day = date.format("%Y-%m-%d").to_string();
            let seen = known.iter().find(|d| d.day == day);
            DayCount {
                messages: seen.map_or(0, |d| d.messages),
                runs: seen.map_or(0, |d| d.runs),
                day,
            }
        })
        .collect()
}

/// One public planet: figures, activity, anomaly, satellites.
#[utoipa::path(get, path = "/planets/{slug}", tag = "space",
    params(("slug" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = PlanetView),
        (status = 404, description = "No such public microDAO")))]
async fn get_planet(
    State(state): State<SpaceState>,
    Path(slug): Path<String>,
) -> Result<Json<PlanetView>, ApiError> {
    let missing = || SpaceError::NotFound(format!("no public microDAO {slug:?}"));
    if domain::slug(&slug, "slug").is_err() {
        return Err(missing().into());
    }
    let planet = planets::planet(&state.db, &slug)
        .await?
        .ok_or_else(missing)?;
    let today = chrono::Utc::now().date_naive();
    let first = today - chrono::Duration::days(i64::try_from(domain::BASELINE_DAYS).unwrap_or(14));
    let known = planets::activity(&state.db, &slug, &first.format("%Y-%m-%d").to_string()).await?;
    let activity = every_day(first, 15, &known);
    let counts: Vec<i64> = activity.iter().map(|d| d.messages).collect();
    let messages_today = counts.last().copied().unwrap_or(0);
    let messages_7d = counts.iter().rev().take(7).sum();
    let runs_today = activity.last().map_or(0, |d| d.runs);
    let runs_7d = activity.iter().rev().take(7).map(|d| d.runs).sum();
    // Yesterday against the days before it that the planet existed for
    // (a planet's history begins with its first recorded message).
    let complete = &counts[..counts.len().saturating_sub(1)];
    let (baseline, yesterday) = complete.split_at(complete.len().saturating_sub(1));
    let since = baseline
        .iter()
        .position(|&n| n > 0)
        .unwrap_or(baseline.len());
    let anomaly = domain::anomaly(yesterday.first().copied().unwrap_or(0), &baseline[since..]);
    let satellites = nodes::of_dao(&state.db, &slug, &state.offline_cutoff())
        .await?
        .into_iter()
        .map(|n| Satellite {
            id: n.id,
            name: n.name,
            status: n.status,
            metrics: n.metrics,
        })
        .collect();
    Ok(Json(PlanetView {
        summary: planet.into(),
        messages_today,
        messages_7d,
        runs_today,
        runs_7d,
        activity,
        anomaly,
        satellites,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_day_is_present_with_zeros_between() {
        let from = chrono::NaiveDate::from_ymd_opt(2026, 12, 30).unwrap();
        let day = |day: &str, messages, runs| planets::Day {
            day: day.into(),
            messages,
            runs,
        };
        let known = vec![day("2026-12-31", 4, 1), day("2027-01-02", 2, 0)];
        let days = every_day(from, 4, &known);
        let got: Vec<(&str, i64, i64)> = days
            .iter()
            .map(|d| (d.day.as_str(), d.messages, d.runs))
            .collect();
        assert_eq!(
            got,
            [
                ("2026-12-30", 0, 0),
                ("2026-12-31", 4, 1),
                ("2027-01-01", 0, 0),
                ("2027-01-02", 2, 0)
            ]
        );
    }
}
