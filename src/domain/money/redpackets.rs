//! Red-packet campaigns and grabs.
//!
//! An operator writes a campaign as a draft, then activates it: the total is split into its shares
//! ([`crate::domain::money::split`]) and the split is proved (count, exact sum, channel limits) before it is
//! stored. A grab takes the next share with a conditional update on the campaign row (never more
//! grants than shares), records it under a unique (campaign, resident) key (never twice), and
//! queues its payout — or credits the wallet, for the balance channel — in the same transaction.
//! Once a campaign is known to be sold out, [`Gates`] answers further grabs without touching
//! storage; a campaign's shares never grow back, so the gate cannot be wrong.

use sqlx::AnyConnection;

use crate::codes::ErrorCode;
use crate::db::community::orgs::OrgKind;
use crate::db::community::orgs::OrgRow;
use crate::db::community::residents::IdentityRow;
pub use crate::db::money::redpackets::RedPacketAudience;
use crate::db::money::redpackets::{
    self as store, CampaignFields, CampaignFilter, CampaignRow, CampaignState, Figures, GrabRow, MyGrab,
};
use crate::db::{self, Db, DbError, Page, PageRequest, Tx};
use crate::domain::community::sessions::ResidentActor;
use crate::domain::money::gates::Gates;
use crate::domain::money::grabs::{self, already, sold_out, Closed};
use crate::domain::money::hot_campaigns::HotCampaigns;
use crate::domain::money::split::{self, AmountMode, Channel};
use crate::domain::operators::access::{scope_of, Actor, Role};
use crate::domain::{operators::audit, optional_text, required_text, DomainError, DomainResult};

pub use crate::domain::money::payouts::{Apps, Payer};

/// A campaign's terms as an operator writes them. Money is fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignInput {
    pub theme: String,
    pub channel: Channel,
    pub amount_mode: AmountMode,
    pub total_fen: i64,
    pub shares: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub audience: RedPacketAudience,
    pub audience_communities: Vec<i64>,
    pub send_name: Option<String>,
    pub wishing: Option<String>,
    pub act_name: Option<String>,
    pub remark: Option<String>,
    pub transfer_remark: Option<String>,
    pub transfer_scene_id: Option<String>,
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::invalid(ErrorCode::InvalidRedPacket, message)
}

impl CampaignInput {
    fn validated(&self, owner: &OrgRow, default_scene: &str) -> DomainResult<CampaignFields> {
        split::feasible(self.amount_mode, self.total_fen, self.shares, self.channel.limits())
            .map_err(|e| DomainError::invalid(ErrorCode::Unsplittable, e.to_string()))?;
        if let Some(why) = crate::domain::window_refusal("starts_at", self.starts_at, "ends_at", self.ends_at) {
            return Err(invalid(why));
        }
        let mut communities = self.audience_communities.clone();
        communities.sort_unstable();
        communities.dedup();
        match self.audience {
            RedPacketAudience::Followers if communities.is_empty() => {}
            RedPacketAudience::Followers => {
                return Err(invalid("audience_communities is only for the verified_residents audience"))
            }
            RedPacketAudience::VerifiedResidents if !communities.is_empty() && communities.len() <= 200 => {}
            RedPacketAudience::VerifiedResidents => return Err(invalid("name 1..=200 audience_communities")),
        }
        let text = |field: &str, v: &Option<String>, max: usize, default: &str| -> DomainResult<String> {
            Ok(optional_text(field, v.as_deref(), max)?.unwrap_or_else(|| default.to_owned()))
        };
        let theme = required_text("theme", &self.theme, 64)?;
        let short: String = owner.name.chars().take(32).collect();
        let act: String = theme.chars().take(32).collect();
        let scene = text("transfer_scene_id", &self.transfer_scene_id, 8, default_scene)?;
        if !scene.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("transfer_scene_id is a number such as 1000"));
        }
        Ok(CampaignFields {
            channel: self.channel,
            amount_mode: self.amount_mode,
            total_fen: self.total_fen,
            shares: self.shares,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            audience: self.audience,
            audience_communities: serde_json::to_string(&communities).unwrap_or_else(|_| "[]".into()),
            send_name: text("send_name", &self.send_name, 32, &short)?,
            wishing: text("wishing", &self.wishing, 128, "恭喜发财，大吉大利")?,
            act_name: text("act_name", &self.act_name, 32, &act)?,
            remark: text("remark", &self.remark, 256, &act)?,
            transfer_remark: text("transfer_remark", &self.transfer_remark, 32, &act)?,
            transfer_scene_id: scene,
            theme,
        })
    }
}

