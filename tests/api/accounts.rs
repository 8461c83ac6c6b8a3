//! WeChat apps and Pay merchants as records (issue 16): registered per company with their
//! credentials checked and their secrets sealed, pushes routed by appid into the owner's
//! programme, logins by the mini-program's appid, payouts through the owner's merchant, and none
//! of it reachable from another company.

use serde_json::{json, Value};
use wechat_mock::pay::config as merchant;
use wechat_mock::{MockApp, PushMode};

use crate::helpers::*;

/// One company's own WeChat apps, as the mock knows them.
struct Apps {
    oa: &'static str,
    oa_secret: &'static str,
    token: &'static str,
    aes_key: &'static str,
    mp: &'static str,
    mp_secret: &'static str,
}

const ACME: Apps = Apps {
    oa: "wx_acme_oa",
    oa_secret: "acme_oa_secret_0123456789abcdef",
    token: "AcmeCallbackToken2026",
    aes_key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    mp: "wx_acme_mp",
    mp_secret: "acme_mp_secret_0123456789abcdef",
};

const BRIGHT: Apps = Apps {
    oa: "wx_bright_oa",
    oa_secret: "bright_oa_secret_0123456789abcd",
    token: "BrightCallbackToken2026",
    aes_key: "BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSY",
    mp: "wx_bright_mp",
    mp_secret: "bright_mp_secret_0123456789abcd",
};

/// A deployment whose mock knows both companies' apps besides the environment's.
async fn spawn(configure: impl FnOnce(&mut linli::config::Settings) + Send + 'static) -> OaApp {
    let mut config = wechat_mock::MockConfig::default();
    for a in [&ACME, &BRIGHT] {
        config.apps.push(MockApp::official_account(a.oa, a.oa_secret));
        config.apps.push(MockApp::mini_program(a.mp, a.mp_secret));
    }
    spawn_oa_app_on(config, 300, configure).await
}

struct Company {
    id: i64,
    admin: String,
}

async fn company(app: &OaApp, name: &str) -> Company {
    let id = app.create_org(&app.root_key, 1, "company", name).await;
    let admin = app.create_key(&app.root_key, id, "admin").await;
    Company { id, admin }
}

fn oa_body(org_id: i64, a: &Apps, secret: &str) -> Value {
    json!({
        "org_id": org_id, "kind": "oa", "appid": a.oa, "name": "服务号", "secret": secret,
        "token": a.token, "aes_key": a.aes_key, "message_mode": "safe"
    })
}

async fn register_apps(app: &OaApp, c: &Company, a: &Apps) -> (i64, i64) {
    let oa = app.post(&c.admin, "/admin/v1/wechat-apps", oa_body(c.id, a, a.oa_secret)).await.expect(201);
    let mp = app
        .post(
            &c.admin,
            "/admin/v1/wechat-apps",
            json!({"org_id": c.id, "kind": "mp", "appid": a.mp, "name": "小程序", "secret": a.mp_secret}),
        )
        .await
        .expect(201);
    (oa["id"].as_i64().unwrap(), mp["id"].as_i64().unwrap())
}

fn pusher_of(app: &OaApp, a: &Apps) -> wechat_mock::OaPusher {
    let mut config = wechat_mock::PusherConfig::new(app.url(&format!("/wechat/oa/{}/callback", a.oa)));
    config.token = a.token.to_owned();
    config.encoding_aes_key = a.aes_key.to_owned();
    config.appid = a.oa.to_owned();
    config.mode = PushMode::Safe;
    wechat_mock::OaPusher::new(config).expect("pusher").with_mock(app.mock.wechat.clone())
}

/// The openid `user` has in `appid`.
fn openid_in(app: &OaApp, user: &wechat_mock::MockUser, appid: &str) -> String {
    app.mock.user(&user.unionid).expect("a mock user").openids.get(appid).cloned().expect("an openid in the app")
}

/// A fixed-amount followers' red packet of `owner`, made and activated with `key`; answers its id.
async fn red_packet(app: &OaApp, key: &str, owner: i64, channel: &str, total_fen: i64, shares: i64) -> i64 {
    let now = time::OffsetDateTime::now_utc();
    let f = &time::format_description::well_known::Rfc3339;
    let terms = json!({
        "theme": "红包", "channel": channel, "amount_mode": "fixed", "total_fen": total_fen, "shares": shares,
        "starts_at": (now - time::Duration::minutes(1)).format(f).unwrap(),
        "ends_at": (now + time::Duration::hours(2)).format(f).unwrap(), "audience": "followers"
    });
    let c = app.post(key, "/admin/v1/red-packets", json!({"owner_org_id": owner, "terms": terms})).await.expect(201);
    let id = c["id"].as_i64().unwrap();
    app.post(key, &format!("/admin/v1/red-packets/{id}/activate"), json!({})).await.expect(200);
    id
}

/// Logs `user` in through the mini-program `appid`; answers the session token.
async fn mp_login(app: &OaApp, user: &wechat_mock::MockUser, appid: &str) -> String {
    let code = app.mock.login_code_for_openid(appid, &openid_in(app, user, appid)).unwrap();
    let s = app.post("", "/mp/v1/sessions", json!({"code": code, "appid": appid})).await.expect(201);
    s["access_token"].as_str().unwrap().to_owned()
}

/// The company whose programme a resident's points are in, with the balance there.
async fn points_by_company(app: &OaApp, openid: &str) -> Vec<(i64, i64)> {
    sqlx::query_as(
        "SELECT p.company_id, CAST(SUM(l.amount) AS BIGINT) FROM points_ledger l \
         JOIN points_programmes p ON p.id = l.programme_id \
         JOIN resident_identities i ON i.resident_id = l.resident_id \
         WHERE i.openid = $1 GROUP BY p.company_id ORDER BY p.company_id",
    )
    .bind(openid)
    .fetch_all(app.db.reader())
    .await
    .unwrap()
}

/// No secret appears in clear anywhere in the database: not in the SQLite file (nor its WAL),
/// not in any text the tables that could hold one store (apps, merchants, the audit log).
async fn assert_no_secret_stored(app: &OaApp, secrets: &[&str]) {
    if let Some(path) = app.sqlite_file() {
        for suffix in ["", "-wal"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let Ok(bytes) = std::fs::read(&p) else { continue };
            for s in secrets {
                let found = bytes.windows(s.len()).any(|w| w == s.as_bytes());
                assert!(!found, "{s:?} is stored in clear in {}", std::path::Path::new(&p).display());
            }
        }
    }
    for sql in [
        "SELECT CAST(appid AS TEXT) || name || secret_sealed || COALESCE(token_sealed, '') || COALESCE(aes_key_sealed, '') \
         FROM wechat_apps",
        "SELECT name || COALESCE(api_key_v2_sealed, '') || COALESCE(api_v3_key_sealed, '') || \
         COALESCE(private_key_sealed, '') || COALESCE(client_cert_sealed, '') FROM pay_merchants",
        "SELECT COALESCE(before_json, '') || COALESCE(after_json, '') FROM audit_log",
    ] {
        let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(app.db.reader()).await.unwrap();
        for (text,) in rows {
            for s in secrets {
                assert!(!text.contains(s), "{s:?} is stored in clear: {text}");
            }
        }
    }
}

