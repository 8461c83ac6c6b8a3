//! Offers: coupon templates and coupons (claims, and using one at a merchant), the rules that
//! issue coupons on a trigger, and the points catalogue residents redeem from.

pub mod coupon_rules;
pub mod coupons;
pub mod redemption;
