//! What the city publishes itself: presence, live only. Rooms and
//! messages are messaging's, with messaging's events (`message.*`).

use daarion_bus::Envelope;

use crate::SERVICE;

pub const PRESENCE: &str = "presence.city.*";

/// `join`, `heartbeat` or `leave` of `user`.
pub fn presence(kind: &str, user: &str, reason: Option<&str>) -> Envelope {
    let mut payload = serde_json::json!({ "user": user });
    if let Some(reason) = reason {
        payload["reason"] = reason.into();
    }
    Envelope::new(SERVICE, format!("presence.city.{kind}"), payload).with_actor(user)
}
