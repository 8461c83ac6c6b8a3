//! `linli walkthrough`: plays an operator and a resident through the whole journey against a
//! running sandbox server (see [`crate::sandbox`]), over HTTP only, and prints each step with its
//! key figure. The operator sets up a community, a coupon, a merchant, a task and a red packet;
//! the resident follows the official account, checks in, logs in to the mini-program, binds their
//! home, claims the coupon and shops with it, accepts the task, and a neighbour who follows through
//! its QR code and binds their own home earns the resident the task's reward; then the resident
//! grabs the red packet, which is sent, opened and paid. Then the sandbox's second property
//! company, whose official account, mini-program and merchant are records of its own: its operator
//! opens a red packet, its resident follows its account, checks in, logs in to its mini-program
//! and is paid through its merchant — and neither company's resident sees the other's red packets.
//!
//! WeChat's part is played through the sandbox's wechat-mock: its control API makes the resident,
//! the neighbour and their `wx.login` codes, knows the scene of the task's QR code and opens the
//! red packet, and [`wechat_mock::OaPusher`] pushes their follows and the check-in to linli's
//! callback, signed and encrypted as WeChat does. Every run uses
//! fresh names and a new WeChat user, so it can run any number of times against one server.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use reqwest::Method;
use serde_json::{json, Value};
use wechat_mock::{OaMessage, OaPusher, PushMode, PusherConfig};

/// How long the walkthrough waits for the payout dispatcher to send and then settle a red packet.
const PAYOUT_DEADLINE: Duration = Duration::from_secs(90);
const POLL_EVERY: Duration = Duration::from_millis(250);
const ROSTER_NAME: &str = "张三";
const ROSTER_PHONE: &str = "13800138000";
/// The neighbour the resident invites: on the roster of the other room, so their binding verifies.
const NEIGHBOUR_NAME: &str = "李四";
const NEIGHBOUR_PHONE: &str = "13900139000";
/// The task's reward, points for each neighbour who binds their home.
const TASK_REWARD_POINTS: i64 = 50;

/// What the walkthrough runs against.
pub struct Options {
    /// linli's base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// A platform admin key.
    pub admin_key: String,
}

/// linli's URL when none is given: `LINLI_LISTEN` (as the server reads it), reached locally.
pub fn default_url(lookup: impl Fn(&str) -> Option<String>) -> String {
    let listen = lookup("LINLI_LISTEN")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| crate::config::DEFAULT_LISTEN.to_owned());
    match listen.parse() {
        Ok(addr) => format!("http://{}", crate::sandbox::loopback_for(addr)),
        Err(_) => format!("http://{listen}"),
    }
}

/// The sandbox's admin key from its file (where `linli serve` wrote it on a sandbox start).
pub fn read_admin_key(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let path = crate::sandbox::admin_key_path(&lookup);
    let key = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no sandbox admin key at {}: start the server first with `cargo run` and no WeChat credentials \
             (a sandbox), or pass --admin-key",
            path.display()
        )
    })?;
    Ok(key.trim().to_owned())
}

