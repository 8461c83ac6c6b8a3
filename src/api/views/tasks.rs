//! Task views more than one surface shows: a task, its terms' kinds and its figures.

use poem_openapi::{Enum, Object};
use time::OffsetDateTime;

use crate::api::common::ts;
use crate::db::tasks::{
    Figures, TaskCategory as StoredCategory, TaskMode as StoredMode, TaskReward, TaskRow, TaskState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum TaskMode {
    /// Residents accept it themselves.
    Open,
    /// Operators assign it to chosen residents.
    Assigned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum TaskCategory {
    /// Invite neighbours to bind their home (邀请绑定房产).
    InviteBind,
    /// Invite neighbours to shop at a merchant (邀请到店消费).
    InviteShop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RewardKind {
    /// Points into the company's programme.
    Points,
    /// Fen into the resident's balance.
    Balance,
    /// A red packet through WeChat Pay (`reward_channel`).
    RedPacket,
}

one_to_one!(TaskMode <=> StoredMode { Open, Assigned });

one_to_one!(TaskCategory <=> StoredCategory { InviteBind, InviteShop });

one_to_one!(RewardKind <=> TaskReward { Points, Balance, RedPacket });

/// Whether a task still counts invitations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "TaskState", rename_all = "snake_case")]
pub enum TaskStateView {
    Active,
    /// Ended by an operator.
    Ended,
}

one_to_one!(TaskStateView <=> TaskState { Active, Ended });

#[derive(Debug, Clone, Object)]
pub struct TaskFigures {
    /// Residents who took it (accepted or assigned).
    pub accepted: i64,
    /// Invitees attributed (not refused).
    pub invitations: i64,
    /// Invitees who counted.
    pub counted: i64,
    /// Rounds completed.
    pub completed: i64,
    /// Points or fen granted.
    pub rewards_paid: i64,
}

#[derive(Debug, Clone, Object)]
pub struct Task {
    pub id: i64,
    pub owner_org_id: i64,
    pub company_id: i64,
    pub theme: String,
    pub mode: TaskMode,
    pub category: TaskCategory,
    #[oai(nullable)]
    pub merchant_id: Option<i64>,
    pub target: i64,
    pub reward_kind: RewardKind,
    pub reward_amount: i64,
    // A string: a nullable enum field is written `allOf`, which SDK generators reject.
    /// `cash_red_packet` or `transfer`, for `red_packet` rewards.
    #[oai(nullable)]
    pub reward_channel: Option<String>,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub max_rounds: i64,
    pub daily_cap: i64,
    pub state: TaskStateView,
    pub created_at: OffsetDateTime,
    pub figures: TaskFigures,
}

pub(crate) fn view(t: TaskRow, f: Figures) -> Task {
    Task {
        id: t.id,
        owner_org_id: t.owner_org_id,
        company_id: t.company_id,
        theme: t.theme,
        mode: t.mode.into(),
        category: t.category.into(),
        merchant_id: t.merchant_id,
        target: t.target,
        reward_kind: t.reward_kind.into(),
        reward_amount: t.reward_amount,
        reward_channel: t.reward_channel.map(|c| c.as_str().to_owned()),
        starts_at: ts(t.starts_at),
        ends_at: ts(t.ends_at),
        max_rounds: t.max_rounds,
        daily_cap: t.daily_cap,
        state: t.state.into(),
        created_at: ts(t.created_at),
        figures: TaskFigures {
            accepted: f.accepted,
            invitations: f.invitations,
            counted: f.counted,
            completed: f.completed,
            rewards_paid: f.rewards_paid,
        },
    }
}