/// The audience's communities must be active communities under the owner.
async fn check_communities(tx: &mut Tx, owner: &OrgRow, fields: &CampaignFields) -> DomainResult<()> {
    let ids: Vec<i64> = serde_json::from_str(&fields.audience_communities).unwrap_or_default();
    for id in ids {
        let ok = db::community::orgs::get(&mut **tx, id).await?.is_some_and(|c| {
            c.kind == OrgKind::Community && c.archived_at.is_none() && c.path.starts_with(&owner.path)
        });
        if !ok {
            return Err(invalid(format!("org {id} is not an active community of the owner")));
        }
    }
    Ok(())
}

pub async fn create(
    db: &Db,
    actor: &Actor,
    payer: &Payer,
    owner_org_id: i64,
    input: CampaignInput,
) -> DomainResult<CampaignRow> {
    let mut tx = db.begin().await?;
    let (owner, company_id) =
        crate::domain::community::orgs::funding_owner(&mut tx, actor, owner_org_id, "red packets").await?;
    actor.require(Role::Operator)?;
    let apps = payer.apps_for(&mut tx, Some(owner.id)).await?;
    let fields = input.validated(&owner, &apps.transfer_scene_id)?;
    check_communities(&mut tx, &owner, &fields).await?;
    let c = store::insert(&mut tx, owner.id, company_id, &fields, db::now_ms()).await?;
    audit::record(&mut tx, actor, &owner, "red_packet.create", ("red_packet", c.id), (None::<&()>, Some(&c))).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(c)
}

async fn campaign_in_reach(tx: &mut Tx, actor: &Actor, id: i64) -> DomainResult<(CampaignRow, OrgRow)> {
    let c = store::get(&mut **tx, id).await?.ok_or(DomainError::NotFound("red packet"))?;
    let owner = db::community::orgs::get(&mut **tx, c.owner_org_id)
        .await?
        .filter(|o| actor.reaches(&o.path))
        .ok_or(DomainError::NotFound("red packet"))?;
    Ok((c, owner))
}

pub async fn get(db: &Db, actor: &Actor, id: i64) -> DomainResult<(CampaignRow, Figures)> {
    let c = store::get(db.reader(), id).await?.ok_or(DomainError::NotFound("red packet"))?;
    scope_of(db, actor, Some(c.owner_org_id)).await.map_err(crate::domain::not_found_as("red packet"))?;
    let f = store::figures(db.reader(), id).await?;
    Ok((c, f))
}

pub async fn list(
    db: &Db,
    actor: &Actor,
    mut filter: CampaignFilter,
    page: PageRequest,
) -> DomainResult<Page<(CampaignRow, Figures)>> {
    filter.scope_path = scope_of(db, actor, filter.owner_org_id).await?;
    let found = store::list(db.reader(), &filter, page).await?;
    let ids: Vec<i64> = found.items.iter().map(|c| c.id).collect();
    let mut figures = store::figures_of_many(db.reader(), &ids).await?;
    let items = found
        .items
        .into_iter()
        .map(|c| {
            let f = figures.remove(&c.id).unwrap_or_default();
            (c, f)
        })
        .collect();
    Ok(Page { items, total: found.total })
}

fn not_draft(c: &CampaignRow) -> DomainError {
    DomainError::conflict(ErrorCode::RedPacketNotDraft, format!("the campaign is {}; only a draft can change", c.state))
}

