//! Community: the org tree (platform, property companies, communities, merchants), rooms and
//! their rosters, residents and their sessions, and residents' bindings to their homes.

pub mod bindings;
pub mod import;
pub mod orgs;
pub mod residents;
pub mod rooms;
pub mod roster;
pub mod sessions;