#[tokio::test]
async fn each_company_registers_its_own_apps_and_its_residents_land_in_its_own_programme() {
    let app = spawn(|_| {}).await;
    let (acme, bright) = (company(&app, "Acme Property").await, company(&app, "Bright Property").await);

    // A wrong AppSecret is refused with WeChat's answer, and nothing is stored.
    let wrong = app.post(&acme.admin, "/admin/v1/wechat-apps", oa_body(acme.id, &ACME, "not_the_secret")).await;
    assert_eq!(wrong.code(), "credentials_rejected", "{}", wrong.body);
    assert!(wrong.body["message"].as_str().unwrap().contains("errcode"), "{}", wrong.body);
    wrong.expect(422);
    assert_eq!(app.count("SELECT COUNT(*) FROM wechat_apps").await, 0);

    // Registered: the answer says which secrets are set, never what they are.
    let oa = app.post(&acme.admin, "/admin/v1/wechat-apps", oa_body(acme.id, &ACME, ACME.oa_secret)).await.expect(201);
    let shown = oa.to_string();
    for secret in [ACME.oa_secret, ACME.token, ACME.aes_key] {
        assert!(!shown.contains(secret), "a secret in the answer: {shown}");
    }
    assert_eq!(oa["secret"]["set"], true);
    assert_eq!(oa["token"]["fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(oa["callback_path"], format!("/wechat/oa/{}/callback", ACME.oa));
    assert_eq!(oa["message_mode"], "safe");
    let again = app.post(&acme.admin, "/admin/v1/wechat-apps", oa_body(acme.id, &ACME, ACME.oa_secret)).await;
    assert_eq!(again.code(), "app_exists");
    again.expect(409);
    let mp = app
        .post(
            &acme.admin,
            "/admin/v1/wechat-apps",
            json!({"org_id": acme.id, "kind": "mp", "appid": ACME.mp, "name": "小程序", "secret": ACME.mp_secret}),
        )
        .await
        .expect(201);
    assert_eq!(mp["message_mode"], Value::Null);

    // Reach: another company neither sees nor registers for Acme; an operator cannot register.
    let acme_oa = oa["id"].as_i64().unwrap();
    app.get(&bright.admin, &format!("/admin/v1/wechat-apps/{acme_oa}")).await.expect(404);
    let listed = app.get(&bright.admin, "/admin/v1/wechat-apps").await.expect(200);
    assert_eq!(listed["page"]["total"], 0);
    let theirs = app.post(&bright.admin, "/admin/v1/wechat-apps", oa_body(acme.id, &BRIGHT, BRIGHT.oa_secret)).await;
    theirs.expect(404);
    let operator = app.create_key(&app.root_key, bright.id, "operator").await;
    app.post(&operator, "/admin/v1/wechat-apps", oa_body(bright.id, &BRIGHT, BRIGHT.oa_secret)).await.expect(403);
    app.put(&bright.admin, &format!("/admin/v1/wechat-apps/{acme_oa}"), json!({"name": "x"})).await.expect(404);
    app.delete(&bright.admin, &format!("/admin/v1/wechat-apps/{acme_oa}")).await.expect(404);
    register_apps(&app, &bright, &BRIGHT).await;
    let mine = app.get(&acme.admin, "/admin/v1/wechat-apps").await.expect(200);
    assert_eq!(mine["page"]["total"], 2);

    // Each company's resident follows and checks in through its own account: the points are in
    // that company's programme, nowhere else.
    let (acme_user, bright_user) = (app.mock.add_user(), app.mock.add_user());
    let (acme_pusher, bright_pusher) = (pusher_of(&app, &ACME), pusher_of(&app, &BRIGHT));
    let acme_openid = openid_in(&app, &acme_user, ACME.oa);
    let bright_openid = openid_in(&app, &bright_user, BRIGHT.oa);
    app.say(&acme_pusher, &acme_pusher.follow(&acme_openid)).await;
    let reply = app.say(&acme_pusher, &acme_pusher.text(&acme_openid, "签到")).await.unwrap();
    assert!(reply.contains("签到成功"), "{reply}");
    app.say(&bright_pusher, &bright_pusher.follow(&bright_openid)).await;
    app.say(&bright_pusher, &bright_pusher.text(&bright_openid, "签到")).await.unwrap();
    assert_eq!(points_by_company(&app, &acme_openid).await, vec![(acme.id, 15)]);
    assert_eq!(points_by_company(&app, &bright_openid).await, vec![(bright.id, 15)]);

    // A push for Acme's account signed with Bright's token, and one for an account that is not
    // here, change nothing.
    let mut forged = wechat_mock::PusherConfig::new(app.url(&format!("/wechat/oa/{}/callback", ACME.oa)));
    forged.token = BRIGHT.token.to_owned();
    forged.encoding_aes_key = ACME.aes_key.to_owned();
    forged.appid = ACME.oa.to_owned();
    let forged = wechat_mock::OaPusher::new(forged).unwrap();
    let outcome = forged.deliver(&forged.text(&acme_openid, "签到")).await.unwrap();
    assert_eq!(outcome.status, 401, "{}", outcome.body);
    let mut nowhere = wechat_mock::PusherConfig::new(app.url("/wechat/oa/wx_nobody/callback"));
    nowhere.token = ACME.token.to_owned();
    let nowhere = wechat_mock::OaPusher::new(nowhere).unwrap();
    assert_eq!(nowhere.deliver(&nowhere.follow(&acme_openid)).await.unwrap().status, 404);
    // The mini-program's appid is no official account.
    let mut mp_path = wechat_mock::PusherConfig::new(app.url(&format!("/wechat/oa/{}/callback", ACME.mp)));
    mp_path.token = ACME.token.to_owned();
    let mp_path = wechat_mock::OaPusher::new(mp_path).unwrap();
    assert_eq!(mp_path.deliver(&mp_path.follow(&acme_openid)).await.unwrap().status, 404);
    assert_eq!(points_by_company(&app, &acme_openid).await, vec![(acme.id, 15)]);

    // The resident logs into Acme's mini-program: the same person (unionid) as the follower.
    let code = app.mock.login_code_for_openid(ACME.mp, &openid_in(&app, &acme_user, ACME.mp)).unwrap();
    let s = app.post("", "/mp/v1/sessions", json!({"code": code, "appid": ACME.mp})).await.expect(201);
    let follower: (i64,) = sqlx::query_as("SELECT resident_id FROM resident_identities WHERE openid = $1")
        .bind(&acme_openid)
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    assert_eq!(s["resident_id"].as_i64(), Some(follower.0));
    // A code of one mini-program presented as another's is WeChat's to refuse; an unknown appid 404.
    let code = app.mock.login_code_for_openid(ACME.mp, &openid_in(&app, &acme_user, ACME.mp)).unwrap();
    app.post("", "/mp/v1/sessions", json!({"code": code, "appid": BRIGHT.mp})).await.expect(401);
    app.post("", "/mp/v1/sessions", json!({"code": "x", "appid": "wx_nobody"})).await.expect(404);

    // The environment's account keeps working as before, beside the records.
    let user = app.mock.add_user();
    let env = app.pusher(PushMode::Safe);
    app.say(&env, &env.follow(&user.oa_openid)).await;
    assert_eq!(points_by_company(&app, &user.oa_openid).await, vec![(app.company_id, 10)]);

    assert_no_secret_stored(
        &app,
        &[ACME.oa_secret, ACME.token, ACME.aes_key, ACME.mp_secret, BRIGHT.oa_secret, BRIGHT.token, BRIGHT.aes_key],
    )
    .await;
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn an_update_keeps_secrets_not_sent_and_checks_a_new_one() {
    let app = spawn(|_| {}).await;
    let acme = company(&app, "Acme Property").await;
    let (oa, _) = register_apps(&app, &acme, &ACME).await;
    let before = app.get(&acme.admin, &format!("/admin/v1/wechat-apps/{oa}")).await.expect(200);
    let renamed = app
        .put(&acme.admin, &format!("/admin/v1/wechat-apps/{oa}"), json!({"name": "阳光服务号", "message_mode": "safe"}))
        .await
        .expect(200);
    assert_eq!(renamed["name"], "阳光服务号");
    assert_eq!(renamed["secret"], before["secret"], "a secret not sent is kept");
    assert_eq!(renamed["aes_key"], before["aes_key"]);
    let bad =
        app.put(&acme.admin, &format!("/admin/v1/wechat-apps/{oa}"), json!({"name": "x", "secret": "wrong"})).await;
    assert_eq!(bad.code(), "credentials_rejected");
    bad.expect(422);
    let after = app.get(&acme.admin, &format!("/admin/v1/wechat-apps/{oa}")).await.expect(200);
    assert_eq!(after["name"], "阳光服务号", "a refused update changes nothing");
    // Plain mode needs no key; safe mode without one is refused with the reason.
    let no_key = json!({"org_id": acme.id, "kind": "oa", "appid": BRIGHT.oa, "name": "x", "secret": BRIGHT.oa_secret,
                        "token": BRIGHT.token, "message_mode": "safe"});
    let refused = app.post(&acme.admin, "/admin/v1/wechat-apps", no_key).await;
    assert!(refused.body["message"].as_str().unwrap().contains("aes_key"), "{}", refused.body);
    refused.expect(422);
    // A removed account's pushes are refused from then on.
    app.delete(&acme.admin, &format!("/admin/v1/wechat-apps/{oa}")).await.expect(200);
    let pusher = pusher_of(&app, &ACME);
    let user = app.mock.add_user();
    let outcome = pusher.deliver(&pusher.follow(&openid_in(&app, &user, ACME.oa))).await.unwrap();
    assert_eq!(outcome.status, 404);
    let audit = app.count("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'wechat_app.%'").await;
    assert_eq!(audit, 4, "create ×2, update, delete");
}

#[tokio::test]
async fn rotation_reseals_every_secret_and_a_wrong_master_key_fails_start_up() {
    let mut app = spawn(|_| {}).await;
    let acme = company(&app, "Acme Property").await;
    register_apps(&app, &acme, &ACME).await;

    let with_key = |key: Option<&str>| {
        let mut s = app.settings.clone();
        s.listen = "127.0.0.1:0".into();
        s.sealing_keys = key.map(|k| linli::sealing::SealingKeys::parse(k).unwrap());
        s
    };
    // Another key under the same id: the wrong master key.
    let wrong = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let err = linli::app::Application::build(with_key(Some(wrong))).await.err().expect("refused");
    assert!(format!("{err:#}").contains("does not open"), "{err:#}");
    let err = linli::app::Application::build(with_key(None)).await.err().expect("refused");
    assert!(format!("{err:#}").contains("LINLI_SECRET_KEY is not set"), "{err:#}");

    let new = "t2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let both = linli::sealing::SealingKeys::parse(&format!("{new},{TEST_SECRET_KEY}")).unwrap();
    let done = linli::domain::accounts::rotation::rotate(&app.db, &both).await.unwrap();
    assert_eq!((done.secrets, done.moved), (4, 4), "secret, token and key of the OA; the MP's secret");
    let again = linli::domain::accounts::rotation::rotate(&app.db, &both).await.unwrap();
    assert_eq!((again.secrets, again.moved), (4, 0), "a second rotation moves nothing");
    assert_eq!(app.count("SELECT COUNT(*) FROM wechat_apps WHERE secret_sealed LIKE 'v1.t2.%'").await, 2);
    let err = linli::app::Application::build(with_key(Some(TEST_SECRET_KEY))).await.err().expect("refused");
    assert!(format!("{err:#}").contains("\"t2\""), "the old key alone no longer opens them: {err:#}");

    // The running service keeps taking the account's pushes (it holds the secrets it opened)…
    let pusher = pusher_of(&app, &ACME);
    let early = app.mock.add_user();
    let early_openid = openid_in(&app, &early, ACME.oa);
    app.say(&pusher, &pusher.follow(&early_openid)).await;
    assert_eq!(points_by_company(&app, &early_openid).await, vec![(acme.id, 10)]);
    // …and restarted with the new key only, it does so as before.
    app.settings.sealing_keys = Some(linli::sealing::SealingKeys::parse(new).unwrap());
    app.crash_and_restart().await;
    let pusher = pusher_of(&app, &ACME);
    let user = app.mock.add_user();
    let openid = openid_in(&app, &user, ACME.oa);
    app.say(&pusher, &pusher.follow(&openid)).await;
    assert_eq!(points_by_company(&app, &openid).await, vec![(acme.id, 10)]);
    assert_no_secret_stored(&app, &[ACME.oa_secret, ACME.token, ACME.aes_key, ACME.mp_secret]).await;
}

/// The mock's merchant as a record's settings, for `org_id`.
fn merchant_body(org_id: i64, port: u16) -> Value {
    json!({
        "org_id": org_id, "mch_id": merchant::MCH_ID,
        "settings": {
            "name": "Acme 商户",
            "api_key_v2": merchant::API_KEY_V2, "api_v3_key": merchant::API_V3_KEY,
            "private_key_pem": merchant::MERCHANT_PRIVATE_KEY_PEM, "cert_serial": merchant::MERCHANT_CERT_SERIAL,
            "public_key_id": merchant::WECHATPAY_PUBLIC_KEY_ID, "public_key_pem": merchant::WECHATPAY_PUBLIC_KEY_PEM,
            "notify_url": format!("http://127.0.0.1:{port}/wechat/pay/{}/notify", merchant::MCH_ID)
        }
    })
}

/// A deployment with no merchant in its environment: money leaves only through records.
async fn spawn_without_env_merchant() -> (OaApp, u16) {
    let port = free_port();
    let app = spawn(move |s| {
        s.listen = format!("127.0.0.1:{port}");
        s.pay.api_base = s.wechat.api_base.clone();
        let p = &mut s.pay.payouts;
        p.tick = std::time::Duration::from_millis(20);
        p.backoff_ms = 30;
        p.poll_secs = 1;
        p.lease_secs = 5;
    })
    .await;
    (app, port)
}

#[tokio::test]
async fn a_merchant_record_is_checked_with_wechat_pay_and_pays_its_owners_red_packets() {
    let (app, port) = spawn_without_env_merchant().await;
    let (acme, bright) = (company(&app, "Acme Property").await, company(&app, "Bright Property").await);
    register_apps(&app, &acme, &ACME).await;

    // Keys WeChat Pay does not take are refused, each with what to check; nothing is stored.
    let mut wrong_key = merchant_body(acme.id, port);
    wrong_key["settings"]["private_key_pem"] = json!(merchant::WECHATPAY_PRIVATE_KEY_PEM);
    let mut wrong_pub = merchant_body(acme.id, port);
    wrong_pub["settings"]["public_key_pem"] = json!(merchant::MERCHANT_PUBLIC_KEY_PEM);
    let mut wrong_v2 = merchant_body(acme.id, port);
    wrong_v2["settings"]["api_key_v2"] = json!("WrongV2Key0123456789abcdefghijkl");
    for body in [wrong_key, wrong_pub, wrong_v2] {
        let refused = app.post(&acme.admin, "/admin/v1/pay-merchants", body).await;
        assert_eq!(refused.code(), "credentials_rejected", "{}", refused.body);
        refused.expect(422);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM pay_merchants").await, 0);
    // Bright cannot register a merchant for Acme.
    app.post(&bright.admin, "/admin/v1/pay-merchants", merchant_body(acme.id, port)).await.expect(404);

    let made = app.post(&acme.admin, "/admin/v1/pay-merchants", merchant_body(acme.id, port)).await.expect(201);
    let shown = made.to_string();
    for secret in [merchant::API_KEY_V2, merchant::API_V3_KEY, "PRIVATE KEY"] {
        assert!(!shown.contains(secret), "a secret in the answer: {shown}");
    }
    assert_eq!(made["api_v3_key"]["set"], true);
    assert_eq!(made["verify_with"], "both");
    let id = made["id"].as_i64().unwrap();
    app.get(&bright.admin, &format!("/admin/v1/pay-merchants/{id}")).await.expect(404);
    assert_eq!(app.get(&bright.admin, "/admin/v1/pay-merchants").await.expect(200)["page"]["total"], 0);

    // Acme's resident grabs Acme's red packet: paid by Acme's merchant to Acme's account.
    let user = app.mock.add_user();
    let pusher = pusher_of(&app, &ACME);
    let oa_openid = openid_in(&app, &user, ACME.oa);
    app.say(&pusher, &pusher.follow(&oa_openid)).await;
    let code = app.mock.login_code_for_openid(ACME.mp, &openid_in(&app, &user, ACME.mp)).unwrap();
    let s = app.post("", "/mp/v1/sessions", json!({"code": code, "appid": ACME.mp})).await.expect(201);
    let token = s["access_token"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc();
    let f = &time::format_description::well_known::Rfc3339;
    let terms = |channel: &str| {
        json!({
            "theme": "新春红包", "channel": channel, "amount_mode": "fixed", "total_fen": 188, "shares": 1,
            "starts_at": (now - time::Duration::minutes(1)).format(f).unwrap(),
            "ends_at": (now + time::Duration::hours(2)).format(f).unwrap(), "audience": "followers"
        })
    };
    let c = app
        .post(&acme.admin, "/admin/v1/red-packets", json!({"owner_org_id": acme.id, "terms": terms("cash_red_packet")}))
        .await
        .expect(201);
    let cid = c["id"].as_i64().unwrap();
    app.post(&acme.admin, &format!("/admin/v1/red-packets/{cid}/activate"), json!({})).await.expect(200);
    let grabbed = app.send(bearer(app.client.post(app.url(&format!("/mp/v1/red-packets/{cid}/grabs"))), &token)).await;
    grabbed.expect(201);
    eventually("the red packet is sent by Acme's merchant", || async {
        app.count("SELECT COUNT(*) FROM payouts WHERE state = 'submitted'").await == 1
    })
    .await;
    let (mch_id, appid, openid): (Option<String>, String, String) =
        sqlx::query_as("SELECT mch_id, appid, openid FROM payouts").fetch_one(app.db.reader()).await.unwrap();
    assert_eq!(mch_id.as_deref(), Some(merchant::MCH_ID));
    assert_eq!((appid.as_str(), openid.as_str()), (ACME.oa, oa_openid.as_str()));
    assert_eq!(app.mock.payments().len(), 1);
    // Reconciled per merchant: Acme's merchant's bill matches its payouts; there is no merchant
    // configured by environment to reconcile.
    let today = app.mock.wechat.beijing_today();
    let run = app
        .post(&app.root_key, "/admin/v1/reconciliations", json!({"bill_date": today, "mch_id": merchant::MCH_ID}))
        .await
        .expect(200);
    assert_eq!((run["state"].as_str(), run["checked"].as_i64()), (Some("matched"), Some(1)), "{run}");
    assert_eq!(run["mch_id"], merchant::MCH_ID);
    let env = app.post(&app.root_key, "/admin/v1/reconciliations", json!({"bill_date": today})).await.expect(200);
    assert_eq!(env["state"], "unavailable");
    let listed = app.get(&app.root_key, &format!("/admin/v1/reconciliations?mch_id={}", merchant::MCH_ID)).await;
    assert_eq!(listed.expect(200)["items"].as_array().unwrap().len(), 1);
    app.post(&acme.admin, "/admin/v1/reconciliations", json!({"bill_date": today})).await.expect(403);

    // Bright has no merchant, and no platform merchant pays for it: its campaign cannot start.
    let c = app
        .post(&bright.admin, "/admin/v1/red-packets", json!({"owner_org_id": bright.id, "terms": terms("transfer")}))
        .await
        .expect(201);
    let refused = app.post(&bright.admin, &format!("/admin/v1/red-packets/{}/activate", c["id"]), json!({})).await;
    assert_eq!(refused.code(), "merchant_cannot_pay", "{}", refused.body);
    refused.expect(409);
    // Nor can it publish a task rewarding in cash; in points it may.
    let task = |kind: &str, channel: Option<&str>| {
        let mut terms = json!({
            "theme": "邀请邻居", "mode": "open", "category": "invite_bind", "target": 1, "reward_kind": kind,
            "reward_amount": 100, "starts_at": (now - time::Duration::minutes(1)).format(f).unwrap(),
            "ends_at": (now + time::Duration::days(1)).format(f).unwrap()
        });
        if let Some(c) = channel {
            terms["reward_channel"] = json!(c);
        }
        json!({"owner_org_id": bright.id, "terms": terms})
    };
    let refused = app.post(&bright.admin, "/admin/v1/tasks", task("red_packet", Some("transfer"))).await;
    assert_eq!(refused.code(), "merchant_cannot_pay", "{}", refused.body);
    refused.expect(409);
    app.post(&bright.admin, "/admin/v1/tasks", task("points", None)).await.expect(201);

    // A merchant with open payouts cannot go.
    let gone = app.delete(&acme.admin, &format!("/admin/v1/pay-merchants/{id}")).await;
    assert_eq!(gone.code(), "merchant_in_use");
    gone.expect(409);
    // Notifications for a merchant that is not ours are refused.
    let stray = app.client.post(app.url("/wechat/pay/1999999999/notify")).body("{}").send().await.unwrap();
    assert_eq!(stray.status(), 404);
    assert_no_secret_stored(&app, &[merchant::API_KEY_V2, merchant::API_V3_KEY, "BEGIN PRIVATE KEY"]).await;
}

#[tokio::test]
async fn import_env_turns_the_environment_into_records_and_the_deployment_runs_on_them() {
    let mut app = spawn_pay_app(|_| {}).await;
    // Before the import: a resident paid through the environment's merchant.
    let user = app.mock.add_user();
    let env = app.pusher(PushMode::Safe);
    app.say(&env, &env.follow(&user.oa_openid)).await;
    let token = app.login(&user).await;
    let now = time::OffsetDateTime::now_utc();
    let f = &time::format_description::well_known::Rfc3339;
    let terms = json!({
        "theme": "新春红包", "channel": "cash_red_packet", "amount_mode": "fixed", "total_fen": 188, "shares": 1,
        "starts_at": (now - time::Duration::minutes(1)).format(f).unwrap(),
        "ends_at": (now + time::Duration::hours(2)).format(f).unwrap(), "audience": "followers"
    });
    let body = json!({"owner_org_id": app.company_id, "terms": terms});
    let c = app.post(&app.root_key, "/admin/v1/red-packets", body).await.expect(201);
    let cid = c["id"].as_i64().unwrap();
    app.post(&app.root_key, &format!("/admin/v1/red-packets/{cid}/activate"), json!({})).await.expect(200);
    let grab = app.send(bearer(app.client.post(app.url(&format!("/mp/v1/red-packets/{cid}/grabs"))), &token)).await;
    grab.expect(201);
    eventually("the red packet is sent", || async {
        app.count("SELECT COUNT(*) FROM payouts WHERE state = 'submitted' AND mch_id IS NULL").await == 1
    })
    .await;
    // And a transfer waiting for the resident, made under the environment's notify URL.
    let transfer = red_packet(&app, &app.root_key, app.company_id, "transfer", 66, 1).await;
    let grab =
        app.send(bearer(app.client.post(app.url(&format!("/mp/v1/red-packets/{transfer}/grabs"))), &token)).await;
    grab.expect(201);
    eventually("the transfer waits for the resident", || async {
        app.count("SELECT COUNT(*) FROM payouts WHERE state = 'awaiting_confirmation' AND mch_id IS NULL").await == 1
    })
    .await;

    let import = |app: &OaApp| {
        let (db, settings) = (app.db.clone(), app.settings.clone());
        async move {
            let pay = linli::wechat::pay::clients::PayClients::from_settings(&settings.pay).unwrap();
            let accounts = linli::domain::accounts::registry::Accounts::load(&db, &settings, pay).await.unwrap();
            let tokens = std::sync::Arc::new(linli::db::wechat::TokenTable(db.clone()));
            let wechat = linli::wechat::api::WechatClient::new(&settings.wechat.api_base, tokens);
            linli::domain::accounts::import::import_env(&accounts, &wechat, &settings, None).await.unwrap()
        }
    };
    let lines = import(&app).await;
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[3].contains("2 payouts"), "{lines:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM wechat_apps WHERE org_id = 2").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM pay_merchants WHERE org_id = 1 AND platform_fallback = 1").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payouts WHERE mch_id IS NULL").await, 0);
    let again = import(&app).await;
    assert!(again.iter().all(|l| l.contains("a record already")), "{again:?}");
    let (notify_url,): (Option<String>,) =
        sqlx::query_as("SELECT notify_url FROM pay_merchants").fetch_one(app.db.reader()).await.unwrap();
    assert!(notify_url.unwrap().ends_with("/wechat/pay/1900000109/notify"), "new transfers notify the record's path");
    // The transfer made before is confirmed: its notification, to the old URL, settles the payout
    // that is now the record's.
    let (bill,): (String,) = sqlx::query_as("SELECT out_no FROM payouts WHERE channel = 'transfer'")
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    app.mock.confirm_transfer(&bill).unwrap();
    app.mock.wechat.deliver_due_notifications().await;
    eventually("the old URL's notification is applied", || async {
        app.count("SELECT COUNT(*) FROM payout_events WHERE kind = 'notify'").await == 1
    })
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payouts WHERE channel = 'transfer' AND state = 'succeeded'").await, 1);

    // The environment's secrets removed (only the account's appid kept, so the old callback URL
    // still serves it): the deployment runs on its records.
    let s = &mut app.settings;
    (s.wechat.oa_secret, s.wechat.oa_token, s.wechat.oa_aes_key) = (None, None, None);
    (s.wechat.mp_appid, s.wechat.mp_secret) = (None, None);
    s.pay.mch_id = None;
    app.crash_and_restart().await;
    let bill = app.mock.payments()[0].bill_no.clone();
    app.mock.receive_red_packet(&bill).unwrap();
    eventually("the payout is settled through the merchant record", || async {
        app.count("SELECT COUNT(*) FROM payouts WHERE state = 'succeeded'").await == 1
    })
    .await;
    let other = app.mock.add_user();
    let env = app.pusher(PushMode::Safe);
    app.say(&env, &env.follow(&other.oa_openid)).await;
    assert_eq!(points_by_company(&app, &other.oa_openid).await, vec![(app.company_id, 10)]);
    let code = app.mock.login_code(&other);
    app.post("", "/mp/v1/sessions", json!({"code": code, "appid": wechat_mock::MP_APPID})).await.expect(201);
    app.post("", "/mp/v1/sessions", json!({"code": "x"})).await.expect(503);
}

/// A merchant's record settings from the mock's keys of that merchant.
fn merchant_record(
    org_id: i64,
    port: u16,
    m: &wechat_mock::PayConfig,
    private_key_pem: &str,
    wechatpay_pem: &str,
) -> Value {
    json!({
        "org_id": org_id, "mch_id": m.mch_id,
        "settings": {
            "name": format!("商户 {}", m.mch_id),
            "api_key_v2": m.api_key_v2, "api_v3_key": m.api_v3_key,
            "private_key_pem": private_key_pem, "cert_serial": m.merchant_cert_serial,
            "public_key_id": m.wechatpay_public_key_id, "public_key_pem": wechatpay_pem,
            "notify_url": format!("http://127.0.0.1:{port}/wechat/pay/{}/notify", m.mch_id)
        }
    })
}

/// Acme and Bright, each with its own OA, MP (on its own open platform) and merchant; Bright's
/// merchant sends its notifications to `bright_notify` (its own path when `None`).
async fn spawn_two(bright_notify: Option<&str>) -> (OaApp, Company, Company) {
    let port = free_port();
    let mut config = wechat_mock::MockConfig::default();
    // Two property companies, two open-platform accounts: their residents are different persons.
    config.apps.push(MockApp::official_account(ACME.oa, ACME.oa_secret));
    config.apps.push(MockApp::mini_program(ACME.mp, ACME.mp_secret));
    config.apps.push(MockApp::official_account(BRIGHT.oa, BRIGHT.oa_secret).bound_to("bright"));
    config.apps.push(MockApp::mini_program(BRIGHT.mp, BRIGHT.mp_secret).bound_to("bright"));
    config.merchants.push(wechat_mock::PayConfig::second());
    let app = spawn_oa_app_on(config, 300, move |s| {
        s.listen = format!("127.0.0.1:{port}");
        s.pay.api_base = s.wechat.api_base.clone();
        let p = &mut s.pay.payouts;
        p.tick = std::time::Duration::from_millis(20);
        p.backoff_ms = 30;
        p.poll_secs = 1;
        p.lease_secs = 5;
    })
    .await;
    let (acme, bright) = (company(&app, "Acme Property").await, company(&app, "Bright Property").await);
    register_apps(&app, &acme, &ACME).await;
    register_apps(&app, &bright, &BRIGHT).await;
    let first = wechat_mock::PayConfig::default();
    let second = wechat_mock::PayConfig::second();
    let a =
        merchant_record(acme.id, port, &first, merchant::MERCHANT_PRIVATE_KEY_PEM, merchant::WECHATPAY_PUBLIC_KEY_PEM);
    app.post(&acme.admin, "/admin/v1/pay-merchants", a).await.expect(201);
    let mut b = merchant_record(
        bright.id,
        port,
        &second,
        merchant::SECOND_MERCHANT_PRIVATE_KEY_PEM,
        merchant::SECOND_WECHATPAY_PUBLIC_KEY_PEM,
    );
    if let Some(path) = bright_notify {
        b["settings"]["notify_url"] = json!(format!("http://127.0.0.1:{port}{path}"));
    }
    app.post(&bright.admin, "/admin/v1/pay-merchants", b).await.expect(201);
    (app, acme, bright)
}

#[tokio::test]
async fn two_companies_on_two_instances_each_pay_only_through_their_own_merchant() {
    let (app, acme, bright) = spawn_two(None).await;
    let (first, second) = (wechat_mock::PayConfig::default(), wechat_mock::PayConfig::second());
    // A second instance, started after the records: it opens them at start-up.
    let other = app.another_instance().await;
    const PER_COMPANY: usize = 12;
    let now = time::OffsetDateTime::now_utc();
    let f = &time::format_description::well_known::Rfc3339;
    let mut campaigns = Vec::new();
    let mut coupons = Vec::new();
    for c in [&acme, &bright] {
        let coupon_terms = json!({
            "category": "水果", "title": "粉丝券", "kind": "cash", "amount_off": 1000, "min_spend": 5000,
            "valid_days": 7, "claim_from": "2020-01-01T00:00:00Z", "claim_until": "2099-01-01T00:00:00Z",
            "stock_total": PER_COMPANY, "per_resident_limit": 1, "audience": "followers"
        });
        let t = app
            .post(&c.admin, "/admin/v1/coupon-templates", json!({"owner_org_id": c.id, "terms": coupon_terms}))
            .await
            .expect(201);
        coupons.push(t["id"].as_i64().unwrap());
        let terms = json!({
            "theme": "新春红包", "channel": "cash_red_packet", "amount_mode": "fixed", "total_fen": 100 * PER_COMPANY as i64,
            "shares": PER_COMPANY, "starts_at": (now - time::Duration::minutes(1)).format(f).unwrap(),
            "ends_at": (now + time::Duration::hours(2)).format(f).unwrap(), "audience": "followers"
        });
        let made = app
            .post(&c.admin, "/admin/v1/red-packets", json!({"owner_org_id": c.id, "terms": terms}))
            .await
            .expect(201);
        let id = made["id"].as_i64().unwrap();
        app.post(&c.admin, &format!("/admin/v1/red-packets/{id}/activate"), json!({})).await.expect(200);
        campaigns.push(id);
    }

    // Every resident follows, checks in, logs in and grabs, all at once, half through each instance.
    let mut work = tokio::task::JoinSet::new();
    let mut expected: Vec<(String, String)> = Vec::new(); // (openid paid, merchant)
    for (i, (apps, c_id, campaign, coupon, mch)) in [
        (&ACME, acme.id, campaigns[0], coupons[0], merchant::MCH_ID),
        (&BRIGHT, bright.id, campaigns[1], coupons[1], merchant::SECOND_MCH_ID),
    ]
    .into_iter()
    .enumerate()
    {
        for n in 0..PER_COMPANY {
            let user = app.mock.add_user();
            let oa_openid = openid_in(&app, &user, apps.oa);
            let mp_code = app.mock.login_code_for_openid(apps.mp, &openid_in(&app, &user, apps.mp)).unwrap();
            expected.push((oa_openid.clone(), mch.to_owned()));
            let base = if (n + i) % 2 == 0 { app.address.clone() } else { other.address.clone() };
            let mut push = wechat_mock::PusherConfig::new(format!("{base}/wechat/oa/{}/callback", apps.oa));
            push.token = apps.token.to_owned();
            push.encoding_aes_key = apps.aes_key.to_owned();
            push.appid = apps.oa.to_owned();
            let pusher = wechat_mock::OaPusher::new(push).unwrap().with_mock(app.mock.wechat.clone());
            let client = app.client.clone();
            let mp_appid = apps.mp;
            work.spawn(async move {
                for p in [pusher.follow(&oa_openid), pusher.text(&oa_openid, "签到")] {
                    let outcome = pusher.deliver(&p).await.unwrap();
                    assert_eq!(outcome.status, 200, "{}", outcome.body);
                }
                let s: Value = client
                    .post(format!("{base}/mp/v1/sessions"))
                    .json(&json!({"code": mp_code, "appid": mp_appid}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let token = s["access_token"].as_str().expect("logged in").to_owned();
                let grabbed = client
                    .post(format!("{base}/mp/v1/red-packets/{campaign}/grabs"))
                    .header("Authorization", format!("Bearer {token}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(grabbed.status(), 201);
                let claimed = client
                    .post(format!("{base}/mp/v1/coupons/{coupon}/claims"))
                    .header("Authorization", format!("Bearer {token}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(claimed.status(), 201);
                (oa_openid, c_id)
            });
        }
    }
    let mut residents = Vec::new();
    while let Some(done) = work.join_next().await {
        residents.push(done.unwrap());
    }
    eventually("every red packet is sent", || async {
        app.count("SELECT COUNT(*) FROM payouts WHERE state = 'submitted'").await == 2 * PER_COMPANY as i64
    })
    .await;

    // Each payout went through its owner's merchant, to its owner's account; WeChat's ledgers agree.
    let rows: Vec<(Option<String>, String, i64)> = sqlx::query_as(
        "SELECT p.mch_id, p.appid, c.owner_org_id FROM payouts p JOIN rp_grabs g ON g.payout_id = p.id \
         JOIN rp_campaigns c ON c.id = g.campaign_id",
    )
    .fetch_all(app.db.reader())
    .await
    .unwrap();
    for (mch, appid, owner) in &rows {
        let want = if *owner == acme.id { (merchant::MCH_ID, ACME.oa) } else { (merchant::SECOND_MCH_ID, BRIGHT.oa) };
        assert_eq!((mch.as_deref(), appid.as_str()), (Some(want.0), want.1));
    }
    for (openid, mch) in &expected {
        let paid: Vec<_> = app.mock.payments().into_iter().filter(|p| &p.openid == openid).collect();
        assert_eq!(paid.len(), 1, "{openid} is paid once");
        assert_eq!(&paid[0].mch_id, mch, "{openid} is paid by its company's merchant");
    }
    let spent = |m: &wechat_mock::PayConfig| m.balance_fen - app.mock.pay_balance_fen_of(&m.mch_id).unwrap();
    assert_eq!(spent(&first), 100 * PER_COMPANY as i64);
    assert_eq!(spent(&second), 100 * PER_COMPANY as i64);
    // And each resident's points are in its own company's programme: follow 10, check-in 5.
    for (openid, company_id) in residents {
        assert_eq!(points_by_company(&app, &openid).await, vec![(company_id, 15)]);
    }
    // Each company's coupons went to its own residents, every one of them claimed.
    let claims: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT t.company_id, CAST(COUNT(*) AS BIGINT) FROM coupons c JOIN coupon_templates t ON t.id = c.template_id \
         JOIN resident_identities i ON i.resident_id = c.resident_id AND i.app_kind = 'oa' \
         WHERE i.appid = CASE WHEN t.company_id = $1 THEN $2 ELSE $3 END GROUP BY t.company_id ORDER BY t.company_id",
    )
    .bind(acme.id)
    .bind(ACME.oa)
    .bind(BRIGHT.oa)
    .fetch_all(app.db.reader())
    .await
    .unwrap();
    assert_eq!(claims, vec![(acme.id, PER_COMPANY as i64), (bright.id, PER_COMPANY as i64)]);
    // The two companies' residents are different persons (different open platforms).
    assert_eq!(app.count("SELECT COUNT(DISTINCT resident_id) FROM resident_identities").await, 2 * PER_COMPANY as i64);
    app.assert_ledger_balanced().await;
}

#[tokio::test]
async fn a_notification_verified_by_another_merchants_keys_moves_nothing() {
    // Bright's merchant sends its notifications to Acme's path: signed with Bright's WeChat Pay
    // key and sealed with Bright's APIv3 key, they do not verify as Acme's.
    let acme_path = format!("/wechat/pay/{}/notify", merchant::MCH_ID);
    let (app, _acme, bright) = spawn_two(Some(&acme_path)).await;
    let user = app.mock.add_user();
    let pusher = pusher_of(&app, &BRIGHT);
    app.say(&pusher, &pusher.follow(&openid_in(&app, &user, BRIGHT.oa))).await;
    let token = mp_login(&app, &user, BRIGHT.mp).await;
    let cid = red_packet(&app, &bright.admin, bright.id, "transfer", 66, 1).await;
    let g = app.send(bearer(app.client.post(app.url(&format!("/mp/v1/red-packets/{cid}/grabs"))), &token)).await;
    let payout = g.expect(201)["payout_id"].as_i64().unwrap();
    eventually("waiting for the resident", || async {
        app.count("SELECT COUNT(*) FROM payouts WHERE state = 'awaiting_confirmation'").await == 1
    })
    .await;
    let mine = app.send(bearer(app.client.get(app.url(&format!("/mp/v1/me/payouts/{payout}"))), &token)).await;
    assert_eq!(mine.expect(200)["mch_id"], merchant::SECOND_MCH_ID, "the mini-program confirms with Bright's merchant");
    let bill: (String,) = sqlx::query_as("SELECT out_no FROM payouts").fetch_one(app.db.reader()).await.unwrap();
    app.mock.confirm_transfer(&bill.0).unwrap();
    app.mock.wechat.deliver_due_notifications().await;
    let notes = app.mock.wechat.pay_notifications_of(merchant::SECOND_MCH_ID).unwrap();
    assert!(!notes.is_empty() && notes.iter().all(|n| !n.acknowledged), "refused at Acme's path: {notes:?}");
    assert!(notes.iter().all(|n| n.results.iter().all(|r| *r == Some(401))), "{notes:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM pay_notifications").await, 0, "its id is not used up");
    // The payout is settled by querying Bright's merchant instead.
    eventually("succeeded by query", || async {
        app.count("SELECT COUNT(*) FROM payouts WHERE state = 'succeeded'").await == 1
    })
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM payout_events WHERE kind = 'notify'").await, 0);
}

#[tokio::test]
async fn a_follower_of_one_companys_account_is_not_another_companys_follower() {
    // One open platform: the same person in both companies' apps.
    let (app, _) = spawn_without_env_merchant().await;
    let (acme, bright) = (company(&app, "Acme Property").await, company(&app, "Bright Property").await);
    register_apps(&app, &acme, &ACME).await;
    register_apps(&app, &bright, &BRIGHT).await;
    let packet = red_packet(&app, &bright.admin, bright.id, "balance", 300, 3).await;
    let coupon_terms = json!({
        "category": "水果", "title": "粉丝券", "kind": "cash", "amount_off": 1000, "min_spend": 5000,
        "valid_days": 7, "claim_from": "2020-01-01T00:00:00Z", "claim_until": "2099-01-01T00:00:00Z",
        "stock_total": 5, "per_resident_limit": 1, "audience": "followers"
    });
    let t = app
        .post(&bright.admin, "/admin/v1/coupon-templates", json!({"owner_org_id": bright.id, "terms": coupon_terms}))
        .await
        .expect(201);
    let coupon = t["id"].as_i64().unwrap();

    // Follows Acme's account only, and opens Bright's mini-program.
    let user = app.mock.add_user();
    let acme_pusher = pusher_of(&app, &ACME);
    app.say(&acme_pusher, &acme_pusher.follow(&openid_in(&app, &user, ACME.oa))).await;
    let token = mp_login(&app, &user, BRIGHT.mp).await;
    let get = |path: String| app.send(bearer(app.client.get(app.url(&path)), &token));
    let packets = get(format!("/mp/v1/red-packets?company_id={}", bright.id)).await.expect(200);
    assert_eq!(packets["items"].as_array().unwrap().len(), 0, "{packets}");
    let coupons = get(format!("/mp/v1/coupons?company_id={}", bright.id)).await.expect(200);
    assert_eq!(coupons["items"].as_array().unwrap().len(), 0, "{coupons}");
    let post = |path: String| app.send(bearer(app.client.post(app.url(&path)), &token));
    post(format!("/mp/v1/red-packets/{packet}/grabs")).await.expect(403);
    post(format!("/mp/v1/coupons/{coupon}/claims")).await.expect(403);
    assert_eq!(app.count("SELECT COUNT(*) FROM rp_grabs").await, 0);

    // Following Bright's account makes them Bright's follower.
    let bright_pusher = pusher_of(&app, &BRIGHT);
    app.say(&bright_pusher, &bright_pusher.follow(&openid_in(&app, &user, BRIGHT.oa))).await;
    let packets = get(format!("/mp/v1/red-packets?company_id={}", bright.id)).await.expect(200);
    assert_eq!(packets["items"].as_array().unwrap().len(), 1, "{packets}");
    post(format!("/mp/v1/red-packets/{packet}/grabs")).await.expect(201);
    post(format!("/mp/v1/coupons/{coupon}/claims")).await.expect(201);
}

#[tokio::test]
async fn a_merchant_on_platform_certificates_is_checked_through_fetched_certificates() {
    let port = free_port();
    let mut config = wechat_mock::MockConfig::default();
    config.pay.signing = wechat_mock::pay::PaySigning::PlatformCertificate;
    let app = spawn_oa_app_on(config, 300, move |s| {
        s.listen = format!("127.0.0.1:{port}");
        s.pay.api_base = s.wechat.api_base.clone();
    })
    .await;
    let acme = company(&app, "Acme Property").await;
    let mut body = merchant_body(acme.id, port);
    let settings = body["settings"].as_object_mut().unwrap();
    settings.remove("public_key_id");
    settings.remove("public_key_pem");
    settings.insert("verify_with".into(), json!("platform_certificates"));
    // Without the APIv3 key the certificates cannot be opened: refused.
    let mut no_v3 = body.clone();
    no_v3["settings"]["api_v3_key"] = json!("WrongV3Key0123456789abcdefghijkl");
    let refused = app.post(&acme.admin, "/admin/v1/pay-merchants", no_v3).await;
    assert_eq!(refused.code(), "credentials_rejected", "{}", refused.body);
    refused.expect(422);
    let made = app.post(&acme.admin, "/admin/v1/pay-merchants", body).await.expect(201);
    assert_eq!(made["verify_with"], "platform_certificates");
}

#[tokio::test]
async fn a_token_changed_on_one_instance_is_taken_at_once_by_another() {
    let app = spawn(|_| {}).await;
    let acme = company(&app, "Acme Property").await;
    let (oa, _) = register_apps(&app, &acme, &ACME).await;
    let other = app.another_instance().await;
    let new_token = "AcmeRotatedToken2027";
    app.put(&acme.admin, &format!("/admin/v1/wechat-apps/{oa}"), json!({"name": "服务号", "token": new_token}))
        .await
        .expect(200);
    // At once, through the other instance, before its periodic re-read: a push under the new Token.
    let mut config = wechat_mock::PusherConfig::new(format!("{}/wechat/oa/{}/callback", other.address, ACME.oa));
    config.token = new_token.to_owned();
    config.encoding_aes_key = ACME.aes_key.to_owned();
    config.appid = ACME.oa.to_owned();
    let pusher = wechat_mock::OaPusher::new(config).unwrap().with_mock(app.mock.wechat.clone());
    let user = app.mock.add_user();
    let openid = openid_in(&app, &user, ACME.oa);
    app.say(&pusher, &pusher.follow(&openid)).await;
    assert_eq!(points_by_company(&app, &openid).await, vec![(acme.id, 10)]);
    // The old Token no longer works anywhere.
    let mut old = wechat_mock::PusherConfig::new(format!("{}/wechat/oa/{}/callback", other.address, ACME.oa));
    old.token = ACME.token.to_owned();
    old.encoding_aes_key = ACME.aes_key.to_owned();
    old.appid = ACME.oa.to_owned();
    let old = wechat_mock::OaPusher::new(old).unwrap();
    let again = app.mock.add_user();
    let outcome = old.deliver(&old.follow(&openid_in(&app, &again, ACME.oa))).await.unwrap();
    assert_eq!(outcome.status, 401, "{}", outcome.body);
}

#[tokio::test]
async fn the_same_record_registered_twice_at_once_is_made_once_and_edge_numbers_are_refused() {
    let (app, port) = spawn_without_env_merchant().await;
    let acme = company(&app, "Acme Property").await;
    let oa = || app.post(&acme.admin, "/admin/v1/wechat-apps", oa_body(acme.id, &ACME, ACME.oa_secret));
    let (a, b) = tokio::join!(oa(), oa());
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{} / {}", a.body, b.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM wechat_apps").await, 1);
    let merchant = || app.post(&acme.admin, "/admin/v1/pay-merchants", merchant_body(acme.id, port));
    let (a, b) = tokio::join!(merchant(), merchant());
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{} / {}", a.body, b.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM pay_merchants").await, 1);
    let id = app.get(&acme.admin, "/admin/v1/pay-merchants").await.expect(200)["items"][0]["id"].as_i64().unwrap();
    // Rates outside 1..=1000, and a platform fallback claimed by a company, change nothing.
    let before = app.get(&acme.admin, &format!("/admin/v1/pay-merchants/{id}")).await.expect(200);
    for (field, value) in [
        ("rate_per_sec", json!(0)),
        ("rate_per_sec", json!(-1)),
        ("rate_per_sec", json!(i64::MAX)),
        ("rate_per_sec", json!(i64::MIN)),
        ("platform_fallback", json!(true)),
    ] {
        let mut settings = merchant_body(acme.id, port)["settings"].clone();
        settings[field] = value.clone();
        let refused = app.put(&acme.admin, &format!("/admin/v1/pay-merchants/{id}"), settings).await;
        assert_eq!(refused.status.as_u16(), 422, "{field} = {value}: {}", refused.body);
    }
    assert_eq!(app.get(&acme.admin, &format!("/admin/v1/pay-merchants/{id}")).await.expect(200), before);
}

#[tokio::test]
async fn a_resident_of_a_record_mini_program_confirms_the_phone_through_it() {
    let app = spawn(|_| {}).await;
    let acme = company(&app, "Acme Property").await;
    register_apps(&app, &acme, &ACME).await;
    let user = app.mock.add_user();
    let token = mp_login(&app, &user, ACME.mp).await;
    let confirm = |code: String| {
        app.send(bearer(app.client.post(app.url("/mp/v1/me/phone")), &token).json(&json!({ "code": code })))
    };
    // A phone code of the environment's mini-program is not this session's app's: refused.
    let foreign = app.mock.phone_code(&user);
    assert_eq!(confirm(foreign).await.status.as_u16(), 422);
    let own = app.mock.wechat.phone_code_for_openid(ACME.mp, &openid_in(&app, &user, ACME.mp)).unwrap();
    let confirmed = confirm(own).await.expect(200);
    assert!(confirmed["phone"].as_str().is_some_and(|p| !p.is_empty()), "{confirmed}");
}
