//! The world a scenario runs in, made through linli's own API before any clock starts: the
//! property company the official account belongs to, residents who follow it (pushes from
//! wechat-mock) and are logged in to the mini-program (real sessions from `wx.login` codes), and
//! the campaigns and coupons they go after.
//!
//! wechat-mock runs either inside the load generator ([`MockLink::InProcess`]) or as a process of
//! its own reached only through its control API ([`MockLink::Process`]), which is what a crash
//! drill needs: WeChat's memory of what it paid must outlive every linli that is killed.

use std::time::Instant;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::{json, Value};
use wechat_mock::{MockUser, OaPusher, PushMode, PusherConfig, RunningMock};

/// How many setup requests are in flight at once.
const SETUP_CONCURRENCY: usize = 64;

/// Where the residents' WeChat is.
pub enum MockLink {
    /// wechat-mock served from this process.
    InProcess(RunningMock),
    /// wechat-mock in a process of its own, at this base URL (`http://127.0.0.1:PORT`).
    Process { base_url: String },
}

/// One entry of WeChat Pay's ledger (`GET /__mock/pay`), as the checks need it.
#[derive(Clone, Debug, Deserialize)]
pub struct PaidBill {
    /// `red_packet`, `enterprise_payment` or `transfer_bill`.
    pub channel: String,
    /// The merchant's number (`mch_billno`, `partner_trade_no`, `out_bill_no`).
    pub bill_no: String,
    pub openid: String,
    pub amount_fen: i64,
    /// WeChat's spelling: `SENT`, `RECEIVED`, `SUCCESS`, `WAIT_USER_CONFIRM`, `FAIL`, …
    pub status: String,
}

impl PaidBill {
    /// The money is with the user or on its way to them (WeChat paid it).
    pub fn money_out(&self) -> bool {
        matches!(self.status.as_str(), "SENT" | "RECEIVED" | "SUCCESS")
    }
}

#[derive(Deserialize)]
struct PayLedger {
    payments: Vec<PaidBill>,
}

impl MockLink {
    pub fn base_url(&self) -> &str {
        match self {
            MockLink::InProcess(mock) => &mock.base_url,
            MockLink::Process { base_url } => base_url,
        }
    }

    /// A new WeChat user and a `wx.login` code of theirs. A user of a mock in another process is
    /// made already following the official account, since no pusher can update that mock's
    /// state; the follow push still tells linli.
    async fn new_user(&self, http: &reqwest::Client) -> anyhow::Result<(MockUser, String)> {
        match self {
            MockLink::InProcess(mock) => {
                let user = mock.add_user();
                let code = mock.login_code(&user);
                Ok((user, code))
            }
            MockLink::Process { base_url } => {
                let user: MockUser =
                    control(http.post(format!("{base_url}/__mock/users")).json(&json!({"subscribed": true}))).await?;
                let code: Value =
                    control(http.post(format!("{base_url}/__mock/users/{}/login-code", user.unionid))).await?;
                let code = code["code"].as_str().context("login code")?.to_owned();
                Ok((user, code))
            }
        }
    }

    /// WeChat Pay's whole ledger, oldest first.
    pub async fn payments(&self, http: &reqwest::Client) -> anyhow::Result<Vec<PaidBill>> {
        match self {
            MockLink::InProcess(mock) => Ok(mock
                .payments()
                .into_iter()
                .map(|p| PaidBill {
                    channel: serde_json::to_value(p.channel)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    bill_no: p.bill_no,
                    openid: p.openid,
                    amount_fen: p.amount_fen,
                    status: p.status.as_str().to_owned(),
                })
                .collect()),
            MockLink::Process { base_url } => {
                let ledger: PayLedger = control(http.get(format!("{base_url}/__mock/pay"))).await?;
                Ok(ledger.payments)
            }
        }
    }
}

/// Sends a control-API request and reads its JSON answer; anything but 2xx is an error.
pub async fn control<T: serde::de::DeserializeOwned>(req: reqwest::RequestBuilder) -> anyhow::Result<T> {
    let resp = req.send().await.context("calling wechat-mock's control API")?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("wechat-mock answered {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("wechat-mock's answer: {text}"))
}

pub struct World {
    pub mock: MockLink,
    pub http: reqwest::Client,
    /// The first instance, where operators' calls go.
    pub base: String,
    pub admin_key: String,
    pub company_id: i64,
}

/// A simulated resident: a WeChat user who follows the official account, and their session
/// token when logged in to the mini-program.
#[derive(Clone)]
pub struct Resident {
    pub user: MockUser,
    pub token: String,
}

fn window() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let f = &time::format_description::well_known::Rfc3339;
    let starts = (now - time::Duration::minutes(1)).format(f).unwrap_or_default();
    let ends = (now + time::Duration::hours(6)).format(f).unwrap_or_default();
    (starts, ends)
}

