//! My API keys: scoped, optionally bound to one of my agents, limited on
//! models and rates, shown once, revocable.

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// Set when the key authenticates as one of my agents.
    pub agent: Option<String>,
    pub scopes: Vec<String>,
    /// Model aliases and per-minute budgets for the LLM proxy.
    pub limits: KeyLimits,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

pub(super) fn api_key_view(k: store::ApiKey) -> ApiKeyView {
    ApiKeyView {
        scopes: k.scopes.into_iter().map(String::from).collect(),
        limits: k.limits,
        id: k.id,
        name: k.name,
        agent: k.agent_id,
        created_at: k.created_at,
        expires_at: k.expires_at,
        last_used_at: k.last_used_at,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    /// `*`, `<action>`, `<service>:*` or `<service>:<action>`; default `["*"]`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<Vec<Scope>>,
    /// Days until the key stops working (1-3650); default: never.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// Bind the key to an agent identity of mine (claimed on first use).
    #[serde(default)]
    pub agent: Option<String>,
    /// Model aliases the key may call through the LLM proxy, and its own
    /// requests and tokens per minute; default: any model, no key limit.
    #[serde(default)]
    pub limits: KeyLimits,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The secret, shown this once: send it as `Authorization: Bearer <key>`.
    pub key: String,
    #[serde(flatten)]
    pub info: ApiKeyView,
}

pub(super) fn validate_limits(limits: &KeyLimits) -> Result<(), ApiError> {
    if let Some(models) = &limits.models {
        let well_formed = |m: &String| {
            (1..=128).contains(&m.len())
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
        };
        if models.len() > 64 || !models.iter().all(well_formed) {
            return Err(ApiError::validation(
                "limits.models lists at most 64 model aliases of letters, digits, '-', '_', '.', ':', '/'",
            ));
        }
    }
    if limits.requests_per_minute == Some(0) || limits.tokens_per_minute == Some(0) {
        return Err(ApiError::validation(
            "per-minute limits are positive; leave them out for no limit",
        ));
    }
    Ok(())
}

/// My API keys (the secrets are never shown again).
#[utoipa::path(get, path = "/api-keys", tag = "auth", responses((status = 200, body = Page<ApiKeyView>)))]
pub(super) async fn list_api_keys(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Json<Page<ApiKeyView>>, ApiError> {
    let items = store::api_keys_of(&state.db, &principal.id)
        .await?
        .into_iter()
        .map(api_key_view)
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Creates an API key for scripts or an agent.
#[utoipa::path(post, path = "/api-keys", tag = "auth", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey)))]
pub(super) async fn create_api_key(
    State(state): State<AuthState>,
    principal: Principal,
    Json(body): Json<CreateApiKey>,
) -> Result<Response, ApiError> {
    let name = domain::label(&body.name, "key name")?;
    let scopes = body.scopes.unwrap_or_else(|| {
        vec![Scope::try_from("*".to_owned()).unwrap_or_else(|_| unreachable!())]
    });
    if scopes.is_empty() || scopes.len() > 32 {
        return Err(ApiError::validation("scopes must list 1 to 32 scopes"));
    }
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days @ 1..=3650) => Some(daarion_store::format_time(
            chrono::Utc::now() + chrono::Duration::days(i64::from(days)),
        )),
        Some(_) => {
            return Err(ApiError::validation(
                "expires_in_days must be between 1 and 3650",
            ));
        }
    };
    validate_limits(&body.limits)?;
    let agent = body
        .agent
        .as_deref()
        .map(|a| Username::parse(a).map(|u| u.as_str().to_owned()))
        .transpose()
        .map_err(|_| {
            ApiError::validation(
                "agent must be an agent id: 3-32 lowercase letters, digits, '-', '_', '.'",
            )
        })?;
    let key = store::ApiKey {
        id: format!("key_{}", uuid::Uuid::now_v7().simple()),
        user_id: principal.id.clone(),
        agent_id: agent,
        name,
        scopes,
        limits: body.limits,
        created_at: daarion_store::now(),
        expires_at,
        last_used_at: None,
    };
    let secret = format!("{API_KEY_PREFIX}{}", domain::new_secret());
    store::create_api_key(&state.db, &key, &domain::hash_secret(&secret)).await?;
    let body = CreatedApiKey {
        key: secret,
        info: api_key_view(key),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Revokes one of my API keys, at once, on every replica.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "auth", responses((status = 204), (status = 404)))]
pub(super) async fn revoke_api_key(
    State(state): State<AuthState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let hash = store::revoke_api_key(&state.db, &principal.id, &id).await?;
    state.authenticator.revoked(&[(id, hash)]).await;
    Ok(StatusCode::NO_CONTENT)
}
