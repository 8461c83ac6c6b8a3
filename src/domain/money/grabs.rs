//! The rules of a grab that both the grab's checks ([`crate::domain::money::redpackets::grab`]) and the
//! campaign's writer ([`crate::domain::money::hot_campaigns`]) apply: why a campaign refuses every grab now
//! ([`Closed`]), who a share is paid to ([`payee`]), and the refusals a resident is answered.

use crate::codes::ErrorCode;
use crate::db::community::residents::IdentityRow;
use crate::db::money::redpackets::{CampaignRow, CampaignState};
use crate::domain::money::payouts::Apps;
use crate::domain::{DomainError, DomainResult};

/// Why a campaign refuses every grab now, whoever presses. The one rule both the check on the
/// campaign's snapshot before a write ([`crate::domain::money::redpackets::grab`]) and the writer on the locked
/// row ([`crate::domain::money::hot_campaigns`]) apply; refusals about the one pressing (a share held, not in the
/// audience) are not here, and never close the campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Closed {
    /// A draft (or a campaign that is not there): residents cannot see it.
    Gone,
    Ended,
    NotStarted,
    WindowOver,
    SoldOut,
}

impl Closed {
    pub(super) fn of(c: &CampaignRow, now: i64) -> Option<Closed> {
        match c.state {
            CampaignState::Active => {}
            CampaignState::Ended => return Some(Closed::Ended),
            CampaignState::Draft => return Some(Closed::Gone),
        }
        if now < c.starts_at {
            Some(Closed::NotStarted)
        } else if now >= c.ends_at {
            Some(Closed::WindowOver)
        } else if c.granted >= c.shares {
            Some(Closed::SoldOut)
        } else {
            None
        }
    }

    pub(super) fn error(self) -> DomainError {
        match self {
            Closed::Gone => DomainError::NotFound("red packet"),
            Closed::Ended => DomainError::conflict(ErrorCode::RedPacketEnded, "the campaign has ended"),
            Closed::NotStarted => {
                DomainError::conflict(ErrorCode::RedPacketNotStarted, "the campaign has not started yet")
            }
            Closed::WindowOver => DomainError::conflict(ErrorCode::RedPacketWindowOver, "the campaign is over"),
            Closed::SoldOut => sold_out(),
        }
    }
}

pub(super) fn sold_out() -> DomainError {
    DomainError::conflict(ErrorCode::SoldOut, "all shares of this red packet have been taken")
}

pub(super) fn already() -> DomainError {
    DomainError::conflict(ErrorCode::AlreadyGrabbed, "you have already taken a share of this red packet")
}

/// A follower audience admits residents who follow the owner's official account now (not any
/// account: a follower of another company's account is not this owner's follower).
pub(super) fn follower(identities: &[IdentityRow], oa_appid: Option<&str>) -> DomainResult<()> {
    if crate::domain::community::residents::follows_account(identities, oa_appid) {
        Ok(())
    } else {
        Err(DomainError::Forbidden("this red packet is for followers of the official account".into()))
    }
}

/// Who a share of the campaign is paid to, from the resident's WeChat identities
/// ([`crate::domain::money::payouts::payee`]); a follower audience also needs a followed official account.
pub(super) fn payee<'a>(
    c: &CampaignRow,
    apps: &Apps,
    identities: &'a [IdentityRow],
) -> DomainResult<Option<&'a IdentityRow>> {
    if c.audience == crate::db::money::redpackets::RedPacketAudience::Followers {
        follower(identities, apps.oa_appid.as_deref())?;
    }
    crate::domain::money::payouts::payee(apps, c.channel, identities)
}