impl World {
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req =
            self.http.request(method.clone(), format!("{}{path}", self.base)).header("X-Api-Key", &self.admin_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The official account's property company; it must be org 2 (`LINLI_OA_COMPANY_ID=2`).
    pub async fn create_company(&mut self) -> anyhow::Result<()> {
        let org = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/orgs",
                Some(json!({"parent_id": 1, "kind": "company", "name": "阳光物业"})),
            )
            .await?;
        self.company_id = org["id"].as_i64().context("org id")?;
        if self.company_id != 2 {
            bail!("the company got id {}, not 2: the database was not fresh", self.company_id);
        }
        Ok(())
    }

    pub fn pusher(&self, mode: PushMode) -> anyhow::Result<OaPusher> {
        let mut config = PusherConfig::new(format!("{}/wechat/oa/callback", self.base));
        config.mode = mode;
        let pusher = OaPusher::new(config)?;
        Ok(match &self.mock {
            MockLink::InProcess(mock) => pusher.with_mock(mock.wechat.clone()),
            MockLink::Process { .. } => pusher,
        })
    }

    /// `n` new WeChat users who follow the official account (safe-mode pushes, the mock's state
    /// updated as WeChat's would be) and, when `login`, log in to the mini-program.
    pub async fn residents(&self, n: usize, login: bool) -> anyhow::Result<Vec<Resident>> {
        let started = Instant::now();
        let pusher = self.pusher(PushMode::Safe)?;
        let mut out = Vec::with_capacity(n);
        let mut pending = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (user, code) = self.mock.new_user(&self.http).await?;
            let (pusher, client, url) = (pusher.clone(), self.http.clone(), format!("{}/mp/v1/sessions", self.base));
            pending.spawn(async move {
                let outcome = pusher.deliver(&pusher.follow(&user.oa_openid)).await?;
                if outcome.status != 200 || !outcome.is_acknowledged() {
                    bail!("follow answered {}: {}", outcome.status, outcome.body);
                }
                let mut token = String::new();
                if login {
                    let resp = client.post(url).json(&json!({ "code": code })).send().await?;
                    let status = resp.status();
                    let s: Value = resp.json().await.unwrap_or(Value::Null);
                    token = s["access_token"].as_str().with_context(|| format!("login answered {status}: {s}"))?.into();
                }
                Ok(Resident { user, token })
            });
            if pending.len() >= SETUP_CONCURRENCY {
                out.push(pending.join_next().await.context("a setup task")???);
            }
        }
        while let Some(r) = pending.join_next().await {
            out.push(r??);
        }
        let what = if login { "followed and logged in" } else { "followed" };
        println!("  {n} residents {what} in {:.1} s", started.elapsed().as_secs_f64());
        Ok(out)
    }

    /// An active followers' red packet of the company; answers its id.
    pub async fn red_packet(&self, channel: &str, total_fen: i64, shares: i64) -> anyhow::Result<i64> {
        let (starts, ends) = window();
        let c = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/red-packets",
                Some(json!({
                    "owner_org_id": self.company_id,
                    "terms": {
                        "theme": "新春红包", "channel": channel, "amount_mode": "random", "total_fen": total_fen,
                        "shares": shares, "starts_at": starts, "ends_at": ends, "audience": "followers",
                        "wishing": "新春快乐，邻里和睦"
                    }
                })),
            )
            .await?;
        let id = c["id"].as_i64().context("red packet id")?;
        self.admin(reqwest::Method::POST, &format!("/admin/v1/red-packets/{id}/activate"), Some(json!({}))).await?;
        Ok(id)
    }

    /// An active followers' coupon template of the company; answers its id.
    pub async fn coupon_template(&self, stock: i64, per_resident_limit: i64) -> anyhow::Result<i64> {
        let t = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/coupon-templates",
                Some(json!({
                    "owner_org_id": self.company_id,
                    "terms": {
                        "category": "水果", "title": "满50减10", "kind": "cash", "amount_off": 1000,
                        "min_spend": 5000, "valid_days": 7, "claim_from": "2020-01-01T00:00:00Z",
                        "claim_until": "2099-01-01T00:00:00Z", "stock_total": stock,
                        "per_resident_limit": per_resident_limit, "audience": "followers"
                    }
                })),
            )
            .await?;
        t["id"].as_i64().context("coupon template id")
    }
}
