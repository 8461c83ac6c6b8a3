//! The hot path of red-packet grabs: one writer per campaign that commits grants in groups, and a
//! short-lived copy of each campaign's row for the checks that come before it.
//!
//! A popular red packet is a flash sale: thousands press at once for a few hundred shares. Each
//! campaign that is being grabbed gets its own writer task on this instance. It takes every grab
//! waiting for it (up to [`MAX_BATCH`]) and writes them all in one transaction with a handful of
//! multi-row statements, whatever their number: drop residents who already hold a share, move the
//! campaign's grant count by compare-and-set (`granted = from` → `to`, never beyond `shares`, only
//! while the campaign is open), read the amounts of shares `from + 1 ..= to`, queue the payouts or
//! credit the wallets, record the grabs under the unique (campaign, resident) key. Each caller is
//! answered only after the commit, so an acknowledged grab survives `kill -9`.
//!
//! The database stays the authority: the compare-and-set and the unique key hold across instances
//! sharing one PostgreSQL (a writer that loses the race reads the count again; one that meets a
//! resident granted by another instance meanwhile rolls back and tries the group again).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::codes::ErrorCode;
use crate::db::community::residents::IdentityRow;
use crate::db::money::payouts::{PayoutChannel, PayoutRow};
use crate::db::money::redpackets::{self as store, CampaignRow, CampaignState, GrabRow, NewGrab};
use crate::db::money::wallet::{self as wallet_store, NewEntry};
use crate::db::{self, Db, DbError, Tx};
use crate::domain::money::grabs::{self, already, Closed};
use crate::domain::money::payouts::{self, Display, Payer, Queue, Wake};
use crate::domain::{DomainError, DomainResult};

/// The most grabs one group transaction takes.
pub const MAX_BATCH: usize = 512;
/// A writer with nothing to do for this long stops; the next grab starts a new one.
const IDLE: Duration = Duration::from_secs(30);
/// How long a campaign's row is trusted for the checks before the write. Nothing those checks read
/// changes after activation except the state (an ended campaign is refused by the write itself)
/// and the grant count (the gate and the write guard that).
const SNAPSHOT_TTL: Duration = Duration::from_secs(1);
/// Rounds of a group against other instances' writers before giving up on it.
const ATTEMPTS: usize = 8;

/// What the write of one grab came to.
pub type Written = DomainResult<(GrabRow, Option<PayoutRow>)>;

/// The writer's answer to one grab, with what its group learnt about the campaign itself.
#[derive(Debug)]
pub struct Answer {
    pub written: Written,
    /// The campaign had no share left when the group committed. A fact about the campaign, read
    /// from its grant count in the group's transaction, never inferred from a refusal that is
    /// about the resident (holds a share already, outside the audience): only this may teach the
    /// sold-out gate.
    pub sold_out: bool,
}

struct Job {
    resident_id: i64,
    /// The WeChat identity a payout goes to, once the writer has read it; `None` for the balance
    /// channel.
    identity: Option<IdentityRow>,
    answer: oneshot::Sender<Answer>,
}

/// The writers and row copies of the campaigns being grabbed on this instance. Cheap to clone.
#[derive(Clone)]
pub struct HotCampaigns {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    payer: Payer,
    writers: Mutex<HashMap<i64, mpsc::Sender<Job>>>,
    snapshots: Mutex<HashMap<i64, (Snapshot, Instant)>>,
}

/// A campaign's row as read once for everyone who asked while it was being read (`None`: no such
/// campaign), so the crowd pressing at a campaign's first second reads it once, not once each.
type Snapshot = Arc<tokio::sync::OnceCell<Option<Arc<CampaignRow>>>>;

impl std::fmt::Debug for HotCampaigns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotCampaigns").finish_non_exhaustive()
    }
}

impl HotCampaigns {
    pub fn new(db: Db, payer: Payer) -> Self {
        Self { inner: Arc::new(Inner { db, payer, writers: Mutex::default(), snapshots: Mutex::default() }) }
    }