/// Runs the journey, printing each step; any failure ends it with the answer that failed.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let linli = options.url.trim_end_matches('/').to_owned();
    let http = Http { client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build()? };
    let sandbox =
        http.call(Method::GET, &format!("{linli}/sandbox"), Auth::None, Payload::None).await.with_context(|| {
            format!("asking {linli} for its sandbox: is `cargo run` running there without WeChat credentials?")
        })?;
    let mock = sandbox["mock_url"].as_str().context("GET /sandbox answered no mock_url")?.to_owned();
    let company = sandbox["oa_company_id"].as_i64().context("the sandbox has no official-account company")?;
    let second = sandbox["second_company_id"].as_i64();
    println!("linli walkthrough against {linli} (SANDBOX: the WeChat here is wechat-mock at {mock})");

    let w = Walk { http, linli, mock, root: options.admin_key, tag: run_tag(), step: 0 };
    w.journey(company, second).await?;
    println!("done: the whole journey works ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Six hex digits that keep this run's names apart from earlier runs'.
fn run_tag() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

fn now_rfc3339(offset: time::Duration) -> anyhow::Result<String> {
    Ok((time::OffsetDateTime::now_utc() + offset).format(&time::format_description::well_known::Rfc3339)?)
}

fn id_of(v: &Value) -> anyhow::Result<i64> {
    v["id"].as_i64().ok_or_else(|| anyhow!("no id in {v}"))
}

fn text_of<'a>(v: &'a Value, field: &str) -> anyhow::Result<&'a str> {
    v[field].as_str().ok_or_else(|| {
        // An answer that carries a new key's secret is not for a terminal's scrollback.
        let mut shown = v.clone();
        if let Some(secret) = shown.get_mut("secret") {
            *secret = json!("[redacted]");
        }
        anyhow!("no {field} in {shown}")
    })
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Key(&'a str),
    Bearer(&'a str),
}

enum Payload {
    None,
    Json(Value),
    Csv(String),
}

struct Http {
    client: reqwest::Client,
}

impl Http {
    /// Sends a request; answers the JSON body of a 2xx answer, or fails with the status and body.
    async fn call(&self, method: Method, url: &str, auth: Auth<'_>, payload: Payload) -> anyhow::Result<Value> {
        let mut req = self.client.request(method.clone(), url);
        req = match auth {
            Auth::None => req,
            Auth::Key(key) => req.header("X-Api-Key", key),
            Auth::Bearer(token) => req.bearer_auth(token),
        };
        req = match payload {
            Payload::None => req,
            Payload::Json(body) => req.json(&body),
            Payload::Csv(body) => req.header("content-type", "text/csv").body(body),
        };
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp.text().await.with_context(|| format!("{method} {url}: reading the answer"))?;
        if !status.is_success() {
            bail!("{method} {url} answered {status}: {text}");
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {url} answered {status} with non-JSON: {text}"))
    }
}

/// One run: the server, the mock, the platform admin key and this run's name tag.
struct Walk {
    http: Http,
    linli: String,
    mock: String,
    root: String,
    tag: String,
    step: usize,
}

/// What the operator set up for the resident.
struct Setup {
    operator: String,
    company_name: String,
    community: i64,
    community_name: String,
    coupon: i64,
    merchant_key: String,
    task: i64,
    red_packet: i64,
}

impl Walk {
    fn say(&mut self, who: &str, what: &str, detail: impl std::fmt::Display) {
        self.step += 1;
        println!("{:>2}. {who:<9} {what:<17} {detail}", self.step);
    }

    async fn linli(&self, method: Method, path: &str, auth: Auth<'_>, payload: Payload) -> anyhow::Result<Value> {
        self.http.call(method, &format!("{}{path}", self.linli), auth, payload).await
    }

    async fn mock(&self, method: Method, path: &str, payload: Payload) -> anyhow::Result<Value> {
        self.http.call(method, &format!("{}{path}", self.mock), Auth::None, payload).await
    }

    async fn journey(mut self, company: i64, second: Option<i64>) -> anyhow::Result<()> {
        let setup = self.operator(company).await?;
        let token = self.resident(company, &setup).await?;
        match second {
            Some(second) => self.second_company(second, company, &token, setup.red_packet).await,
            None => Ok(()),
        }
    }

    /// The second company, its WeChat its own (records): an operator's red packet, a resident who
    /// follows its account, checks in, logs in to its mini-program and is paid by its merchant; and
    /// each company's resident sees only its own company's red packets.
    async fn second_company(
        &mut self,
        company: i64,
        first_company: i64,
        first_token: &str,
        first_packet: i64,
    ) -> anyhow::Result<()> {
        use crate::sandbox::{SECOND_MP_APPID, SECOND_OA_AES_KEY, SECOND_OA_APPID, SECOND_OA_TOKEN};
        let root = self.root.clone();
        let org =
            self.linli(Method::GET, &format!("/admin/v1/orgs/{company}"), Auth::Key(&root), Payload::None).await?;
        let name = text_of(&org, "name")?.to_owned();
        let apps = self
            .linli(Method::GET, &format!("/admin/v1/wechat-apps?org_id={company}"), Auth::Key(&root), Payload::None)
            .await?;
        let merchants = self
            .linli(Method::GET, &format!("/admin/v1/pay-merchants?org_id={company}"), Auth::Key(&root), Payload::None)
            .await?;
        let appids: Vec<&str> = apps["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["appid"].as_str()).collect())
            .unwrap_or_default();
        let mch_id = merchants["items"][0]["mch_id"].as_str().context("the second company has no merchant")?.to_owned();
        self.say(
            "operator",
            "own WeChat",
            format_args!(
                "{name} (org {company}) brings its own: apps {} and merchant {mch_id}, secrets shown only as set",
                appids.join(", ")
            ),
        );
        let terms = json!({
            "theme": "二号红包", "channel": "cash_red_packet", "amount_mode": "fixed", "total_fen": 300, "shares": 3,
            "starts_at": now_rfc3339(-time::Duration::minutes(1))?, "ends_at": now_rfc3339(time::Duration::hours(2))?,
            "audience": "followers", "wishing": "邻里和睦"
        });
        let rp = self
            .linli(
                Method::POST,
                "/admin/v1/red-packets",
                Auth::Key(&root),
                Payload::Json(json!({"owner_org_id": company, "terms": terms})),
            )
            .await?;
        let packet = id_of(&rp)?;
        self.linli(Method::POST, &format!("/admin/v1/red-packets/{packet}/activate"), Auth::Key(&root), Payload::None)
            .await?;
        self.say(
            "operator",
            "red packet",
            format_args!("二号红包 (red packet {packet}): 3 × 1.00 yuan for {name}'s followers"),
        );

        let user = self.mock(Method::POST, "/__mock/users", Payload::None).await?;
        let unionid = text_of(&user, "unionid")?.to_owned();
        let record = self.mock(Method::GET, &format!("/__mock/users/{unionid}"), Payload::None).await?;
        let openid = record["openids"][SECOND_OA_APPID].as_str().context("no openid in the second account")?.to_owned();
        let pusher = OaPusher::new(PusherConfig {
            mode: PushMode::Safe,
            token: SECOND_OA_TOKEN.to_owned(),
            encoding_aes_key: SECOND_OA_AES_KEY.to_owned(),
            appid: SECOND_OA_APPID.to_owned(),
            ..PusherConfig::new(format!("{}/wechat/oa/{SECOND_OA_APPID}/callback", self.linli))
        })
        .map_err(|e| anyhow!("setting up the WeChat pusher: {e}"))?;
        // The resident taps 关注 in WeChat: WeChat knows it, then pushes the follow.
        self.mock(Method::POST, &format!("/__mock/users/{unionid}/follow?appid={SECOND_OA_APPID}"), Payload::None)
            .await?;
        let reply = push(&pusher, &pusher.follow(&openid)).await.context("following the second account")?;
        self.say("resident", "follow", format_args!("{SECOND_OA_APPID} of {name} replies: {reply}"));
        let reply = push(&pusher, &pusher.text(&openid, "签到")).await.context("checking in with 签到")?;
        self.say("resident", "check in", format_args!("{name} replies: {reply}"));
        let code = self
            .mock(Method::POST, &format!("/__mock/users/{unionid}/login-code?appid={SECOND_MP_APPID}"), Payload::None)
            .await?;
        let login = json!({"code": text_of(&code, "code")?, "appid": SECOND_MP_APPID});
        let session = self.linli(Method::POST, "/mp/v1/sessions", Auth::None, Payload::Json(login)).await?;
        let token = text_of(&session, "access_token")?.to_owned();
        let balance = self.points(&token, company).await?;
        self.say("resident", "log in", format_args!("{SECOND_MP_APPID}: points balance {balance} with {name}"));

        // Each sees its own company's red packets, never the other's.
        let mine = self.open_red_packets(&token, company).await?;
        let theirs = self.open_red_packets(&token, first_company).await?;
        let first_sees = self.open_red_packets(first_token, company).await?;
        if !mine.contains(&packet) || theirs.contains(&first_packet) || first_sees.contains(&packet) {
            bail!(
                "each resident should see only its own company's red packets: second sees {mine:?} of its own and \
                 {theirs:?} of the first; the first sees {first_sees:?} of the second"
            );
        }
        self.say(
            "resident",
            "red packets",
            format_args!("sees red packet {packet} of {name}, none of the first company's; the first company's resident sees none of {name}'s"),
        );

        let g = self
            .linli(Method::POST, &format!("/mp/v1/red-packets/{packet}/grabs"), Auth::Bearer(&token), Payload::None)
            .await?;
        let payout = g["payout_id"].as_i64().with_context(|| format!("the grab has no payout: {g}"))?;
        let p = self.payout_reaching(&token, payout, "submitted").await?;
        let ledger = self.mock(Method::GET, &format!("/__mock/pay?mch_id={mch_id}"), Payload::None).await?;
        let paid_here =
            ledger["payments"].as_array().is_some_and(|ps| ps.iter().any(|x| x["openid"] == openid.as_str()));
        if !paid_here {
            bail!("the red packet should have been sent by merchant {mch_id}: {ledger}");
        }
        self.say(
            "linli",
            "payout sent",
            format_args!(
                "payout {payout}: {}, by {name}'s own merchant {mch_id}",
                p["state"].as_str().unwrap_or_default()
            ),
        );
        Ok(())
    }

    /// The operator's part: a key of the company, then everything the resident will meet.
    async fn operator(&mut self, company: i64) -> anyhow::Result<Setup> {
        let root = self.root.clone();
        let me = self.linli(Method::GET, "/admin/v1/me", Auth::Key(&root), Payload::None).await.context(
            "the admin key does not work against this server: pass the sandbox's own (--admin-key, or its file)",
        )?;
        if me["org"]["kind"] != "platform" || me["role"] != "admin" {
            bail!("the admin key must be a platform admin's, it is {}", me);
        }
        let org =
            self.linli(Method::GET, &format!("/admin/v1/orgs/{company}"), Auth::Key(&root), Payload::None).await?;
        let company_name = text_of(&org, "name")?.to_owned();
        let key = self
            .linli(
                Method::POST,
                "/admin/v1/api-keys",
                Auth::Key(&root),
                Payload::Json(json!({"org_id": company, "role": "admin", "name": format!("walkthrough {}", self.tag)})),
            )
            .await?;
        let operator = text_of(&key, "secret")?.to_owned();
        self.say(
            "operator",
            "operator key",
            format_args!("admin key {} of {company_name} (org {company})", text_of(&key["key"], "prefix")?),
        );
        let op = Auth::Key(&operator);

        let community_name = format!("阳光花园 {}", self.tag);
        let c = self
            .linli(
                Method::POST,
                "/admin/v1/orgs",
                op,
                Payload::Json(json!({"parent_id": company, "kind": "community", "name": community_name})),
            )
            .await?;
        let community = id_of(&c)?;
        let rooms = "building,unit,number\n1,1,101\n1,1,102\n".to_owned();
        self.linli(Method::POST, &format!("/admin/v1/communities/{community}/rooms/import"), op, Payload::Csv(rooms))
            .await?;
        let roster = format!(
            "name,phone,building,unit,number,role\n{ROSTER_NAME},{ROSTER_PHONE},1,1,101,owner\n\
             {NEIGHBOUR_NAME},{NEIGHBOUR_PHONE},1,1,102,owner\n"
        );
        self.linli(Method::POST, &format!("/admin/v1/communities/{community}/roster/import"), op, Payload::Csv(roster))
            .await?;
        self.say(
            "operator",
            "community",
            format_args!(
                "{community_name} (org {community}): rooms 1-1-101, 1-1-102; roster: {ROSTER_NAME} owns 1-1-101, \
                 {NEIGHBOUR_NAME} owns 1-1-102"
            ),
        );

        let terms = json!({
            "category": "水果", "title": "满50减10", "kind": "cash", "amount_off": 1000, "min_spend": 5000,
            "valid_days": 7, "claim_from": now_rfc3339(-time::Duration::minutes(1))?,
            "claim_until": now_rfc3339(time::Duration::days(7))?, "stock_total": 100, "per_resident_limit": 1,
            "audience": "followers"
        });
        let t = self
            .linli(
                Method::POST,
                "/admin/v1/coupon-templates",
                op,
                Payload::Json(json!({"owner_org_id": company, "terms": terms})),
            )
            .await?;
        let coupon = id_of(&t)?;
        self.say(
            "operator",
            "coupon",
            format_args!("满50减10 (template {coupon}): 10.00 yuan off from 50.00 yuan, 100 in stock, for followers"),
        );

        let merchant_name = format!("鲜果屋 {}", self.tag);
        let m = self
            .linli(
                Method::POST,
                "/admin/v1/orgs",
                op,
                Payload::Json(json!({"parent_id": community, "kind": "merchant", "name": merchant_name})),
            )
            .await?;
        let merchant = id_of(&m)?;
        let mk = self
            .linli(
                Method::POST,
                "/admin/v1/api-keys",
                op,
                Payload::Json(json!({"org_id": merchant, "role": "operator", "name": "till"})),
            )
            .await?;
        let merchant_key = text_of(&mk, "secret")?.to_owned();
        self.say(
            "operator",
            "merchant",
            format_args!("{merchant_name} (org {merchant}) with merchant key {}", text_of(&mk["key"], "prefix")?),
        );

        let (starts, ends) = (now_rfc3339(-time::Duration::minutes(1))?, now_rfc3339(time::Duration::days(7))?);
        let terms = json!({
            "theme": "邀请邻居绑定房产", "mode": "open", "category": "invite_bind", "target": 1,
            "reward_kind": "points", "reward_amount": TASK_REWARD_POINTS, "starts_at": starts, "ends_at": ends
        });
        let task = self
            .linli(Method::POST, "/admin/v1/tasks", op, Payload::Json(json!({"owner_org_id": company, "terms": terms})))
            .await?;
        let task = id_of(&task)?;
        self.say(
            "operator",
            "task",
            format_args!(
                "邀请邻居绑定房产 (task {task}): {TASK_REWARD_POINTS} points for each neighbour invited who binds their home"
            ),
        );

        let (total, shares) = (600, 3);
        let terms = json!({
            "theme": "新春红包", "channel": "cash_red_packet", "amount_mode": "random", "total_fen": total,
            "shares": shares, "starts_at": starts, "ends_at": now_rfc3339(time::Duration::hours(2))?,
            "audience": "followers", "wishing": "新春快乐，邻里和睦"
        });
        let rp = self
            .linli(
                Method::POST,
                "/admin/v1/red-packets",
                op,
                Payload::Json(json!({"owner_org_id": company, "terms": terms})),
            )
            .await?;
        let red_packet = id_of(&rp)?;
        let active = self
            .linli(Method::POST, &format!("/admin/v1/red-packets/{red_packet}/activate"), op, Payload::Json(json!({})))
            .await?;
        self.say(
            "operator",
            "red packet",
            format_args!(
                "新春红包 (red packet {red_packet}): {} yuan in {shares} random WeChat cash red packets for followers, {}",
                yuan(total),
                text_of(&active, "state")?
            ),
        );
        Ok(Setup { operator, company_name, community, community_name, coupon, merchant_key, task, red_packet })
    }

    /// The resident's part, with WeChat played by the mock and the merchant's till in the middle.
    async fn resident(&mut self, company: i64, s: &Setup) -> anyhow::Result<String> {
        let user = self.mock(Method::POST, "/__mock/users", Payload::Json(json!({"subscribed": true}))).await?;
        let (unionid, openid) = (text_of(&user, "unionid")?.to_owned(), text_of(&user, "oa_openid")?.to_owned());
        self.say("resident", "WeChat user", format_args!("unionid {unionid}, official-account openid {openid}"));

        let pusher = OaPusher::new(PusherConfig {
            mode: PushMode::Safe,
            ..PusherConfig::new(format!("{}/wechat/oa/callback", self.linli))
        })
        .map_err(|e| anyhow!("setting up the WeChat pusher: {e}"))?;
        let reply = push(&pusher, &pusher.follow(&openid)).await.context("following the official account")?;
        self.say("resident", "follow", format_args!("{} replies: {reply}", s.company_name));
        let reply = push(&pusher, &pusher.text(&openid, "签到")).await.context("checking in with 签到")?;
        self.say("resident", "check in", format_args!("sends 签到, {} replies: {reply}", s.company_name));

        let code = self.mock(Method::POST, &format!("/__mock/users/{unionid}/login-code"), Payload::None).await?;
        let session = self
            .linli(Method::POST, "/mp/v1/sessions", Auth::None, Payload::Json(json!({"code": text_of(&code, "code")?})))
            .await?;
        let token = text_of(&session, "access_token")?.to_owned();
        let me = Auth::Bearer(&token);
        let profile = self.linli(Method::GET, "/mp/v1/me", me, Payload::None).await?;
        let resident = profile["resident_id"].as_i64().unwrap_or_default();
        let balance = self.points(&token, company).await?;
        self.say(
            "resident",
            "log in",
            format_args!(
                "mini-program session of resident {resident} (the same person who follows); points balance {balance}"
            ),
        );

        let bind = json!({
            "community_id": s.community, "building": "1", "unit": "1", "number": "101", "role": "owner",
            "name": ROSTER_NAME, "phone": ROSTER_PHONE
        });
        let b = self.linli(Method::POST, "/mp/v1/me/bindings", me, Payload::Json(bind)).await?;
        let state = text_of(&b, "state")?;
        if state != "verified" {
            bail!("the binding should be verified by the roster match, it is {state}: {b}");
        }
        self.say(
            "resident",
            "bind home",
            format_args!("1-1-101 of {} as owner {ROSTER_NAME}: {state} (roster match)", s.community_name),
        );

        let c = self.linli(Method::POST, &format!("/mp/v1/coupons/{}/claims", s.coupon), me, Payload::None).await?;
        let coupon_code = text_of(&c, "code")?.to_owned();
        self.say(
            "resident",
            "claim coupon",
            format_args!("coupon {coupon_code} (满50减10), {}", text_of(&c, "state")?),
        );

        let mc = self.linli(Method::POST, "/mp/v1/me/member-code", me, Payload::None).await?;
        let member_code = text_of(&mc, "code")?.to_owned();
        self.say("resident", "member code", format_args!("{member_code}, shown at the till"));

        let order_no = format!("W-{}", self.tag);
        let order = json!({
            "order_no": order_no, "member_code": member_code, "amount": 8000,
            "items": [{"name": "苹果", "category": "fruit", "amount": 5000}, {"name": "牛奶", "category": "dairy", "amount": 3000}],
            "ordered_at": now_rfc3339(time::Duration::ZERO)?, "coupon_code": coupon_code
        });
        let o =
            self.linli(Method::POST, "/merchant/v1/orders", Auth::Key(&s.merchant_key), Payload::Json(order)).await?;
        let balance = self.points(&token, company).await?;
        self.say(
            "merchant",
            "order",
            format_args!(
                "{order_no}: 80.00 yuan, coupon -{}, paid {}, +{} points (balance {balance})",
                yuan(o["discount"].as_i64().unwrap_or_default()),
                yuan(o["paid"].as_i64().unwrap_or_default()),
                o["points"].as_i64().unwrap_or_default()
            ),
        );

        self.linli(Method::POST, &format!("/mp/v1/tasks/{}/accept", s.task), me, Payload::None).await?;
        let inv = self.linli(Method::GET, &format!("/mp/v1/me/tasks/{}/invitation", s.task), me, Payload::None).await?;
        let qr = inv["qr_code"]["url"].as_str().unwrap_or("(no QR code)");
        self.say(
            "resident",
            "accept task",
            format_args!("task {}: invitation scene {}, QR code {qr}", s.task, text_of(&inv, "scene")?),
        );
        let ticket = inv["qr_code"]["ticket"]
            .as_str()
            .with_context(|| format!("the invitation has no QR code to scan: {inv}"))?
            .to_owned();
        self.neighbour_accepts(&pusher, s, &ticket).await?;
        let balance_before = balance;
        let balance = self.points(&token, company).await?;
        let mine = self.linli(Method::GET, "/mp/v1/me/tasks", me, Payload::None).await?;
        let held = mine["items"]
            .as_array()
            .and_then(|items| items.iter().find(|t| t["task"]["id"] == s.task))
            .with_context(|| format!("task {} is not among mine: {mine}", s.task))?;
        let (counted, rounds) = (held["counted"].as_i64().unwrap_or(0), held["rounds"].as_i64().unwrap_or(0));
        if rounds < 1 || balance - balance_before != TASK_REWARD_POINTS {
            bail!(
                "the neighbour's verified home should have earned the resident {TASK_REWARD_POINTS} points; \
                 points {balance_before} -> {balance}, task: {held}"
            );
        }
        self.say(
            "resident",
            "task reward",
            format_args!(
                "task {}: {counted} neighbour counted, round {rounds} done: +{TASK_REWARD_POINTS} points (balance {balance})",
                s.task
            ),
        );

        let g =
            self.linli(Method::POST, &format!("/mp/v1/red-packets/{}/grabs", s.red_packet), me, Payload::None).await?;
        let amount = g["amount_fen"].as_i64().context("the grab has no amount")?;
        let payout = g["payout_id"].as_i64().with_context(|| format!("the grab has no payout: {g}"))?;
        self.say("resident", "grab red packet", format_args!("{} yuan (payout {payout})", yuan(amount)));

        let p = self.payout_reaching(&token, payout, "submitted").await?;
        self.say(
            "linli",
            "payout sent",
            format_args!("payout {payout}: {} (WeChat sent the red packet)", p["state"].as_str().unwrap_or_default()),
        );

        let detail = self
            .linli(Method::GET, &format!("/admin/v1/payouts/{payout}"), Auth::Key(&s.operator), Payload::None)
            .await?;
        let billno = text_of(&detail["payout"], "out_no")?.to_owned();
        let received =
            self.mock(Method::POST, &format!("/__mock/pay/red-packets/{billno}/receive"), Payload::None).await?;
        self.say(
            "resident",
            "open red packet",
            format_args!("in WeChat: red packet {billno} is {}", received["status"].as_str().unwrap_or("received")),
        );

        let p = self.payout_reaching(&token, payout, "succeeded").await?;
        self.say(
            "linli",
            "payout paid",
            format_args!(
                "payout {payout}: {}, {} yuan in the resident's WeChat",
                p["state"].as_str().unwrap_or_default(),
                yuan(amount)
            ),
        );
        Ok(token)
    }

    /// A neighbour new to the official account scans the resident's invitation QR code in WeChat
    /// and follows, then logs in to the mini-program and binds their own home: the invitation the
    /// task counts.
    async fn neighbour_accepts(&mut self, pusher: &OaPusher, s: &Setup, ticket: &str) -> anyhow::Result<()> {
        // WeChat knows which scene a ticket was made for; so does the mock, which made it.
        let codes = self.mock(Method::GET, "/__mock/qrcodes", Payload::None).await?;
        let scene = codes
            .as_array()
            .and_then(|codes| codes.iter().find(|c| c["ticket"] == ticket))
            .and_then(|c| c["scene"].as_str())
            .with_context(|| format!("the fake WeChat made no QR code with ticket {ticket}"))?
            .to_owned();
        let user = self
            .mock(Method::POST, "/__mock/users", Payload::Json(json!({"subscribed": true, "qr_scene_str": scene})))
            .await?;
        let (unionid, openid) = (text_of(&user, "unionid")?.to_owned(), text_of(&user, "oa_openid")?.to_owned());
        let follow = pusher.build(OaMessage::FollowScene {
            openid: openid.clone(),
            scene: scene.clone(),
            ticket: ticket.to_owned(),
        });
        let reply = push(pusher, &follow).await.context("the neighbour following through the QR code")?;
        self.say(
            "neighbour",
            "scan and follow",
            format_args!("{NEIGHBOUR_NAME} scans the QR code (scene {scene}), {} replies: {reply}", s.company_name),
        );

        let code = self.mock(Method::POST, &format!("/__mock/users/{unionid}/login-code"), Payload::None).await?;
        let session = self
            .linli(Method::POST, "/mp/v1/sessions", Auth::None, Payload::Json(json!({"code": text_of(&code, "code")?})))
            .await?;
        let token = text_of(&session, "access_token")?.to_owned();
        let bind = json!({
            "community_id": s.community, "building": "1", "unit": "1", "number": "102", "role": "owner",
            "name": NEIGHBOUR_NAME, "phone": NEIGHBOUR_PHONE
        });
        let b = self.linli(Method::POST, "/mp/v1/me/bindings", Auth::Bearer(&token), Payload::Json(bind)).await?;
        let state = text_of(&b, "state")?;
        if state != "verified" {
            bail!("the neighbour's binding should be verified by the roster match, it is {state}: {b}");
        }
        self.say(
            "neighbour",
            "bind home",
            format_args!("1-1-102 of {} as owner {NEIGHBOUR_NAME}: {state} (roster match)", s.community_name),
        );
        Ok(())
    }

    /// The red packets of a company a resident may grab now.
    async fn open_red_packets(&self, token: &str, company: i64) -> anyhow::Result<Vec<i64>> {
        let path = format!("/mp/v1/red-packets?company_id={company}");
        let v = self.linli(Method::GET, &path, Auth::Bearer(token), Payload::None).await?;
        Ok(v["items"].as_array().map(|a| a.iter().filter_map(|x| x["id"].as_i64()).collect()).unwrap_or_default())
    }

    /// The resident's points balance in the company's programme.
    async fn points(&self, token: &str, company: i64) -> anyhow::Result<i64> {
        let me = self.linli(Method::GET, "/mp/v1/me", Auth::Bearer(token), Payload::None).await?;
        let points = me["points"].as_array().cloned().unwrap_or_default();
        Ok(points.iter().find(|p| p["company_id"] == company).and_then(|p| p["balance"].as_i64()).unwrap_or(0))
    }

    /// Waits until the payout is in `state` (and fails at once if it failed for good).
    async fn payout_reaching(&self, token: &str, payout: i64, state: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + PAYOUT_DEADLINE;
        loop {
            let p = self
                .linli(Method::GET, &format!("/mp/v1/me/payouts/{payout}"), Auth::Bearer(token), Payload::None)
                .await?;
            if p["state"] == state {
                return Ok(p);
            }
            if p["state"] == "failed" {
                bail!("payout {payout} failed: {p}");
            }
            if Instant::now() > deadline {
                bail!(
                    "payout {payout} is still {} after {} s, not {state}; is the server's payout dispatcher \
                     running (LINLI_RED_PACKET_RECEIPT_CHECK_SECS, LINLI_PAYOUT_POLL_SECS)? {p}",
                    p["state"],
                    PAYOUT_DEADLINE.as_secs()
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// Delivers one push as WeChat does; answers the account's text reply.
async fn push(pusher: &OaPusher, push: &wechat_mock::Push) -> anyhow::Result<String> {
    let outcome =
        pusher.deliver(push).await.map_err(|e| anyhow!("delivering to {}: {e}", pusher.config().callback_url))?;
    if outcome.status != 200 || !outcome.is_acknowledged() {
        bail!("the official-account callback answered {}: {}", outcome.status, outcome.body);
    }
    Ok(outcome.text().map_or_else(|| "(no reply)".to_owned(), |t| t.content.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_follows_linli_listen() {
        assert_eq!(default_url(|_| None), "http://127.0.0.1:8080");
        assert_eq!(default_url(|_| Some("0.0.0.0:9000".into())), "http://127.0.0.1:9000");
    }

    #[test]
    fn fen_read_as_yuan() {
        assert_eq!(yuan(1000), "10.00");
        assert_eq!(yuan(205), "2.05");
    }
}
