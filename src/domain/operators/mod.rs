//! Operators: who is acting (an API key's actor, its role and reach), the keys themselves, and the
//! audit log of what they changed.

pub mod access;
pub mod audit;
pub mod keys;