    /// The campaign's row, from a copy at most [`SNAPSHOT_TTL`] old, read once however many ask
    /// at the same moment. Drafts are not kept, so an activation is seen at once.
    pub async fn campaign(&self, id: i64) -> DomainResult<Option<Arc<CampaignRow>>> {
        let snapshot = {
            let mut snapshots = self.inner.snapshots.lock().unwrap_or_else(|p| p.into_inner());
            match snapshots.get(&id) {
                Some((snapshot, at)) if at.elapsed() < SNAPSHOT_TTL => snapshot.clone(),
                _ => {
                    // Ended campaigns linger only until the next look finds them stale.
                    snapshots.retain(|_, (_, at)| at.elapsed() < SNAPSHOT_TTL);
                    let fresh = Snapshot::default();
                    snapshots.insert(id, (fresh.clone(), Instant::now()));
                    fresh
                }
            }
        };
        let db = &self.inner.db;
        let read =
            snapshot.get_or_try_init(|| async { store::get(db.reader(), id).await.map(|r| r.map(Arc::new)) }).await;
        let row = match read {
            Ok(row) => row.clone(),
            Err(e) => {
                self.forget(id);
                return Err(e.into());
            }
        };
        if row.as_ref().is_none_or(|c| c.state == CampaignState::Draft) {
            self.forget(id);
        }
        Ok(row)
    }

    /// Forgets the copy of a campaign's row (after an operator changed it on this instance).
    pub fn forget(&self, id: i64) {
        self.inner.snapshots.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    /// Writes a grab of `campaign` for the resident through the campaign's writer; answers after
    /// the group it joined has committed. The writer reads the WeChat identities of the group's
    /// residents at once: who each share is paid to, and whether a follower audience admits them.
    pub async fn write(&self, campaign: &CampaignRow, resident_id: i64) -> Answer {
        let (answer, answered) = oneshot::channel();
        let mut job = Job { resident_id, identity: None, answer };
        loop {
            let lane = {
                let mut writers = self.inner.writers.lock().unwrap_or_else(|p| p.into_inner());
                writers
                    .entry(campaign.id)
                    .or_insert_with(|| {
                        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
                        tokio::spawn(writer(self.inner.clone(), campaign.clone(), rx));
                        tx
                    })
                    .clone()
            };
            match lane.send(job).await {
                Ok(()) => break,
                // That writer stopped for idleness between our look-up and our send: start another.
                Err(mpsc::error::SendError(back)) => {
                    job = back;
                    let mut writers = self.inner.writers.lock().unwrap_or_else(|p| p.into_inner());
                    if writers.get(&campaign.id).is_some_and(|w| w.same_channel(&lane)) {
                        writers.remove(&campaign.id);
                    }
                }
            }
        }
        answered.await.unwrap_or_else(|_| Answer { written: Err(not_written()), sold_out: false })
    }
}

fn not_written() -> DomainError {
    DomainError::Upstream("the grab was not written: the writer stopped; try again".into())
}

/// One campaign's writer: takes what is waiting, writes it as one group, answers, repeats.
async fn writer(inner: Arc<Inner>, campaign: CampaignRow, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        match tokio::time::timeout(IDLE, rx.recv_many(&mut batch, MAX_BATCH)).await {
            Ok(0) => return,
            Ok(_) => write_group(&inner, &campaign, std::mem::take(&mut batch)).await,
            Err(_) => {
                {
                    let mut writers = inner.writers.lock().unwrap_or_else(|p| p.into_inner());
                    if !rx.is_empty() {
                        continue;
                    }
                    writers.remove(&campaign.id);
                }
                // Whoever still holds a sender gets an error on send and starts a new writer;
                // what was sent before the close is written here.
                rx.close();
                while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                    write_group(&inner, &campaign, std::mem::take(&mut batch)).await;
                }
                return;
            }
        }
    }
}

/// What the group decided for one resident.
enum Outcome {
    Granted(Box<(GrabRow, Option<PayoutRow>)>),
    Already,
    Refused(DomainError),
}

async fn write_group(inner: &Inner, campaign: &CampaignRow, mut jobs: Vec<Job>) {
    // A resident pressing twice within one group: the first press is written, the rest echo it.
    let mut leads: Vec<Job> = Vec::with_capacity(jobs.len());
    let mut echoes: Vec<Job> = Vec::new();
    let mut seen = HashSet::with_capacity(jobs.len());
    for job in jobs.drain(..) {
        if seen.insert(job.resident_id) {
            leads.push(job);
        } else {
            echoes.push(job);
        }
    }
    let mut outcome = Err(not_written());
    for _ in 0..ATTEMPTS {
        outcome = write_once(inner, campaign, &mut leads).await;
        // Another instance granted one of these residents meanwhile: the group rolled back; the
        // next round sees that grant and leaves the resident out.
        if !matches!(outcome, Err(DomainError::Db(DbError::UniqueViolation))) {
            break;
        }
    }
    let (mut outcomes, sold_out) = match outcome {
        Ok((outcomes, sold_out, wake)) => {
            wake.send();
            (outcomes, sold_out)
        }
        Err(e) => {
            let message = e.to_string();
            tracing::warn!(campaign_id = campaign.id, error = %message, "a group of grabs was not written");
            (HashMap::new(), false)
        }
    };
    let mut answers: HashMap<i64, Written> = leads
        .iter()
        .map(|job| {
            let answer = match outcomes.remove(&job.resident_id) {
                Some(Outcome::Granted(granted)) => Ok(*granted),
                Some(Outcome::Already) => Err(already()),
                Some(Outcome::Refused(e)) => Err(e),
                None => Err(not_written()),
            };
            (job.resident_id, answer)
        })
        .collect();
    // An echo hears what its first press heard, as that press would hear it again: a share taken
    // is `already_grabbed`, a refusal is the same refusal.
    for job in echoes {
        let written = match answers.get(&job.resident_id) {
            Some(Ok(_)) => Err(already()),
            Some(Err(e)) => Err(repeat(e)),
            None => Err(not_written()),
        };
        let _ = job.answer.send(Answer { written, sold_out });
    }
    for job in leads {
        let written = answers.remove(&job.resident_id).unwrap_or_else(|| Err(not_written()));
        let _ = job.answer.send(Answer { written, sold_out });
    }
}

