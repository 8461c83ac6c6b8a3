//! Retail: merchants' API keys and what merchants report at the counter (orders earning points,
//! refunds, coupon write-offs).

pub mod merchants;
pub mod orders;
