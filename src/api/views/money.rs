//! Money views more than one surface shows: where a payout goes and where it is.

use poem_openapi::Enum;

use crate::db::money::payouts::{PayoutChannel, PayoutState as StoredPayoutState};

/// Where a red packet's money goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "PayoutChannel", rename_all = "snake_case")]
pub enum PayoutChannelView {
    /// A WeChat cash red packet (现金红包), 1–200 yuan a share; the resident must follow the
    /// official account.
    CashRedPacket,
    /// A merchant transfer to WeChat change (商家转账), at least 0.1 yuan; the resident confirms
    /// it in the mini-program.
    Transfer,
    /// The resident's in-app balance, at least 0.01 yuan.
    Balance,
}

one_to_one!(PayoutChannelView <=> PayoutChannel { CashRedPacket, Transfer, Balance });

/// A payout's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum PayoutState {
    /// Queued; not yet accepted by WeChat Pay.
    Pending,
    /// Accepted by WeChat Pay, not final (a red packet not yet opened, a transfer in progress).
    Submitted,
    /// The last call's outcome is unknown: it is queried, then resent with the same number.
    Unknown,
    /// A transfer waiting for the resident to confirm in the mini-program.
    AwaitingConfirmation,
    /// Received.
    Succeeded,
    /// Failed for good; the amount went to the resident's balance.
    Failed,
}

one_to_one!(PayoutState <=> StoredPayoutState {
    Pending,
    Submitted,
    Unknown,
    AwaitingConfirmation,
    Succeeded,
    Failed,
});