/// Rewrites a draft's terms.
pub async fn update(db: &Db, actor: &Actor, payer: &Payer, id: i64, input: CampaignInput) -> DomainResult<CampaignRow> {
    let mut tx = db.begin().await?;
    let (before, owner) = campaign_in_reach(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    let apps = payer.apps_for(&mut tx, Some(owner.id)).await?;
    let fields = input.validated(&owner, &apps.transfer_scene_id)?;
    check_communities(&mut tx, &owner, &fields).await?;
    let after = store::update_draft(&mut tx, id, &fields, db::now_ms()).await?.ok_or_else(|| not_draft(&before))?;
    audit::record(&mut tx, actor, &owner, "red_packet.update", ("red_packet", id), (Some(&before), Some(&after)))
        .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

pub async fn delete(db: &Db, actor: &Actor, id: i64) -> DomainResult<()> {
    let mut tx = db.begin().await?;
    let (before, owner) = campaign_in_reach(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    if !store::delete_draft(&mut tx, id).await? {
        return Err(DomainError::conflict(
            ErrorCode::RedPacketNotDraft,
            "only a draft can be deleted; end an active campaign instead",
        ));
    }
    audit::record(&mut tx, actor, &owner, "red_packet.delete", ("red_packet", id), (Some(&before), None::<&()>))
        .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(())
}

/// Splits the total into its shares, proves the split, and opens the campaign.
pub async fn activate(db: &Db, actor: &Actor, payer: &Payer, id: i64) -> DomainResult<CampaignRow> {
    let mut tx = db.begin().await?;
    let (before, owner) = campaign_in_reach(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    if before.state != CampaignState::Draft {
        return Err(not_draft(&before));
    }
    // Money leaves through the owner's merchant: a channel it cannot pay is refused now, not
    // discovered when residents' grabs wait in the outbox.
    payer.require_payable(&mut tx, owner.id, before.channel, "the campaign").await?;
    let now = db::now_ms();
    if before.ends_at <= now {
        return Err(DomainError::conflict(ErrorCode::RedPacketWindowOver, "the campaign's window is already over"));
    }
    let limits = before.channel.limits();
    let amounts = split::split(before.amount_mode, before.total_fen, before.shares, limits, &mut rand::thread_rng())
        .map_err(|e| DomainError::invalid(ErrorCode::Unsplittable, e.to_string()))?;
    if !split::check(&amounts, before.total_fen, before.shares, limits) {
        return Err(DomainError::invalid(ErrorCode::Unsplittable, "the split did not prove out; nothing was stored"));
    }
    let after = store::activate(&mut tx, id, &amounts, now).await?.ok_or_else(|| not_draft(&before))?;
    audit::record(&mut tx, actor, &owner, "red_packet.activate", ("red_packet", id), (Some(&before), Some(&after)))
        .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

/// Ends an active campaign: no more grabs; grants already made are paid as usual.
pub async fn end(db: &Db, hot: &HotCampaigns, actor: &Actor, id: i64) -> DomainResult<CampaignRow> {
    let mut tx = db.begin().await?;
    let (before, owner) = campaign_in_reach(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    if before.state == CampaignState::Ended {
        hot.forget(id);
        return Ok(before);
    }
    let after = store::end(&mut tx, id, db::now_ms())
        .await?
        .ok_or_else(|| DomainError::conflict(ErrorCode::RedPacketNotActive, "a draft is deleted, not ended"))?;
    audit::record(&mut tx, actor, &owner, "red_packet.end", ("red_packet", id), (Some(&before), Some(&after))).await?;
    tx.commit().await.map_err(DbError::from)?;
    // The writer's copy of the campaign goes at once, so grabs on this instance see it ended.
    hot.forget(id);
    Ok(after)
}

// ----- residents ---------------------------------------------------------------------------

/// Whether the resident is in the campaign's audience; `Err` says why not.
/// `identities` are the resident's WeChat identities, read once by the caller.
async fn check_audience(
    conn: &mut AnyConnection,
    c: &CampaignRow,
    resident_id: i64,
    identities: &[IdentityRow],
    oa_appid: Option<&str>,
) -> DomainResult<()> {
    match c.audience {
        RedPacketAudience::Followers => grabs::follower(identities, oa_appid)?,
        RedPacketAudience::VerifiedResidents => {
            let ids: Vec<i64> = serde_json::from_str(&c.audience_communities).unwrap_or_default();
            for id in ids {
                if let Some(community) = db::community::orgs::get(&mut *conn, id).await? {
                    if !db::community::bindings::verified_rooms_in_scope(&mut *conn, resident_id, &community.path)
                        .await?
                        .is_empty()
                    {
                        return Ok(());
                    }
                }
            }
            return Err(DomainError::Forbidden(
                "this red packet is for verified residents of the campaign's communities".into(),
            ));
        }
    }
    Ok(())
}

/// A grab's outcome.
#[derive(Clone, Debug)]
pub struct Grabbed {
    pub grab: GrabRow,
    pub campaign: CampaignRow,
    pub payout: Option<crate::db::money::payouts::PayoutRow>,
}

/// Takes one share of a campaign for me.
///
/// Everything that only reads — the sold-out gate, the campaign (from a copy at most a second
/// old), the window, the audience, my WeChat identity — is checked before the write; the write
/// itself (take the next share, queue its payout or credit the wallet, record the grab) goes
/// through the campaign's writer ([`HotCampaigns`]), which commits many grabs at once and answers
/// each only after the commit. The write repeats the decisive checks (the campaign open, the
/// compare-and-set on its grant count, the unique grab key), so a race between the read and the
/// write cannot grant twice or beyond the shares.
pub async fn grab(
    db: &Db,
    hot: &HotCampaigns,
    gates: &Gates,
    me: &ResidentActor,
    campaign_id: i64,
) -> DomainResult<Grabbed> {
    if let Some(holders) = gates.sold_out(campaign_id) {
        // A press after the last share: from memory, whether this resident holds one (say, a
        // retry after an answer lost in a crash) or not.
        let holders = holders.get_or_try_init(|| async { store::holders(db.reader(), campaign_id).await }).await?;
        return Err(if holders.contains(&me.resident_id) { already() } else { sold_out() });
    }
    let now = db::now_ms();
    let c = hot.campaign(campaign_id).await?.ok_or(DomainError::NotFound("red packet"))?;
    if let Some(closed) = Closed::of(&c, now) {
        if closed == Closed::SoldOut {
            gates.mark_sold_out(c.id);
        }
        return Err(closed.error());
    }
    if c.audience != RedPacketAudience::Followers {
        // Verified residents of the campaign's communities: their bindings are read here; the
        // WeChat identities (and a follower audience) are checked by the writer for the group.
        let mut conn = db.reader().acquire().await.map_err(DbError::from)?;
        check_audience(&mut conn, &c, me.resident_id, &[], None).await?;
    }
    let answer = hot.write(&c, me.resident_id).await;
    // The gate learns only what the campaign's own grant count said, never from a refusal that
    // is about this resident: otherwise one resident pressing many times could close the
    // campaign for everyone on this instance.
    if answer.sold_out {
        gates.mark_sold_out(c.id);
    }
    let (grab, payout) = answer.written?;
    Ok(Grabbed { grab, campaign: (*c).clone(), payout })
}

/// A campaign I can grab from now, with my share if I took one.
#[derive(Clone, Debug)]
pub struct Open {
    pub campaign: CampaignRow,
    pub mine: Option<GrabRow>,
}

/// The company's open campaigns whose audience includes me.
pub async fn open_for_me(
    db: &Db,
    payer: &Payer,
    me: &ResidentActor,
    company_id: i64,
    page: PageRequest,
) -> DomainResult<Vec<Open>> {
    let now = db::now_ms();
    let open = store::open_in_company(db.reader(), company_id, now).await?;
    let mut conn = db.reader().acquire().await.map_err(DbError::from)?;
    let identities = db::community::residents::identities_of(&mut *conn, me.resident_id).await?;
    let mut out = Vec::new();
    for c in open {
        let oa = payer.apps_for(&mut conn, Some(c.owner_org_id)).await?.oa_appid;
        match check_audience(&mut conn, &c, me.resident_id, &identities, oa.as_deref()).await {
            Ok(()) => {}
            Err(DomainError::Forbidden(_)) => continue,
            Err(e) => return Err(e),
        }
        let mine = store::grab_of(&mut *conn, c.id, me.resident_id).await?;
        out.push(Open { campaign: c, mine });
    }
    Ok(page.slice(out))
}

pub async fn my_grabs(db: &Db, me: &ResidentActor, page: PageRequest) -> DomainResult<Vec<MyGrab>> {
    Ok(store::my_grabs(db.reader(), me.resident_id, page).await?)
}
