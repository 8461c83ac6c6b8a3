//! In-memory sold-out gates: late comers to a sold-out red packet or coupon are answered without
//! touching storage.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

/// Red packets and coupons known to be sold out, per instance. Only an optimisation: the database
/// decides. A red packet's shares never grow back, so its mark is permanent; a coupon's stock can
/// be raised by an operator (on any instance), so its mark lasts [`COUPON_GATE_MS`].
#[derive(Debug, Default)]
pub struct Gates {
    sold_out: RwLock<HashSet<i64>>,
    coupons: RwLock<HashMap<i64, i64>>,
}

/// How long a coupon template stays marked sold out (unix ms).
pub const COUPON_GATE_MS: i64 = 1000;

impl Gates {
    pub fn is_sold_out(&self, campaign_id: i64) -> bool {
        self.sold_out.read().map(|s| s.contains(&campaign_id)).unwrap_or(false)
    }

    pub(crate) fn mark_sold_out(&self, campaign_id: i64) {
        if let Ok(mut s) = self.sold_out.write() {
            s.insert(campaign_id);
        }
    }

    /// Whether the coupon template was found sold out less than [`COUPON_GATE_MS`] ago.
    pub fn coupon_sold_out(&self, template_id: i64, now: i64) -> bool {
        self.coupons.read().map(|m| m.get(&template_id).is_some_and(|at| now - at < COUPON_GATE_MS)).unwrap_or(false)
    }

    pub fn mark_coupon_sold_out(&self, template_id: i64, now: i64) {
        if let Ok(mut m) = self.coupons.write() {
            m.insert(template_id, now);
        }
    }
}
