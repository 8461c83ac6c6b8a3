//! Storage of the loyalty context: programmes, accounts, the points ledger, check-ins.

pub mod points;
