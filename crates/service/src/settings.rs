//! A service's settings section (`[city]` in `daarion.toml`,
//! `DAARION__CITY__…` in the environment), handled by the binary without
//! knowing its type.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// A service's settings type: defaults, and the rules a value must meet.
pub trait ServiceSettings: Serialize + DeserializeOwned + Default + Send + 'static {
    /// Says which setting is wrong, by its full name (`city.ws_burst …`).
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The type-erased operations on one section.
#[derive(Clone, Copy)]
pub struct Section {
    pub default: fn() -> Value,
    /// Decodes section `name` (unknown keys refused) and validates it.
    pub validate: fn(&str, &Value) -> Result<(), String>,
    /// The section as `daarion config check` shows it: decoded and encoded
    /// again, so [`daarion_kernel::Secret`]s read `***`.
    pub show: fn(&str, &Value) -> Result<Value, String>,
}

impl Section {
    pub const fn of<T: ServiceSettings>() -> Self {
        Self {
            default: default_of::<T>,
            validate: validate_as::<T>,
            show: show_as::<T>,
        }
    }
}

/// Decodes the value of section `name`; an error names the setting
/// (`city.ws_burst: invalid type…`).
pub fn decode<T: ServiceSettings>(name: &str, value: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string() {
        path if path == "." => format!("{name}: {}", e.inner()),
        path => format!("{name}.{path}: {}", e.inner()),
    })
}

fn default_of<T: ServiceSettings>() -> Value {
    serde_json::to_value(T::default()).unwrap_or_default()
}

fn validate_as<T: ServiceSettings>(name: &str, value: &Value) -> Result<(), String> {
    decode::<T>(name, value)?.validate()
}

fn show_as<T: ServiceSettings>(name: &str, value: &Value) -> Result<Value, String> {
    serde_json::to_value(decode::<T>(name, value)?).map_err(|e| e.to_string())
}
