//! WeChat accounts: the official accounts, mini-programs and WeChat Pay merchants each owner
//! (a property company, or the platform for shared use) brings. They are records, managed through
//! the admin API ([`apps`], [`merchants`]) with their secrets sealed at rest (`crate::sealing`),
//! or, for a deployment configured the old way, the one account, mini-program and merchant of the
//! environment. [`registry`] holds what every instance routes by: pushes by appid, logins by the
//! mini-program's appid, payouts by the merchant of their funding owner.

pub mod apps;
pub mod import;
pub mod merchants;
pub mod registry;
pub mod rotation;
