//! A person with a software passkey, driving the auth service's real
//! ceremonies over HTTP (tests and benchmarks; no verification is mocked).

use anyhow::{Context, bail};
use serde_json::{Value, json};
use webauthn_authenticator_rs::{WebauthnAuthenticator, prelude::Url, softpasskey::SoftPasskey};
use webauthn_rs_proto::{
    AllowCredentials, CreationChallengeResponse, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

/// The origin the default `[auth]` settings accept.
pub const ORIGIN: &str = "http://localhost:8080";

pub struct Person {
    pub username: String,
    pub user_id: String,
    /// The session token from the last sign-in (the cookie's value).
    pub session: String,
    pub authenticator: SoftPasskey,
    /// Credential ids this authenticator holds, newest last.
    pub credentials: Vec<Vec<u8>>,
    base: String,
    client: reqwest::Client,
}

fn origin() -> anyhow::Result<Url> {
    Url::parse(ORIGIN).context("origin")
}

async fn post(
    client: &reqwest::Client,
    url: String,
    cookie: Option<&str>,
    body: Value,
) -> anyhow::Result<(u16, Value, Option<String>)> {
    let mut request = client.post(url).json(&body);
    if let Some(token) = cookie {
        request = request.header("cookie", format!("daarion_session={token}"));
    }
    answer(request.send().await?).await
}

/// A response's status, JSON body and the session it set (`daarion_session`).
async fn answer(response: reqwest::Response) -> anyhow::Result<(u16, Value, Option<String>)> {
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("daarion_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body, session))
}

/// A registration ceremony as a browser on a page at `origin` runs it:
/// `register/begin`, the `authenticator` creating its passkey, then
/// `register/finish`, whose response is returned as it came (with the new
/// credential's id). `begin` must answer 200.
pub async fn register_from(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    invite: Option<&str>,
    authenticator: &mut SoftPasskey,
    origin: Url,
) -> anyhow::Result<(reqwest::Response, Vec<u8>)> {
    let (status, started, _) = post(
        client,
        format!("{base}/api/auth/register/begin"),
        None,
        json!({ "username": username, "invite": invite }),
    )
    .await?;
    if status != 200 {
        bail!("register/begin: {status} {started}");
    }
    let credential = create_credential_at(authenticator, &started["options"], origin)?;
    let raw_id = credential.raw_id.to_vec();
    let finished = client
        .post(format!("{base}/api/auth/register/finish"))
        .json(&json!({ "ceremony_id": started["ceremony_id"], "credential": credential, "passkey_name": "soft" }))
        .send()
        .await?;
    Ok((finished, raw_id))
}

/// What `navigator.credentials.create()` returns for the `options` a
/// registration ceremony (`…/begin`) answered with.
pub fn create_credential(
    authenticator: &mut SoftPasskey,
    options: &Value,
) -> anyhow::Result<RegisterPublicKeyCredential> {
    create_credential_at(authenticator, options, origin()?)
}

/// Like [`create_credential`], on a page served from `origin`.
fn create_credential_at(
    authenticator: &mut SoftPasskey,
    options: &Value,
    origin: Url,
) -> anyhow::Result<RegisterPublicKeyCredential> {
    let options: CreationChallengeResponse = serde_json::from_value(options.clone())?;
    authenticator
        .do_registration(origin, options)
        .map_err(|e| anyhow::anyhow!("authenticator: {e:?}"))
}

impl Person {
    /// Registers `username` with a new software passkey and signs in.
    pub async fn register(
        client: &reqwest::Client,
        base: &str,
        username: &str,
    ) -> anyhow::Result<Self> {
        Self::register_with(client, base, username, None).await
    }

    /// Registers with an invitation (closed cities, admin enrolment).
    pub async fn register_with(
        client: &reqwest::Client,
        base: &str,
        username: &str,
        invite: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut authenticator = SoftPasskey::new(true);
        let (finished, raw_id) = register_from(
            client,
            base,
            username,
            invite,
            &mut authenticator,
            origin()?,
        )
        .await?;
        let (status, body, session) = answer(finished).await?;
        if status != 201 {
            bail!("register/finish: {status} {body}");
        }
        Ok(Self {
            username: username.to_owned(),
            user_id: body["user"]["id"].as_str().unwrap_or_default().to_owned(),
            session: session.context("no session cookie")?,
            authenticator,
            credentials: vec![raw_id],
            base: base.to_owned(),
            client: client.clone(),
        })
    }

    /// The assertion for a login ceremony begun with `begin`, before it is
    /// sent: tests tamper with it.
    pub async fn assertion(&mut self, username_first: bool) -> anyhow::Result<(Value, Value)> {
        let begin = if username_first {
            json!({ "username": self.username })
        } else {
            json!({})
        };
        let (status, started, _) = post(
            &self.client,
            format!("{}/api/auth/login/begin", self.base),
            None,
            begin,
        )
        .await?;
        if status != 200 {
            bail!("login/begin: {status} {started}");
        }
        Ok((started["ceremony_id"].clone(), self.sign(&started)?))
    }

    /// What `navigator.credentials.get()` returns for a sign-in ceremony's
    /// `started` answer (`{ceremony_id, options}`).
    fn sign(&mut self, started: &Value) -> anyhow::Result<Value> {
        let mut options: RequestChallengeResponse =
            serde_json::from_value(started["options"].clone())?;
        let discoverable = options.public_key.allow_credentials.is_empty();
        if discoverable {
            // What a platform authenticator does with a resident key: it
            // picks its credential for this site and returns the user handle.
            let id = self.credentials.last().cloned().context("no credential")?;
            options.public_key.allow_credentials = vec![AllowCredentials {
                type_: "public-key".into(),
                id,
                transports: None,
            }];
        }
        let mut credential = self
            .authenticator
            .do_authentication(origin()?, options)
            .map_err(|e| anyhow::anyhow!("authenticator: {e:?}"))?;
        if discoverable {
            let handle = uuid::Uuid::parse_str(&self.user_id)?;
            credential.response.user_handle = Some(handle.as_bytes().to_vec());
        }
        Ok(serde_json::to_value(credential)?)
    }

    /// Proves this person's passkey again on their current session, as a
    /// browser does before a change that needs a recent one.
    pub async fn reauthenticate(&mut self) -> anyhow::Result<()> {
        let base = self.base.clone();
        let url = |step: &str| format!("{base}/api/auth/reauth/{step}");
        let (status, started, _) =
            post(&self.client, url("begin"), Some(&self.session), json!({})).await?;
        if status != 200 {
            bail!("reauth/begin: {status} {started}");
        }
        let credential = self.sign(&started)?;
        let finish = json!({ "ceremony_id": started["ceremony_id"], "credential": credential });
        let (status, body, _) =
            post(&self.client, url("finish"), Some(&self.session), finish).await?;
        if status != 204 {
            bail!("reauth/finish: {status} {body}");
        }
        Ok(())
    }

    /// Finishes a login with `credential`: (status, body).
    pub async fn finish_login(
        &mut self,
        ceremony_id: &Value,
        credential: Value,
    ) -> anyhow::Result<(u16, Value)> {
        let (status, body, session) = post(
            &self.client,
            format!("{}/api/auth/login/finish", self.base),
            None,
            json!({ "ceremony_id": ceremony_id, "credential": credential }),
        )
        .await?;
        if let Some(session) = session {
            self.session = session;
        }
        Ok((status, body))
    }

    /// Signs in again (username-first or discoverable); keeps the new session.
    pub async fn login(&mut self, username_first: bool) -> anyhow::Result<()> {
        let (ceremony, credential) = self.assertion(username_first).await?;
        let (status, body) = self.finish_login(&ceremony, credential).await?;
        if status != 200 {
            bail!("login/finish: {status} {body}");
        }
        Ok(())
    }

    /// A fresh API key with `scopes` (and an agent identity when given).
    pub async fn api_key(&self, scopes: &[&str], agent: Option<&str>) -> anyhow::Result<String> {
        let (status, body, _) = post(
            &self.client,
            format!("{}/api/auth/api-keys", self.base),
            Some(&self.session),
            json!({ "name": "test", "scopes": scopes, "agent": agent }),
        )
        .await?;
        if status != 201 {
            bail!("api-keys: {status} {body}");
        }
        body["key"].as_str().map(str::to_owned).context("no key")
    }

    /// `Cookie` header value for this person's session.
    pub fn cookie(&self) -> String {
        format!("daarion_session={}", self.session)
    }
}
