//! Storage of the offers context: coupon templates, coupons and their rules; the catalogue and
//! redemptions.

pub mod coupons;
pub mod redemption;
