//! The hot path of official-account check-ins: one writer that takes every check-in push waiting
//! and writes them together with a handful of multi-row statements, whatever their number.
//!
//! On a festival evening most pushes are check-ins by residents we already know. Handled one by
//! one, each cost about twenty statements; here a group costs ten: the binding of each push's URL
//! (timestamp, nonce) to its body (a push whose URL came with another body is refused, see
//! [`crate::domain::loyalty::pushes`]), the pushes seen before (their stored replies answer redeliveries), the
//! residents behind the openids, their accounts (opened as needed), their check-ins since
//! yesterday, then the new check-ins, the balances, the ledger rows and the handled pushes with
//! their replies. Streaks, bonuses and replies are worked out in memory from what was read, in the
//! order the pushes arrived, by the one rule the one-by-one path ([`crate::domain::loyalty::points::check_in`])
//! uses too: [`Checkin::on_day`]. Each push is answered only after the commit.
//!
//! The unique keys stay the guard — (appid, dedupe key) for pushes, (programme, resident, day) for
//! check-ins, (programme, reference) for the ledger: if another instance or the general push path
//! wrote one of them meanwhile, the group rolls back and is tried again, and then sees it. A push
//! from an openid we do not know yet is handed back to the general path, which makes the resident.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::db::community::orgs::OrgKind;
use crate::db::loyalty::points::{self as store, NewCheckin, NewLedgerRow, ProgrammeRow};
use crate::db::wechat::{self as pushes, HandledPush};
use crate::db::{self, Db, DbError};
use crate::domain::loyalty::points::{local_day, Checkin, Kind, Rules, Source};
use crate::domain::loyalty::pushes::SignedPush;
use crate::domain::{DomainError, DomainResult};

/// The most pushes one group transaction takes.
const MAX_BATCH: usize = 512;
/// How long a company's programme is trusted before it is read again: a change of rules reaches
/// check-ins within this.
const PROGRAMME_TTL: Duration = Duration::from_secs(1);
/// Rounds of a group against other writers before giving up on it.
const ATTEMPTS: usize = 8;

/// A check-in push to write.
#[derive(Clone, Debug)]
pub struct CheckinPush {
    pub appid: String,
    /// The URL it came under and its body's hash.
    pub signed: SignedPush,
    pub dedupe_key: String,
    pub openid: String,
    pub msg_type: &'static str,
    pub event: Option<String>,
    /// When the resident acted (the push's `CreateTime`): the day it counts for.
    pub at_ms: i64,
}

/// What became of a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Written (or answered as a redelivery): the reply.
    Reply(Option<String>),
    /// From an openid not known yet: for the general path, which makes the resident.
    Stranger,
    /// Its URL's (timestamp, nonce) came with another body first: refused, nothing written.
    NonceReused,
}

struct Job {
    programme: Arc<ProgrammeRow>,
    push: CheckinPush,
    answer: oneshot::Sender<DomainResult<Handled>>,
}

/// Each company's programme (none: not an active company with one) and when it was read.
type ProgrammeCopies = Mutex<HashMap<i64, (Option<Arc<ProgrammeRow>>, Instant)>>;

/// The check-in writer of this instance and its copy of each company's programme. Cheap to clone.
#[derive(Clone)]
pub struct CheckinWriter {
    db: Db,
    lane: mpsc::Sender<Job>,
    programmes: Arc<ProgrammeCopies>,
}

impl std::fmt::Debug for CheckinWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckinWriter").finish_non_exhaustive()
    }
}

impl CheckinWriter {
    /// Starts the writer task.
    pub fn start(db: &Db) -> Self {
        let (lane, rx) = mpsc::channel(MAX_BATCH * 8);
        tokio::spawn(writer(db.clone(), rx));
        Self { db: db.clone(), lane, programmes: Arc::default() }
    }

    /// The programme of an active property company, from a copy at most [`PROGRAMME_TTL`] old;
    /// `None` when the company is not an active one or has no programme yet (the general path
    /// makes it).
    pub async fn programme(&self, company_id: i64) -> DomainResult<Option<Arc<ProgrammeRow>>> {
        if let Some((p, at)) = self.programmes.lock().unwrap_or_else(|p| p.into_inner()).get(&company_id) {
            if at.elapsed() < PROGRAMME_TTL {
                return Ok(p.clone());
            }
        }
        let company = db::community::orgs::get(self.db.reader(), company_id).await?;
        let active = company.is_some_and(|c| c.kind == OrgKind::Company && c.archived_at.is_none());
        let programme =
            if active { store::programme_of(self.db.reader(), company_id).await?.map(Arc::new) } else { None };
        self.programmes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(company_id, (programme.clone(), Instant::now()));
        Ok(programme)
    }

    /// Writes a check-in push with the programme's rules; answers after the group committed. If
    /// the writer has stopped (it never should), the push goes the general way instead.
    pub async fn write(&self, programme: Arc<ProgrammeRow>, push: CheckinPush) -> DomainResult<Handled> {
        let (answer, answered) = oneshot::channel();
        if self.lane.send(Job { programme, push, answer }).await.is_err() {
            tracing::error!("the check-in writer has stopped; check-ins go the general way");
            return Ok(Handled::Stranger);
        }
        answered.await.unwrap_or_else(|_| Err(not_written()))
    }
}

