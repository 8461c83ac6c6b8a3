//! Loyalty views more than one surface shows: the points ledger.

use poem_openapi::{Enum, Object};
use time::OffsetDateTime;

use crate::api::common::{ts, PageInfo};
use crate::db::loyalty::points::LedgerRow;
use crate::domain::loyalty::points::{Kind, Source};

/// What a ledger row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "PointsKind", rename_all = "lowercase")]
pub enum KindView {
    /// Granted by an operator (发行).
    Issue,
    /// Earned by a rule.
    Earn,
    /// Spent (支出).
    Spend,
    /// Exchanged for goods or services (兑换).
    Redeem,
    /// Given back (返还).
    Refund,
    /// Lapsed.
    Expire,
    /// An operator's correction.
    Adjust,
}

/// What caused a ledger row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "PointsSource", rename_all = "lowercase")]
pub enum SourceView {
    Follow,
    Checkin,
    Purchase,
    Referral,
    Task,
    Redemption,
    Operator,
}

one_to_one!(KindView <=> Kind { Issue, Earn, Spend, Redeem, Refund, Expire, Adjust });

one_to_one!(SourceView <=> Source { Follow, Checkin, Purchase, Referral, Task, Redemption, Operator });

/// One ledger row. Rows are never changed; a correction is a new row.
#[derive(Debug, Clone, Object)]
pub struct LedgerEntry {
    pub id: i64,
    pub resident_id: i64,
    pub kind: KindView,
    pub source: SourceView,
    /// Unique in the programme; posting it again has no second effect.
    pub reference: String,
    /// Points moved: positive credits, negative debits.
    pub amount: i64,
    /// The account's balance after this row.
    pub balance_after: i64,
    /// The key of the operator who posted it, for operator rows.
    #[oai(nullable)]
    pub operator_key_id: Option<i64>,
    #[oai(nullable)]
    pub operator: Option<String>,
    #[oai(nullable)]
    pub remark: Option<String>,
    pub created_at: OffsetDateTime,
}

impl From<LedgerRow> for LedgerEntry {
    fn from(r: LedgerRow) -> Self {
        Self {
            id: r.id,
            resident_id: r.resident_id,
            kind: r.kind.into(),
            source: r.source.into(),
            reference: r.reference,
            amount: r.amount,
            balance_after: r.balance_after,
            operator_key_id: r.operator_key_id,
            operator: r.operator,
            remark: r.remark,
            created_at: ts(r.created_at),
        }
    }
}

/// Sums over every row matching the filters (all pages).
#[derive(Debug, Clone, Object)]
pub struct LedgerTotalsView {
    /// Points credited (sum of positive amounts).
    pub credited: i64,
    /// Points debited (sum of negative amounts, as a positive number).
    pub debited: i64,
    /// credited − debited.
    pub net: i64,
}

/// A page of the ledger, with totals.
#[derive(Debug, Clone, Object)]
pub struct LedgerPage {
    pub items: Vec<LedgerEntry>,
    pub page: PageInfo,
    pub totals: LedgerTotalsView,
}

impl LedgerPage {
    pub(crate) fn new(
        found: crate::db::Page<LedgerRow>,
        totals: crate::db::loyalty::points::LedgerTotals,
        req: crate::db::PageRequest,
    ) -> Self {
        Self {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
            totals: LedgerTotalsView {
                credited: totals.credited,
                debited: totals.debited,
                net: totals.credited - totals.debited,
            },
        }
    }
}
