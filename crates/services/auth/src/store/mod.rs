//! Auth queries, one file per aggregate: `users`, `passkeys`,
//! `ceremonies`, `sessions`, `keys` (and agents), `recovery`, `invites`,
//! `secrets`.
//! Every write is one transaction; single-use things (ceremonies, recovery
//! codes, invitations) are consumed by one conditional statement, so two
//! replicas can never both accept the same one.

use daarion_store::{
    Db,
    sql::{self, AnyRow, Row},
};

use daarion_access::vocab::roles::CityRole;

use crate::domain::{AuthError, hash_secret, new_secret};

mod ceremonies;
mod invites;
mod keys;
mod passkeys;
mod recovery;
mod secrets;
mod sessions;
mod users;

pub use ceremonies::*;
pub use invites::*;
pub use keys::*;
pub use passkeys::*;
pub use recovery::*;
pub use secrets::*;
pub use sessions::*;
pub use users::*;
