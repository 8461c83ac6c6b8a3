//! Group commit: many small write jobs share one transaction, so a burst of grabs pays for one
//! commit (one fsync on SQLite, one WAL flush on PostgreSQL) instead of one each.
//!
//! A writer task takes the jobs waiting in its queue (up to `max_batch`), opens one transaction,
//! runs each job inside a `SAVEPOINT` — a job that fails is rolled back to its savepoint and the
//! others go on — commits once, and only then tells each caller its outcome. An answer therefore
//! always describes committed state: a job reported done survives a crash of the process. If the
//! commit fails, every job of the batch is told so and none took effect.
//!
//! Jobs of one lane run one after another; [`GroupCommit::start`] spreads keys (e.g. campaigns)
//! over several lanes on PostgreSQL, where several transactions can run at once. SQLite has one
//! writer connection, so one lane is all it can use.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, DbError, Engine, Tx};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A job as the writer runs it: true when it succeeded (its savepoint is kept).
type Run = Box<dyn for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, Finished> + Send>;

/// What a job leaves for after the commit: whether to keep it, and how to answer its caller.
struct Finished {
    ok: bool,
    answer: Box<dyn FnOnce(Result<(), String>) + Send>,
}

/// Why a grouped job did not take effect although it succeeded on its own.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("the group's commit failed: {0}")]
    Commit(String),
    /// The group's transaction failed before the job ran, or the writer has stopped.
    #[error("the write was not made: the group transaction failed or the writer stopped")]
    NotRun,
}

/// A handle to the writer tasks. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GroupCommit {
    lanes: Vec<mpsc::Sender<Run>>,
}

impl GroupCommit {
    /// Starts the writers: one on SQLite, `lanes` on PostgreSQL. Each commits up to `max_batch`
    /// jobs at a time.
    pub fn start(db: &Db, lanes: usize, max_batch: usize) -> Self {
        let lanes = if db.engine() == Engine::Sqlite { 1 } else { lanes.max(1) };
        let senders = (0..lanes)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Run>(max_batch * 8);
                tokio::spawn(writer(db.clone(), rx, max_batch.max(1)));
                tx
            })
            .collect();
        Self { lanes: senders }
    }

    /// Runs `job` in the lane of `key`, inside a group transaction, and answers once the group
    /// has committed. The job's own error is answered as it is (its savepoint rolled back).
    pub async fn run<T, E, F>(&self, key: i64, job: F) -> Result<Result<T, E>, GroupError>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, Result<T, E>> + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<Result<T, E>, GroupError>>();
        let run: Run = Box::new(move |tx: &mut Tx| {
            Box::pin(async move {
                let outcome = job(tx).await;
                let ok = outcome.is_ok();
                let answer = Box::new(move |committed: Result<(), String>| {
                    let _ = done_tx.send(match committed {
                        Ok(()) => Ok(outcome),
                        // A job that failed on its own changed nothing either way: its error stands.
                        Err(_) if outcome.is_err() => Ok(outcome),
                        Err(e) => Err(GroupError::Commit(e)),
                    });
                }) as Box<dyn FnOnce(Result<(), String>) + Send>;
                Finished { ok, answer }
            }) as BoxFuture<'_, Finished>
        });
        let lane = &self.lanes[key.unsigned_abs() as usize % self.lanes.len()];
        lane.send(run).await.map_err(|_| GroupError::NotRun)?;
        done_rx.await.map_err(|_| GroupError::NotRun)?
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Run>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let answers = run_batch(&db, batch.drain(..)).await;
        let (committed, answers) = answers;
        for answer in answers {
            answer(committed.clone());
        }
    }
}

/// Runs one batch; answers the commit's outcome and the callers' answers.
async fn run_batch(
    db: &Db,
    jobs: impl Iterator<Item = Run>,
) -> (Result<(), String>, Vec<Box<dyn FnOnce(Result<(), String>) + Send>>) {
    let mut answers = Vec::new();
    let mut tx = match db.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            // Nothing ran: answer every job with the failure, without running it.
            for job in jobs {
                drop(job);
            }
            return (Err(e.to_string()), answers);
        }
    };
    let mut broken: Option<String> = None;
    for job in jobs {
        if broken.is_some() {
            // The transaction is unusable: the job is dropped unrun and its caller told so.
            continue;
        }
        if let Err(e) = sqlx::query("SAVEPOINT job").execute(&mut *tx).await {
            broken = Some(DbError::from(e).to_string());
            continue;
        }
        let finished = job(&mut tx).await;
        let end = if finished.ok { "RELEASE SAVEPOINT job" } else { "ROLLBACK TO SAVEPOINT job" };
        let mut ended = sqlx::query(end).execute(&mut *tx).await.map(|_| ());
        if ended.is_ok() && !finished.ok {
            ended = sqlx::query("RELEASE SAVEPOINT job").execute(&mut *tx).await.map(|_| ());
        }
        answers.push(finished.answer);
        if let Err(e) = ended {
            broken = Some(DbError::from(e).to_string());
        }
    }
    if let Some(e) = broken {
        let _ = tx.rollback().await;
        return (Err(e), answers);
    }
    match tx.commit().await {
        Ok(()) => (Ok(()), answers),
        Err(e) => (Err(DbError::from(e).to_string()), answers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbOptions;

    #[tokio::test]
    async fn a_failing_job_is_rolled_back_alone_and_the_rest_commit_together() {
        let path = std::env::temp_dir().join(format!("linli-group-{}.db", std::process::id()));
        let url = format!("sqlite://{}", path.display());
        let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
        sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY)").execute(db.writer()).await.unwrap();
        let group = GroupCommit::start(&db, 4, 64);
        let mut runs = tokio::task::JoinSet::new();
        for k in 0..50i64 {
            let group = group.clone();
            runs.spawn(async move {
                group
                    .run(k, move |tx| {
                        Box::pin(async move {
                            // Every tenth job inserts and then fails: its row must not survive.
                            sqlx::query("INSERT INTO t (k) VALUES ($1)")
                                .bind(k)
                                .execute(&mut **tx)
                                .await
                                .map_err(|e| e.to_string())?;
                            if k % 10 == 0 {
                                return Err("refused".to_owned());
                            }
                            Ok(k)
                        })
                    })
                    .await
                    .unwrap()
            });
        }
        let outcomes = runs.join_all().await;
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 45);
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t").fetch_one(db.reader()).await.unwrap();
        assert_eq!(n, 45);
        let (tens,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM t WHERE k % 10 = 0").fetch_one(db.reader()).await.unwrap();
        assert_eq!(tens, 0);
        db.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
