//! The kills: linli is killed with SIGKILL and started again on the same database and port (the
//! port is in WeChat Pay's notification URL). Each kill is logged with what was in flight: the
//! payouts not yet settled, and how many of them had not been sent at all.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::AnyPool;

use crate::checks::scalar;
use crate::server::{Launch, Server};

/// One kill and the restart after it.
pub struct Kill {
    pub round: usize,
    pub phase: &'static str,
    /// Since the round started.
    pub at: Duration,
    /// How long linli stayed dead before the restart began.
    pub down: Duration,
    /// From the restart to `/readyz` answering 200.
    pub restart: Duration,
    /// Payouts not settled (any state but succeeded or failed) at the kill.
    pub open_payouts: i64,
    /// Of those, pending (never answered by WeChat Pay, or never sent).
    pub pending_payouts: i64,
}

pub struct Outage {
    launch: Launch,
    port: u16,
    server: Option<Server>,
    pool: AnyPool,
    round: usize,
    round_started: Instant,
    pub kills: Vec<Kill>,
}

impl Outage {
    pub fn new(launch: Launch, port: u16, server: Server, pool: AnyPool) -> Outage {
        Outage { launch, port, server: Some(server), pool, round: 0, round_started: Instant::now(), kills: Vec::new() }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The drill's own pool on linli's database (not linli's).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn begin_round(&mut self, round: usize, started: Instant) {
        self.round = round;
        self.round_started = started;
    }

    /// Kills linli, waits `down`, starts it again and waits until it is ready.
    pub async fn kill_and_restart(&mut self, phase: &'static str, down: Duration) -> anyhow::Result<()> {
        let server = self.server.take().context("linli is not running")?;
        let at = self.round_started.elapsed();
        server.kill()?;
        let open_payouts =
            scalar(&self.pool, "SELECT COUNT(*) FROM payouts WHERE state NOT IN ('succeeded', 'failed')", &[]).await?;
        let pending_payouts = scalar(&self.pool, "SELECT COUNT(*) FROM payouts WHERE state = 'pending'", &[]).await?;
        tokio::time::sleep(down).await;
        let restarting = Instant::now();
        self.server = Some(self.launch.start(self.port, "linli").await?);
        self.kills.push(Kill {
            round: self.round,
            phase,
            at,
            down,
            restart: restarting.elapsed(),
            open_payouts,
            pending_payouts,
        });
        Ok(())
    }

    /// Kills and restarts at each `(delay, down)`: the delay counts from the previous restart (or
    /// from now), and nothing more happens once `done` turns true. Answers how many kills there were.
    pub async fn kill_during(
        &mut self,
        phase: &'static str,
        schedule: &[(Duration, Duration)],
        mut done: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<usize> {
        let mut kills = 0;
        for (delay, down) in schedule {
            if *done.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(*delay) => {}
                _ = done.changed() => break,
            }
            self.kill_and_restart(phase, *down).await?;
            kills += 1;
        }
        Ok(kills)
    }

    pub fn print_round_kills(&self) {
        for k in self.kills.iter().filter(|k| k.round == self.round) {
            println!(
                "  kill:        {} at {:.2} s, down {} ms, ready again {} ms later; {} payouts open at the kill, {} of them pending",
                k.phase,
                k.at.as_secs_f64(),
                k.down.as_millis(),
                k.restart.as_millis(),
                k.open_payouts,
                k.pending_payouts
            );
        }
    }

    /// Lines of linli's log (every run of it) that contain `needle`.
    pub fn log_lines_matching(&self, needle: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.launch.dir.join("linli.log")).unwrap_or_default();
        text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
    }

    /// Stops the last linli as an operator would.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        match self.server.take() {
            Some(server) => server.stop().await,
            None => Ok(()),
        }
    }
}
