//! Storage of the money context: red-packet campaigns, shares and grabs; payouts, their numbers,
//! events and reconciliation; the wallet.

pub mod payouts;
pub mod redpackets;
pub mod wallet;
