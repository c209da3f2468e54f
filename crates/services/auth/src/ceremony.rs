//! WebAuthn ceremonies. The state webauthn-rs needs between begin and finish
//! is stored server-side (any replica can finish what another began) and
//! taken exactly once, so a captured response cannot be replayed.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Uuid,
};

use sha2::{Digest, Sha256};
use webauthn_rs_proto::{AllowCredentials, ResidentKeyRequirement};

use crate::{
    AuthState,
    domain::{AuthError, Username},
    store::{self, Ceremony, User},
};

const REGISTER: &str = "register";
const ADD: &str = "add";
const LOGIN: &str = "login";
const DISCOVER: &str = "discover";

fn to_json<T: Serialize>(value: &T) -> Result<String, AuthError> {
    serde_json::to_string(value).map_err(|e| AuthError::Corrupt(e.to_string()))
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, AuthError> {
    serde_json::from_str(text).map_err(|e| AuthError::Corrupt(e.to_string()))
}

fn ceremony_error(error: webauthn_rs::prelude::WebauthnError) -> AuthError {
    if matches!(error, webauthn_rs::prelude::WebauthnError::InvalidRPOrigin) {
        return AuthError::Ceremony(
            "this page's origin is not one of auth.origins: set auth.origins to the address people open (e.g. https://city.example) and auth.rp_id to its domain".into(),
        );
    }
    AuthError::Ceremony(error.to_string())
}

/// The sign counter inside a stored passkey (webauthn-rs keeps it private
/// to the credential; its serialized form is stable: `cred.counter`).
fn counter_of(passkey_json: &str) -> u32 {
    serde_json::from_str::<serde_json::Value>(passkey_json)
        .ok()
        .and_then(|v| v["cred"]["counter"].as_u64())
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0)
}

pub fn credential_id(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Serialize, Deserialize)]
struct NewAccount {
    username: String,
    display_name: String,
    #[serde(default)]
    invite_hash: Option<String>,
}

