//! WeChat protocol code, no business rules: the official-account callback protocol (`oa`) and
//! WeChat's server API (`api`).

pub mod api;
pub mod oa;
pub mod pay;

#[cfg(test)]
pub(crate) mod fuzz;
