//! Storage of the community context: orgs, rooms, rosters, residents and identities, sessions,
//! bindings.

pub mod bindings;
pub mod orgs;
pub mod residents;
pub mod rooms;
pub mod roster;
pub mod sessions;
