//! In-memory sold-out gates: late comers to a sold-out red packet or coupon are answered without
//! touching storage.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use tokio::sync::OnceCell;

/// The residents holding a share of a sold-out red packet, read once when first needed, so a late
/// press is answered `already_grabbed` or `sold_out` from memory. Nobody joins them afterwards.
pub type Holders = Arc<OnceCell<HashSet<i64>>>;

/// Red packets and coupons known to be sold out, per instance. Only an optimisation: the database
/// decides. A red packet's shares never grow back, so its mark is permanent; a coupon's stock can
/// be raised by an operator (on any instance), so its mark lasts [`COUPON_GATE_MS`].
#[derive(Debug, Default)]
pub struct Gates {
    sold_out: RwLock<HashMap<i64, Holders>>,
    coupons: RwLock<HashMap<i64, i64>>,
}

/// How long a coupon template stays marked sold out (unix ms).
pub const COUPON_GATE_MS: i64 = 1000;

impl Gates {
    /// The holders of a red packet known to be sold out; `None` while it is not.
    pub fn sold_out(&self, campaign_id: i64) -> Option<Holders> {
        self.sold_out.read().ok().and_then(|s| s.get(&campaign_id).cloned())
    }

    pub(crate) fn mark_sold_out(&self, campaign_id: i64) {
        if let Ok(mut s) = self.sold_out.write() {
            s.entry(campaign_id).or_default();
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
