//! WeChat accounts as records: the apps (official accounts, mini-programs) and the WeChat Pay
//! merchants each owner brings. Secret columns hold sealed values only (`crate::sealing`); this
//! layer stores and reads them as they are and never sees a secret.

pub mod apps;
pub mod merchants;