impl AuthState {
    fn ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.settings.ceremony_secs)
    }

    /// Passkeys are made discoverable where the authenticator can, so the
    /// person can later sign in without typing a username.
    fn start_registration(
        &self,
        user_id: Uuid,
        username: &str,
        display_name: &str,
        exclude: Vec<Vec<u8>>,
    ) -> Result<(CreationChallengeResponse, PasskeyRegistration), AuthError> {
        let exclude = (!exclude.is_empty()).then_some(exclude);
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(user_id, username, display_name, exclude)
            .map_err(ceremony_error)?;
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Preferred);
        }
        Ok((options, state))
    }

    /// Starts a registration. A closed city needs an invitation; any
    /// invitation given must still be open (it is spent at `finish`).
    pub async fn begin_registration(
        &self,
        username: &Username,
        display_name: &str,
        invite: Option<&str>,
    ) -> Result<(String, CreationChallengeResponse), AuthError> {
        let invite_hash = invite.map(crate::domain::hash_secret);
        match &invite_hash {
            Some(hash) if !store::invite_is_open(&self.db, hash).await? => {
                return Err(AuthError::Unauthorized(
                    "invitation is unknown, used or expired".into(),
                ));
            }
            None if !self.settings.open_registration => {
                return Err(AuthError::Forbidden(
                    "this city registers people by invitation".into(),
                ));
            }
            None if self.settings.first_admin == Some(crate::FirstAdmin::Invite)
                && !store::has_admin(&self.db).await? =>
            {
                return Err(AuthError::Forbidden(
                    "this city has no admin yet: the first admin registers with the invitation printed when DAARION started (or one from `daarion admin invite --role admin`)".into(),
                ));
            }
            _ => {}
        }
        if store::user_by_username(&self.db, username.as_str())
            .await?
            .is_some()
        {
            return Err(AuthError::Conflict(format!(
                "username {:?} is taken",
                username.as_str()
            )));
        }
        let user_id = Uuid::new_v4();
        let (options, state) =
            self.start_registration(user_id, username.as_str(), display_name, Vec::new())?;
        let ceremony = Ceremony {
            kind: REGISTER.into(),
            user_id: Some(user_id.to_string()),
            state: to_json(&state)?,
            extra: to_json(&NewAccount {
                username: username.as_str().to_owned(),
                display_name: display_name.to_owned(),
                invite_hash,
            })?,
        };
        let id = store::put_ceremony(&self.db, &ceremony, self.ttl()).await?;
        Ok((id, options))
    }

    pub async fn finish_registration(
        &self,
        ceremony_id: &str,
        credential: &RegisterPublicKeyCredential,
        passkey_name: &str,
    ) -> Result<User, AuthError> {
        let ceremony = store::take_ceremony(&self.db, ceremony_id, &[REGISTER]).await?;
        let state: PasskeyRegistration = from_json(&ceremony.state)?;
        let account: NewAccount = from_json(&ceremony.extra)?;
        let user_id = ceremony
            .user_id
            .ok_or_else(|| AuthError::Corrupt("registration without user".into()))?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(credential, &state)
            .map_err(ceremony_error)?;
        store::create_user(
            &self.db,
            &store::NewUser {
                id: &user_id,
                username: &account.username,
                display_name: &account.display_name,
                passkey_id: &credential_id(passkey.cred_id()),
                passkey_name,
                passkey_json: &to_json(&passkey)?,
                invite_hash: account.invite_hash.as_deref(),
            },
        )
        .await
    }

    /// Adds a passkey for a signed-in person, or one who proved themselves
    /// with a recovery code.
    pub async fn begin_add_passkey(
        &self,
        user: &User,
    ) -> Result<(String, CreationChallengeResponse), AuthError> {
        let existing = store::passkeys_of(&self.db, &user.id).await?;
        let exclude = existing
            .iter()
            .map(|p| from_json::<Passkey>(&p.passkey).map(|k| k.cred_id().to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        let user_uuid = Uuid::parse_str(&user.id).map_err(|e| AuthError::Corrupt(e.to_string()))?;
        let (options, state) =
            self.start_registration(user_uuid, &user.username, &user.display_name, exclude)?;
        let ceremony = Ceremony {
            kind: ADD.into(),
            user_id: Some(user.id.clone()),
            state: to_json(&state)?,
            extra: String::new(),
        };
        let id = store::put_ceremony(&self.db, &ceremony, self.ttl()).await?;
        Ok((id, options))
    }

    /// Finishes adding a passkey; returns the user it was added for and the
    /// new passkey's id.
    pub async fn finish_add_passkey(
        &self,
        ceremony_id: &str,
        credential: &RegisterPublicKeyCredential,
        name: &str,
        expected_user: Option<&str>,
    ) -> Result<(String, String), AuthError> {
        let ceremony = store::take_ceremony(&self.db, ceremony_id, &[ADD]).await?;
        let user_id = ceremony
            .user_id
            .ok_or_else(|| AuthError::Corrupt("ceremony without user".into()))?;
        if expected_user.is_some_and(|u| u != user_id) {
            return Err(AuthError::Unauthorized(
                "this ceremony belongs to someone else".into(),
            ));
        }
        let state: PasskeyRegistration = from_json(&ceremony.state)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(credential, &state)
            .map_err(ceremony_error)?;
        let passkey_id = credential_id(passkey.cred_id());
        store::add_passkey(&self.db, &passkey_id, &user_id, name, &to_json(&passkey)?).await?;
        Ok((user_id, passkey_id))
    }

    /// Spends one of the person's recovery codes; an unknown username and a
    /// wrong code are refused alike.
    pub async fn spend_recovery_code(
        &self,
        username: &Username,
        code: &str,
    ) -> Result<User, AuthError> {
        let refused = || AuthError::Unauthorized("unknown username or recovery code".into());
        let user = store::user_by_username(&self.db, username.as_str())
            .await?
            .ok_or_else(refused)?;
        let hash = crate::domain::hash_secret(&crate::domain::normalize_recovery_code(code));
        if store::use_recovery_code(&self.db, &user.id, &hash).await? {
            Ok(user)
        } else {
            Err(refused())
        }
    }

    /// Username-first login (the person's passkeys are offered) or, without
    /// a username, discoverable login (browser autofill / conditional UI).
    pub async fn begin_login(
        &self,
        username: Option<&Username>,
    ) -> Result<(String, RequestChallengeResponse), AuthError> {
        let (kind, user_id, options, state) = match username {
            Some(username) => match store::user_by_username(&self.db, username.as_str()).await? {
                Some(user) => {
                    let passkeys = store::passkeys_of(&self.db, &user.id)
                        .await?
                        .iter()
                        .map(|p| from_json::<Passkey>(&p.passkey))
                        .collect::<Result<Vec<_>, _>>()?;
                    let (options, state) = self
                        .webauthn
                        .start_passkey_authentication(&passkeys)
                        .map_err(ceremony_error)?;
                    (LOGIN, Some(user.id), options, to_json(&state)?)
                }
                // Finishing it always fails: no passkey belongs to nobody.
                None => (
                    LOGIN,
                    None,
                    self.decoy_login(username).await?,
                    String::new(),
                ),
            },
            None => {
                let (options, state) = self
                    .webauthn
                    .start_discoverable_authentication()
                    .map_err(ceremony_error)?;
                (DISCOVER, None, options, to_json(&state)?)
            }
        };
        let ceremony = Ceremony {
            kind: kind.into(),
            user_id,
            state,
            extra: String::new(),
        };
        let id = store::put_ceremony(&self.db, &ceremony, self.ttl()).await?;
        Ok((id, options))
    }

    /// What sign-in offers for a username nobody has: the answer a real
    /// account gets (as Keycloak does), with stand-in credential ids derived
    /// from the name and a secret the city keeps, so asking again, or
    /// another replica, offers the same ones.
    async fn decoy_login(
        &self,
        username: &Username,
    ) -> Result<RequestChallengeResponse, AuthError> {
        let key = self
            .decoy_key
            .get_or_try_init(|| store::kept_secret(&self.db, "login_decoy"))
            .await?;
        let seed = Sha256::digest(format!("{key}\n{}", username.as_str()));
        // Most people keep one passkey, some two.
        let count = if seed[0] % 3 == 0 { 2 } else { 1 };
        let (mut options, _) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(ceremony_error)?;
        options.mediation = None;
        options.public_key.extensions = None;
        options.public_key.allow_credentials = (0..count)
            .map(|i: u8| AllowCredentials {
                type_: "public-key".into(),
                // 32 bytes, as platform authenticators' ids often are.
                id: Sha256::digest([seed.as_slice(), &[i]].concat()).to_vec(),
                transports: None,
            })
            .collect();
        Ok(options)
    }

    /// Verifies the assertion (signature, challenge, origin, user
    /// verification, sign counter) and returns who signed in.
    pub async fn finish_login(
        &self,
        ceremony_id: &str,
        credential: &PublicKeyCredential,
    ) -> Result<User, AuthError> {
        let ceremony = store::take_ceremony(&self.db, ceremony_id, &[LOGIN, DISCOVER]).await?;
        let cred_id = credential_id(credential.get_credential_id());
        let stored = store::passkey_by_id(&self.db, &cred_id)
            .await?
            .ok_or_else(|| AuthError::Unauthorized("unknown passkey".into()))?;
        let mut passkey: Passkey = from_json(&stored.passkey)?;
        let result = if ceremony.kind == LOGIN {
            if ceremony.user_id.as_deref() != Some(stored.user_id.as_str()) {
                return Err(AuthError::Unauthorized(
                    "this passkey belongs to someone else".into(),
                ));
            }
            let state: PasskeyAuthentication = from_json(&ceremony.state)?;
            self.webauthn
                .finish_passkey_authentication(credential, &state)
        } else {
            let state: DiscoverableAuthentication = from_json(&ceremony.state)?;
            let (user_handle, _) = self
                .webauthn
                .identify_discoverable_authentication(credential)
                .map_err(ceremony_error)?;
            if user_handle.to_string() != stored.user_id {
                return Err(AuthError::Unauthorized(
                    "passkey and user handle disagree".into(),
                ));
            }
            self.webauthn
                .finish_discoverable_authentication_v2(credential, state, &passkey)
        }
        .map_err(ceremony_error)?;
        // The ceremony's state holds the credential as it was at `begin`; the
        // stored one may have moved on since (another sign-in in between), so
        // the sign counter is checked again against what is stored now.
        let stored_counter = counter_of(&stored.passkey);
        if (result.counter() > 0 || stored_counter > 0) && result.counter() <= stored_counter {
            return Err(AuthError::Ceremony(format!(
                "sign counter went backwards ({} after {stored_counter}): possibly a cloned authenticator",
                result.counter()
            )));
        }
        let changed = passkey.update_credential(&result).unwrap_or(false);
        let json = if changed {
            Some(to_json(&passkey)?)
        } else {
            None
        };
        store::record_passkey_use(&self.db, &stored.id, json.as_deref()).await?;
        store::user_by_id(&self.db, &stored.user_id)
            .await?
            .ok_or_else(|| AuthError::Unauthorized("account no longer exists".into()))
    }
}
