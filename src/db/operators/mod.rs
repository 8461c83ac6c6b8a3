//! Storage of the operators context: API keys and the audit log.

pub mod api_keys;
pub mod audit;