/// The same refusal again, for a second press of the same resident in one group.
fn repeat(e: &DomainError) -> DomainError {
    match e {
        DomainError::NotFound(what) => DomainError::NotFound(what),
        DomainError::Forbidden(message) => DomainError::Forbidden(message.clone()),
        DomainError::Conflict { code, message } => DomainError::Conflict { code: *code, message: message.clone() },
        DomainError::Invalid { code, message } => DomainError::Invalid { code: *code, message: message.clone() },
        DomainError::Unauthenticated(message) => DomainError::Unauthenticated(message.clone()),
        DomainError::RateLimited(secs) => DomainError::RateLimited(*secs),
        DomainError::Upstream(message) => DomainError::Upstream(message.clone()),
        DomainError::Db(_) => not_written(),
    }
}

/// One try at writing the group in one transaction; commits before answering. Answers each
/// resident's outcome, whether the campaign had no share left at the commit, and the wake owed to
/// the payout dispatcher.
async fn write_once(
    inner: &Inner,
    campaign: &CampaignRow,
    leads: &mut [Job],
) -> DomainResult<(HashMap<i64, Outcome>, bool, Wake)> {
    let mut tx = inner.db.begin().await?;
    let residents: Vec<i64> = leads.iter().map(|j| j.resident_id).collect();
    let holders: HashSet<i64> = store::holders_among(&mut tx, campaign.id, &residents).await?.into_iter().collect();
    let mut outcomes: HashMap<i64, Outcome> = HashMap::with_capacity(leads.len());
    let newcomers: Vec<i64> = residents.iter().copied().filter(|r| !holders.contains(r)).collect();
    let mut identities: HashMap<i64, Vec<IdentityRow>> = HashMap::with_capacity(newcomers.len());
    for i in db::community::residents::identities_of_many(&mut tx, &newcomers).await? {
        identities.entry(i.resident_id).or_default().push(i);
    }
    let apps = inner.payer.apps_for(&mut tx, Some(campaign.owner_org_id)).await?;
    for j in leads.iter_mut() {
        if holders.contains(&j.resident_id) {
            outcomes.insert(j.resident_id, Outcome::Already);
            continue;
        }
        let mine = identities.get(&j.resident_id).map(Vec::as_slice).unwrap_or_default();
        match grabs::payee(campaign, &apps, mine) {
            Ok(identity) => j.identity = identity.cloned(),
            Err(refused) => {
                outcomes.insert(j.resident_id, Outcome::Refused(refused));
            }
        }
    }
    let fresh: Vec<&Job> = leads.iter().filter(|j| !outcomes.contains_key(&j.resident_id)).collect();
    let now = db::now_ms();
    let (amounts, sold_out) = match take(&mut tx, campaign.id, fresh.len(), now).await? {
        Ok(amounts) => {
            // Shares are numbered 1..=shares and taken in order: the last one taken tells.
            let last = amounts.last().is_some_and(|(seq, _)| *seq >= campaign.shares);
            (amounts, last)
        }
        Err(refusal) => {
            for j in &fresh {
                outcomes.insert(j.resident_id, Outcome::Refused(refusal.error()));
            }
            (Vec::new(), matches!(refusal, Closed::SoldOut))
        }
    };
    let (lucky, late) = fresh.split_at(amounts.len().min(fresh.len()));
    for j in late {
        outcomes.entry(j.resident_id).or_insert_with(|| Outcome::Refused(Closed::SoldOut.error()));
    }
    let references: Vec<String> = lucky.iter().map(|j| format!("rp:{}:{}", campaign.id, j.resident_id)).collect();
    let (payout_of, wake) = pay(&mut tx, &inner.payer, campaign, lucky, &amounts, &references, now).await?;
    let grabs: Vec<NewGrab> = lucky
        .iter()
        .zip(&amounts)
        .zip(&references)
        .map(|((j, (seq, amount)), reference)| NewGrab {
            resident_id: j.resident_id,
            seq: *seq,
            amount_fen: *amount,
            payout_id: payout_of.get(reference).map(|p| p.id),
        })
        .collect();
    let written = store::insert_grabs(&mut tx, campaign.id, &grabs, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    let mut payout_of = payout_of;
    for grab in written {
        let payout = payout_of.remove(&format!("rp:{}:{}", campaign.id, grab.resident_id));
        outcomes.insert(grab.resident_id, Outcome::Granted(Box::new((grab, payout))));
    }
    Ok((outcomes, sold_out, wake))
}

/// Takes up to `wanted` shares: the numbers and amounts taken (possibly fewer than wanted), or why
/// the campaign refuses grabs now.
async fn take(tx: &mut Tx, campaign_id: i64, wanted: usize, now: i64) -> DomainResult<Result<Vec<(i64, i64)>, Closed>> {
    if wanted == 0 {
        return Ok(Ok(Vec::new()));
    }
    for _ in 0..ATTEMPTS {
        let Some(c) = store::get(&mut **tx, campaign_id).await? else { return Ok(Err(Closed::Gone)) };
        if let Some(closed) = Closed::of(&c, now) {
            return Ok(Err(closed));
        }
        let left = c.shares - c.granted;
        let to = c.granted + left.min(wanted as i64);
        if store::take_shares(tx, campaign_id, c.granted, to, now).await? {
            let amounts = store::share_amounts(tx, campaign_id, c.granted, to).await?;
            if amounts.len() as i64 != to - c.granted {
                return Err(DomainError::conflict(ErrorCode::RedPacketBroken, "the campaign's shares are missing"));
            }
            return Ok(Ok(amounts));
        }
        // Another instance's writer moved the count first: read it again.
    }
    Err(DomainError::Upstream("the red packet is too busy; try again".into()))
}

/// Queues the payouts (payout channels) or credits the wallets (balance) of the granted residents;
/// answers the payouts by reference, and the wake owed to the dispatcher.
async fn pay(
    tx: &mut Tx,
    payer: &Payer,
    c: &CampaignRow,
    lucky: &[&Job],
    amounts: &[(i64, i64)],
    references: &[String],
    now: i64,
) -> DomainResult<(HashMap<String, PayoutRow>, Wake)> {
    if lucky.is_empty() {
        return Ok((HashMap::new(), Wake::default()));
    }
    if c.channel == PayoutChannel::Balance {
        let credits: Vec<(i64, NewEntry<'_>)> = lucky
            .iter()
            .zip(amounts)
            .zip(references)
            .map(|((j, (_, amount)), reference)| {
                let entry = NewEntry {
                    kind: "credit",
                    source: "red_packet",
                    reference,
                    amount_fen: *amount,
                    owner_org_id: Some(c.owner_org_id),
                    payout_id: None,
                    remark: Some(&c.theme),
                };
                (j.resident_id, entry)
            })
            .collect();
        wallet_store::credit_many(tx, &credits, now).await?;
        return Ok((HashMap::new(), Wake::default()));
    }
    let display = Display {
        send_name: c.send_name.clone(),
        wishing: c.wishing.clone(),
        act_name: c.act_name.clone(),
        remark: c.remark.clone(),
        transfer_remark: c.transfer_remark.clone(),
        transfer_scene_id: c.transfer_scene_id.clone(),
    };
    let mut queued = Vec::with_capacity(lucky.len());
    for ((j, (_, amount)), reference) in lucky.iter().zip(amounts).zip(references) {
        let payee = j.identity.as_ref().ok_or_else(|| {
            DomainError::conflict(ErrorCode::NoWechatIdentity, "a payout needs the resident's WeChat identity")
        })?;
        queued.push(Queue {
            company_id: Some(c.company_id),
            owner_org_id: Some(c.owner_org_id),
            resident_id: j.resident_id,
            channel: c.channel,
            source: "red_packet",
            source_ref: reference,
            amount_fen: *amount,
            payee,
            display: &display,
        });
    }
    let (rows, wake) = payouts::queue(tx, payer, &queued, now).await?;
    Ok((rows.into_iter().map(|row| (row.source_ref.clone(), row)).collect(), wake))
}