fn not_written() -> DomainError {
    DomainError::Upstream("the check-in was not written; WeChat will deliver it again".into())
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // One group per (programme, app): in practice the one official account's programme.
        let mut groups: HashMap<(i64, String), Vec<Job>> = HashMap::new();
        for job in batch.drain(..) {
            groups.entry((job.programme.id, job.push.appid.clone())).or_default().push(job);
        }
        for (_, jobs) in groups {
            write_group(&db, jobs).await;
        }
    }
}

async fn write_group(db: &Db, jobs: Vec<Job>) {
    let mut outcome = Err(not_written());
    for _ in 0..ATTEMPTS {
        outcome = write_once(db, &jobs).await;
        if !matches!(outcome, Err(DomainError::Db(DbError::UniqueViolation))) {
            break;
        }
    }
    match outcome {
        Ok(answers) => {
            for (job, answer) in jobs.into_iter().zip(answers) {
                let _ = job.answer.send(Ok(answer));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "a group of check-ins was not written");
            for job in jobs {
                let _ = job.answer.send(Err(not_written()));
            }
        }
    }
}

/// A resident's state while the group is worked out: check-ins since yesterday (and those of
/// this group), and the points this group adds, job by job.
#[derive(Default)]
struct Resident {
    account_id: i64,
    balance: i64,
    days: Vec<(i64, i64)>,
    /// (job index, points) of each credit of this group, in order.
    credits: Vec<(usize, i64)>,
}

/// What one job came to, before the balances are known.
enum Plan {
    /// Another body was taken under its URL.
    NonceReused,
    Redelivery(Option<String>),
    /// A second delivery of a push earlier in this same group: its answer.
    Echo(usize),
    Stranger,
    Checkin {
        resident_id: i64,
        done: Checkin,
    },
}

