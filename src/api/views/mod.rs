//! The API enums and views more than one surface shows (admin, mini-program, merchant), by
//! context. Each surface's own request and answer types stay in its module; what residents and
//! operators (or merchants) both see lives here, so no surface reaches into another's.

pub mod community;
pub mod loyalty;
pub mod money;
pub mod offers;
pub mod tasks;
