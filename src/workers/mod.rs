//! Background jobs. Each is safe to run on several instances at once: its writes are idempotent
//! conditional updates, so two instances doing the same round change each row once.

pub mod certificates;
pub mod expiry;
pub mod instances;
pub mod messages;
pub mod payouts;
pub mod reconcile;