/// One try at writing the group in one transaction; answers in the order of `jobs`.
async fn write_once(db: &Db, jobs: &[Job]) -> DomainResult<Vec<Handled>> {
    let programme = jobs[0].programme.clone();
    let appid = jobs[0].push.appid.as_str();
    let rules = Rules::of(&programme);
    let mut tx = db.begin().await?;

    // Each URL bound to the first body of the group under it (or to the one bound before); a
    // job is refused when its body is not the one its URL is bound to.
    let mut claims: Vec<pushes::NonceClaim<'_>> = Vec::with_capacity(jobs.len());
    let mut claimed: HashMap<(i64, &str), &str> = HashMap::with_capacity(jobs.len());
    for claim in jobs.iter().filter_map(|j| j.push.signed.claim()) {
        if let Entry::Vacant(e) = claimed.entry((claim.url_timestamp, claim.nonce)) {
            e.insert(claim.body_sha256);
            claims.push(claim);
        }
    }
    // In one order everywhere, so that two instances' groups meeting on the same URLs wait for
    // each other instead of deadlocking.
    claims.sort_unstable_by(|a, b| (a.url_timestamp, a.nonce).cmp(&(b.url_timestamp, b.nonce)));
    let taken: HashSet<(i64, &str)> = pushes::bind_nonces(&mut tx, appid, &claims, db::now_ms())
        .await?
        .into_iter()
        .map(|i| (claims[i].url_timestamp, claims[i].nonce))
        .collect();
    let refused: Vec<bool> = jobs
        .iter()
        .map(|j| {
            let s = &j.push.signed;
            let url = (s.url_timestamp, s.nonce.as_str());
            !s.sealed && (taken.contains(&url) || claimed.get(&url).is_none_or(|first| *first != s.body_sha256))
        })
        .collect();

    let keys: Vec<&str> = jobs.iter().map(|j| j.push.dedupe_key.as_str()).collect();
    let seen: HashMap<String, Option<String>> = pushes::seen_pushes(&mut tx, appid, &keys).await?.into_iter().collect();
    let openids: Vec<&str> = jobs
        .iter()
        .zip(&refused)
        .filter(|(j, refused)| !**refused && !seen.contains_key(&j.push.dedupe_key))
        .map(|(j, _)| j)
        .map(|j| j.push.openid.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let known: HashMap<String, i64> =
        db::community::residents::residents_by_openid(&mut tx, appid, &openids).await?.into_iter().collect();
    let ids: Vec<i64> = known.values().copied().collect::<HashSet<_>>().into_iter().collect();
    let days: Vec<i64> = jobs.iter().map(|j| local_day(j.push.at_ms, rules.utc_offset_minutes)).collect();
    let now = db::now_ms();
    let mut residents: HashMap<i64, Resident> = HashMap::with_capacity(ids.len());
    if !ids.is_empty() {
        store::open_accounts(&mut tx, programme.id, &ids, now).await?;
        for a in store::accounts_of(&mut tx, programme.id, &ids).await? {
            residents.insert(a.resident_id, Resident { account_id: a.id, balance: a.balance, ..Resident::default() });
        }
        let since = days.iter().min().copied().unwrap_or(0) - 1;
        for c in store::checkins_since(&mut tx, programme.id, &ids, since).await? {
            if let Some(r) = residents.get_mut(&c.resident_id) {
                r.days.push((c.day, c.streak));
            }
        }
    }

    // Work out each push in arrival order, as the one-by-one path would have.
    let mut plans = Vec::with_capacity(jobs.len());
    let mut first_of_key: HashMap<&str, usize> = HashMap::new();
    let mut new_checkins = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let key = job.push.dedupe_key.as_str();
        if refused[i] {
            plans.push(Plan::NonceReused);
            continue;
        }
        if let Some(reply) = seen.get(key) {
            plans.push(Plan::Redelivery(reply.clone()));
            continue;
        }
        if let Some(first) = first_of_key.get(key) {
            plans.push(Plan::Echo(*first));
            continue;
        }
        first_of_key.insert(key, i);
        let Some(r) = known.get(&job.push.openid).and_then(|id| residents.get_mut(id).map(|r| (*id, r))) else {
            plans.push(Plan::Stranger);
            continue;
        };
        let (resident_id, r) = r;
        let day = days[i];
        let done = Checkin::on_day(&rules, &r.days, day);
        if !done.already {
            r.days.push((day, done.streak));
            new_checkins.push(NewCheckin {
                resident_id,
                day,
                streak: done.streak,
                points: done.points,
                at: job.push.at_ms,
            });
            if done.points > 0 {
                r.credits.push((i, done.points));
            }
        }
        plans.push(Plan::Checkin { resident_id, done });
    }

    // The balances: one credit per account, then each job's balance is the final one less what
    // later jobs of the group added.
    store::insert_checkins(&mut tx, programme.id, &new_checkins).await?;
    let deltas: Vec<(i64, i64)> = residents
        .values()
        .filter(|r| !r.credits.is_empty())
        .map(|r| (r.account_id, r.credits.iter().map(|(_, p)| p).sum()))
        .collect();
    let finals: HashMap<i64, i64> = store::credit_accounts(&mut tx, &deltas, now).await?.into_iter().collect();
    let balance_at = |r: &Resident, i: usize| -> i64 {
        let last = finals.get(&r.account_id).copied().unwrap_or(r.balance);
        last - r.credits.iter().filter(|(j, _)| *j > i).map(|(_, p)| p).sum::<i64>()
    };
    let mut texts: Vec<Option<(String, Option<String>)>> = Vec::with_capacity(jobs.len());
    for (i, plan) in plans.iter_mut().enumerate() {
        let Plan::Checkin { resident_id, done } = plan else {
            texts.push(None);
            continue;
        };
        done.balance = balance_at(&residents[resident_id], i);
        texts.push(
            (!done.already && done.points > 0).then(|| (Checkin::reference(*resident_id, days[i]), done.remark())),
        );
    }
    let ledger_rows: Vec<NewLedgerRow<'_>> = plans
        .iter()
        .zip(&texts)
        .enumerate()
        .filter_map(|(i, (plan, text))| {
            let (Plan::Checkin { resident_id, done }, Some((reference, remark))) = (plan, text) else { return None };
            Some(NewLedgerRow {
                programme_id: programme.id,
                account_id: residents[resident_id].account_id,
                resident_id: *resident_id,
                kind: Kind::Earn,
                source: Source::Checkin,
                reference,
                amount: done.points,
                balance_after: done.balance,
                operator_key_id: None,
                operator: None,
                remark: remark.as_deref(),
                created_at: jobs[i].push.at_ms,
            })
        })
        .collect();
    store::append_many(&mut tx, &ledger_rows).await?;

    // The answers, stored with their pushes for redeliveries.
    let mut answers: Vec<Handled> = Vec::with_capacity(jobs.len());
    for plan in &plans {
        answers.push(match plan {
            Plan::NonceReused => Handled::NonceReused,
            Plan::Redelivery(reply) => Handled::Reply(reply.clone()),
            Plan::Echo(first) => answers[*first].clone(),
            Plan::Stranger => Handled::Stranger,
            Plan::Checkin { done, .. } => Handled::Reply(Some(done.message())),
        });
    }
    let handled: Vec<HandledPush<'_>> = jobs
        .iter()
        .zip(&plans)
        .zip(&answers)
        .filter(|((_, plan), _)| matches!(plan, Plan::Checkin { .. }))
        .map(|((job, _), answer)| HandledPush {
            dedupe_key: &job.push.dedupe_key,
            openid: &job.push.openid,
            msg_type: job.push.msg_type,
            event: job.push.event.as_deref(),
            reply: match answer {
                Handled::Reply(r) => r.as_deref(),
                Handled::Stranger | Handled::NonceReused => None,
            },
            received_at: job.push.at_ms,
        })
        .collect();
    pushes::insert_pushes(&mut tx, appid, &handled).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(answers)
}
