//! Space queries: `nodes` (the registry and heartbeats) and `planets` (the
//! projection of microDAO and messaging events).

pub mod nodes;
pub mod planets;
