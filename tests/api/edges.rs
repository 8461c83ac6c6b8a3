//! Numbers from outside at the ends of i64. Every integer a client can send — each path and query
//! parameter and each integer field of each JSON body, nested ones included, of every operation of
//! the spec — is sent at the i64 edges and at its own schema's bounds, with the rest of a valid
//! request around it, as the operation's caller; every date-time field at the ends of what RFC 3339
//! can say. No answer may be a 5xx or a dropped connection, a refusal is the typed
//! `{code, message, request_id}` body, and a refused write changes nothing in any table. Then the
//! numbers WeChat sends: a pay notification's amount and `Wechatpay-Timestamp`, a token's
//! `expires_in`, a QR code's `expire_seconds`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use wechat_mock::PushMode;

use crate::helpers::{assert_error_body, bearer, eventually, free_port, spawn_oa_app, spawn_pay_app, Answer, OaApp};

/// The i64 edges, the first integers a double cannot hold, and just past i64 and u64 either way.
const EDGES: &[&str] = &[
    "-9223372036854775808",
    "-9223372036854775807",
    "-9007199254740993",
    "-1",
    "0",
    "1",
    "9007199254740993",
    "9223372036854775806",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
];

/// The ends of what a date-time field can carry: years 0000 and 9999, pushed past them by offsets.
const TIME_EDGES: &[&str] = &[
    "0000-01-01T00:00:00Z",
    "0000-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59.999999999Z",
    "9999-12-31T23:59:59-23:59",
    "1970-01-01T00:00:00Z",
];

/// What a value in the body is replaced by before the edge's text goes in (the text may be no
/// JSON number serde can hold).
const PLACEHOLDER: &str = "__edge__";

fn spec() -> Value {
    serde_json::from_str(&linli::api::openapi_service().spec()).unwrap()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

fn now_plus(d: time::Duration) -> String {
    rfc3339(time::OffsetDateTime::now_utc() + d)
}

/// The edges of one integer: [`EDGES`] after the schema's own bounds and their neighbours (the
/// largest allowed value first, as the largest products come from it).
fn edges_for(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let bound = |k: &str| schema[k].as_f64().map(|v| v as i128);
    if let Some(max) = bound("maximum") {
        out.extend([max - 1, max, max + 1].map(|v| v.to_string()));
    }
    if let Some(min) = bound("minimum") {
        out.extend([min - 1, min, min + 1].map(|v| v.to_string()));
    }
    for e in EDGES {
        if !out.iter().any(|o| o == e) {
            out.push((*e).to_owned());
        }
    }
    out
}

/// The objects a sweep leans on, and the callers it calls as.
struct Fixture {
    /// Values of integer parameters and fields by name (`community_id`, `task_id`, …).
    ids: BTreeMap<&'static str, i64>,
    coupon_code: String,
    redemption_code: String,
    member_code: String,
    order_no: String,
    /// A platform admin key of its own, so that revoking key 1 (the root key) does not stop it.
    operator: String,
    merchant_key: String,
    token: String,
}

async fn created(a: Answer, what: &str) -> Value {
    assert!(a.status.is_success(), "{what}: {} {}", a.status, a.body);
    a.body
}

/// A company with a community, a merchant, a following resident bound to a room, a points
/// programme at its highest rates with a 1000% campaign on fruit, a coupon (claimed), a red
/// packet, a task, a catalogue item (redeemed), and an order of 100,000,000 fen of fruit that
/// earned 100,000,000,000 points.
async fn fixture(app: &OaApp) -> Fixture {
    let root = app.root_key.clone();
    let company = app.company_id;
    let community = app.community_with_roster().await;
    let rooms = app.get(&root, &format!("/admin/v1/rooms?community_id={community}")).await.expect(200);
    let room = rooms["items"][0]["id"].as_i64().unwrap();
    let merchant = app.create_org(&root, company, "merchant", "鲜果屋").await;
    let merchant_key = app.create_key(&root, merchant, "admin").await;
    let operator = app.create_key(&root, 1, "admin").await;
    let spare = created(
        app.post(&root, "/admin/v1/api-keys", json!({"org_id": company, "role": "viewer", "name": "spare"})).await,
        "spare key",
    )
    .await;
    let spare_key = spare["key"]["id"].as_i64().unwrap();

    let user = app.mock.add_user();
    let pusher = app.pusher(PushMode::Safe);
    app.say(&pusher, &pusher.follow(&user.oa_openid)).await;
    let token = app.login(&user).await;
    let mp = |method: reqwest::Method, path: &str| {
        bearer(app.client.request(method, app.url(path)), &token).header("Idempotency-Key", format!("fx-{path}"))
    };
    let me = created(app.send(mp(reqwest::Method::GET, "/mp/v1/me")).await, "me").await;
    let resident = me["resident_id"].as_i64().unwrap();
    let binding = json!({"community_id": community, "building": "1", "unit": "1", "number": "101", "role": "owner",
                         "name": "张三", "phone": "13800138000"});
    let binding =
        created(app.send(mp(reqwest::Method::POST, "/mp/v1/me/bindings").json(&binding)).await, "binding").await;

    let rules = json!({"name": "邻里积分", "utc_offset_minutes": 480, "follow_points": 10, "checkin_points": 5,
                       "streak_bonuses": [], "referral_points": 10, "checkin_keyword": "签到",
                       "checkin_menu_key": "CHECKIN", "points_per_yuan": 1000, "first_purchase_percent": 1000});
    let programme = format!("/admin/v1/companies/{company}/points-programme");
    created(app.send(app.client.put(app.url(&programme)).header("X-Api-Key", &root).json(&rules)).await, "rules").await;
    let campaign = json!({"category": "fruit", "percent": 1000, "starts_at": now_plus(time::Duration::hours(-1)),
                          "ends_at": now_plus(time::Duration::days(1))});
    let multiplier =
        created(app.post(&root, &format!("/admin/v1/companies/{company}/points/multipliers"), campaign).await, "x10")
            .await;

    let (from, until) = (now_plus(time::Duration::minutes(-1)), now_plus(time::Duration::days(1)));
    let terms = json!({"category": "food", "title": "满100减1", "kind": "cash", "amount_off": 100, "valid_days": 30,
                       "claim_from": from, "claim_until": until, "stock_total": 100, "audience": "followers"});
    let template = created(
        app.post(&root, "/admin/v1/coupon-templates", json!({"owner_org_id": company, "terms": terms})).await,
        "coupon template",
    )
    .await;
    let template = template["id"].as_i64().unwrap();
    let coupon = created(
        app.send(mp(reqwest::Method::POST, &format!("/mp/v1/coupons/{template}/claims"))).await,
        "coupon claim",
    )
    .await;
    let rule = created(
        app.post(&root, "/admin/v1/coupon-rules", json!({"template_id": template, "trigger": "first_binding"})).await,
        "coupon rule",
    )
    .await;
    let red_packet = json!({"owner_org_id": company, "terms": {"theme": "红包", "channel": "balance",
                            "amount_mode": "fixed", "total_fen": 100, "shares": 10, "starts_at": from,
                            "ends_at": until, "audience": "followers"}});
    let red_packet = created(app.post(&root, "/admin/v1/red-packets", red_packet).await, "red packet").await;
    let task = json!({"owner_org_id": company, "terms": {"theme": "邀请邻居", "mode": "open",
                      "category": "invite_bind", "target": 1, "reward_kind": "points", "reward_amount": 10,
                      "starts_at": from, "ends_at": until}});
    let task = created(app.post(&root, "/admin/v1/tasks", task).await, "task").await;
    let item = json!({"merchant_id": merchant, "title": "一箱苹果", "points_price": 1, "stock_total": 10});
    let item = created(app.post(&root, &format!("/admin/v1/companies/{company}/catalogue"), item).await, "item").await;
    let item = item["id"].as_i64().unwrap();

    let code = created(app.send(mp(reqwest::Method::POST, "/mp/v1/me/member-code")).await, "member code").await;
    let member_code = code["code"].as_str().unwrap().to_owned();
    let order = json!({"order_no": "biggest-1", "member_code": member_code, "amount": 100_000_000,
                       "items": [{"name": "榴莲", "category": "fruit", "amount": 100_000_000}],
                       "ordered_at": now_plus(time::Duration::ZERO)});
    let order = created(app.post(&merchant_key, "/merchant/v1/orders", order).await, "order").await;
    assert_eq!(order["points"], 100_000_000_000i64, "the order earns the most points a rule allows");
    let redemption = created(
        app.send(mp(reqwest::Method::POST, "/mp/v1/me/redemptions").json(&json!({"item_id": item}))).await,
        "redemption",
    )
    .await;

    let ids = BTreeMap::from([
        ("company_id", company),
        ("org_id", company),
        ("owner_org_id", company),
        ("parent_id", company),
        ("community_id", community),
        ("room_id", room),
        ("merchant_id", merchant),
        ("resident_id", resident),
        ("binding_id", binding["id"].as_i64().unwrap()),
        ("member_binding_id", binding["id"].as_i64().unwrap()),
        ("template_id", template),
        ("rule_id", rule["id"].as_i64().unwrap()),
        ("multiplier_id", multiplier["id"].as_i64().unwrap()),
        ("red_packet_id", red_packet["id"].as_i64().unwrap()),
        ("task_id", task["id"].as_i64().unwrap()),
        ("item_id", item),
        ("redemption_id", redemption["id"].as_i64().unwrap()),
        ("key_id", spare_key),
        ("entry_id", 1),
        ("actor_key_id", spare_key),
        ("operator_key_id", spare_key),
    ]);
    Fixture {
        ids,
        coupon_code: coupon["code"].as_str().unwrap().to_owned(),
        redemption_code: redemption["code"].as_str().unwrap().to_owned(),
        member_code,
        order_no: "biggest-1".into(),
        operator,
        merchant_key,
        token,
    }
}

/// A fingerprint of every table a request can change: per table, its row count and a digest of
/// its integer, boolean and text columns. Only the tables the service writes on its own clock
/// (instance heartbeats, rate buckets, cached WeChat tokens) are left out.
struct Fingerprint {
    sql: String,
}

impl Fingerprint {
    async fn new(app: &OaApp) -> Self {
        let postgres = app.database_url.starts_with("postgres");
        let columns_sql = if postgres {
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT), CAST(data_type AS TEXT) \
             FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, ordinal_position"
        } else {
            "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' ORDER BY m.name, p.cid"
        };
        let columns: Vec<(String, String, String)> =
            sqlx::query_as(columns_sql).fetch_all(app.db.reader()).await.unwrap();
        let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (table, column, kind) in columns {
            if table.starts_with("sqlite_")
                || table.starts_with("_sqlx")
                || ["instances", "rate_buckets", "wechat_tokens"].contains(&table.as_str())
            {
                continue;
            }
            let kind = kind.to_ascii_lowercase();
            let digest = if kind == "boolean" && postgres {
                format!("CASE WHEN {column} THEN 1 ELSE 0 END")
            } else if kind.contains("int") || kind.contains("bool") {
                format!("({column} % 1000003)")
            } else if kind.contains("text") || kind.contains("char") {
                format!("(LENGTH({column}) * 7 + LENGTH(REPLACE({column}, 'e', '')) * 3 + LENGTH(REPLACE({column}, 'a', '')))")
            } else {
                continue;
            };
            let n = tables.entry(table).or_default();
            let weight = n.len() + 1;
            n.push(format!("{weight} * COALESCE(SUM({digest}), 0)"));
        }
        let sql = tables
            .iter()
            .map(|(table, digests)| {
                format!(
                    "SELECT '{table}', CAST(COUNT(*) AS BIGINT), CAST({} AS BIGINT) FROM {table}",
                    if digests.is_empty() { "0".to_owned() } else { digests.join(" + ") }
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        Self { sql }
    }

    async fn take(&self, app: &OaApp) -> Vec<(String, i64, i64)> {
        let mut rows: Vec<(String, i64, i64)> = sqlx::query_as(&self.sql).fetch_all(app.db.reader()).await.unwrap();
        rows.sort();
        rows
    }
}

fn resolve<'a>(schema: &'a Value, schemas: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

/// Enum values a valid request prefers, where the first one listed would be refused (a second
/// platform org) or need more fields.
const PREFERRED: &[&str] =
    &["community", "cash", "balance", "fixed", "followers", "open", "invite_bind", "points", "owner", "first_binding"];

/// A valid value for a field: fixture ids by name, schema defaults, values inside the bounds,
/// unique strings, times around now.
fn valid_value(name: &str, schema: &Value, schemas: &Value, fx: &Fixture, n: &mut u64) -> Value {
    let s = resolve(schema, schemas);
    if let Some(values) = s["enum"].as_array() {
        let pick = values.iter().find(|v| PREFERRED.contains(&v.as_str().unwrap_or(""))).unwrap_or(&values[0]);
        return pick.clone();
    }
    *n += 1;
    match s["type"].as_str() {
        Some("object") => valid_object(s, schemas, fx, n),
        Some("array") => {
            let needs_one = s["minItems"].as_u64().unwrap_or(0) > 0 || name == "rows";
            let item = &s["items"];
            if needs_one {
                json!([valid_value(name, item, schemas, fx, n)])
            } else {
                json!([])
            }
        }
        Some("integer") => {
            if let Some(id) = fx.ids.get(name) {
                return json!(id);
            }
            if let Some(d) = s.get("default").filter(|d| d.is_i64()) {
                return d.clone();
            }
            let min = s["minimum"].as_f64().map_or(i64::MIN, |v| v as i64);
            let max = s["maximum"].as_f64().map_or(i64::MAX, |v| v as i64);
            json!(100i64.clamp(min, max))
        }
        Some("boolean") => json!(false),
        Some("string") => {
            if s["format"] == "date-time" {
                let d = if name.contains("start") || name.contains("from") || name.contains("since") {
                    time::Duration::minutes(-1)
                } else if name.contains("end") || name.contains("until") {
                    time::Duration::days(1)
                } else {
                    time::Duration::ZERO
                };
                return json!(now_plus(d));
            }
            if s["pattern"].as_str().is_some_and(|p| p.contains("\\d{4}-")) {
                let yesterday = time::OffsetDateTime::now_utc().date().previous_day().unwrap();
                return json!(yesterday.to_string());
            }
            match name {
                "member_code" => return json!(fx.member_code),
                "category" => return json!("fruit"),
                _ => {}
            }
            let min = s["minLength"].as_u64().unwrap_or(1) as usize;
            if min >= 11 {
                return json!(format!("139{:08}", *n % 100_000_000));
            }
            json!(format!("edge{n}"))
        }
        _ => Value::Null,
    }
}

/// Optional fields a valid body of these schemas needs (a cash coupon's face value and validity).
const ALSO: &[&str] = &["amount_off", "valid_days"];

fn valid_object(s: &Value, schemas: &Value, fx: &Fixture, n: &mut u64) -> Value {
    let required: Vec<&str> =
        s["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>();
    let mut out = serde_json::Map::new();
    for (field, fs) in s["properties"].as_object().into_iter().flatten() {
        if required.contains(&field.as_str()) || ALSO.contains(&field.as_str()) {
            out.insert(field.clone(), valid_value(field, fs, schemas, fx, n));
        }
    }
    Value::Object(out)
}

/// One place in a body an edge goes: the path of keys and array indexes, and the field's schema.
#[derive(Clone, Debug)]
struct Slot {
    path: Vec<Step>,
    schema: Value,
    is_time: bool,
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index,
}

/// Every integer and date-time field of a body schema, nested objects and arrays included.
fn slots(schema: &Value, schemas: &Value, prefix: Vec<Step>, out: &mut Vec<Slot>, depth: usize) {
    let s = resolve(schema, schemas);
    if depth > 4 {
        return;
    }
    match s["type"].as_str() {
        Some("integer") => out.push(Slot { path: prefix, schema: s.clone(), is_time: false }),
        Some("string") if s["format"] == "date-time" => {
            out.push(Slot { path: prefix, schema: s.clone(), is_time: true })
        }
        Some("array") => {
            let mut p = prefix;
            p.push(Step::Index);
            slots(&s["items"], schemas, p, out, depth + 1);
        }
        Some("object") | None => {
            for (field, fs) in s["properties"].as_object().into_iter().flatten() {
                let mut p = prefix.clone();
                p.push(Step::Key(field.clone()));
                slots(fs, schemas, p, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// Puts the placeholder at `slot` in `body`, making the objects and one-element arrays on the way.
fn place(body: &mut Value, path: &[Step], schema_at: &Value, schemas: &Value, fx: &Fixture, n: &mut u64) {
    let Some((first, rest)) = path.split_first() else {
        *body = json!(PLACEHOLDER);
        return;
    };
    let s = resolve(schema_at, schemas);
    match first {
        Step::Key(k) => {
            if !body.is_object() {
                *body = json!({});
            }
            let field_schema = &s["properties"][k];
            let entry = body.as_object_mut().unwrap().entry(k.clone()).or_insert_with(|| {
                let fs = resolve(field_schema, schemas);
                if fs["type"] == "object" {
                    valid_object(fs, schemas, fx, n)
                } else {
                    Value::Null
                }
            });
            place(entry, rest, field_schema, schemas, fx, n);
        }
        Step::Index => {
            let item_schema = &s["items"];
            if body.as_array().is_none_or(|a| a.is_empty()) {
                *body = json!([valid_value("", item_schema, schemas, fx, n)]);
            }
            place(&mut body.as_array_mut().unwrap()[0], rest, item_schema, schemas, fx, n);
        }
    }
}

fn slot_name(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Key(k) => k.clone(),
            Step::Index => "[0]".into(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The order operations are swept in: reads, then writes, then state changes, then deletions,
/// so a sweep of one operation leaves the fixture standing for the next.
fn rank(method: &str, path: &str) -> u8 {
    let ends = ["/end", "/deactivate", "/cancel", "/reject", "/approve", "/activate", "/retry", "/fulfil"];
    match method {
        "get" => 0,
        "delete" => 3,
        _ if ends.iter().any(|e| path.ends_with(e)) => 2,
        _ => 1,
    }
}

/// What one request of the sweep is.
struct Probe<'a> {
    method: &'a str,
    path: &'a str,
    op: &'a Value,
    /// The parameter (by name) or body slot the edge goes into, and the edge's text.
    param: Option<(&'a str, &'a str)>,
    body: Option<String>,
}

async fn send(app: &OaApp, fx: &Fixture, probe: &Probe<'_>, n: &mut u64) -> (String, Answer) {
    let mut url = String::new();
    for part in probe.path.split('/').skip(1) {
        url.push('/');
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => match probe.param {
                Some((p, edge)) if p == name => url.push_str(edge),
                _ => url.push_str(&match name {
                    "order_no" => fx.order_no.clone(),
                    "code" if probe.path.contains("/coupons/") => fx.coupon_code.clone(),
                    "code" => fx.redemption_code.clone(),
                    other => fx.ids.get(other).copied().unwrap_or(1).to_string(),
                }),
            },
            None => url.push_str(part),
        }
    }
    let mut query = Vec::new();
    for p in probe.op["parameters"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap();
        if p["in"] != "query" {
            continue;
        }
        match probe.param {
            Some((swept, edge)) if swept == name => query.push(format!("{name}={}", edge.replace('+', "%2B"))),
            _ if p["schema"]["type"] == "integer" => {
                if let Some(id) = fx.ids.get(name).filter(|_| p["required"] == true || name != "resident_id") {
                    query.push(format!("{name}={id}"));
                }
            }
            _ => {}
        }
    }
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let what = format!("{} {url} {}", probe.method.to_uppercase(), probe.body.as_deref().unwrap_or(""));
    let mut req = app.client.request(probe.method.to_uppercase().parse().unwrap(), app.url(&url));
    req = match probe.op["security"][0].as_object().and_then(|s| s.keys().next()).map(String::as_str) {
        Some("OperatorKey") => req.header("X-Api-Key", &fx.operator),
        Some("MerchantKey") => req.header("X-Api-Key", &fx.merchant_key),
        Some("ResidentSession") => bearer(req, &fx.token),
        _ => req,
    };
    for p in probe.op["parameters"].as_array().into_iter().flatten() {
        if p["in"] == "header" {
            *n += 1;
            req = req.header(p["name"].as_str().unwrap(), format!("edge-{n}"));
        }
    }
    if let Some(body) = &probe.body {
        req = req.header("content-type", "application/json").body(body.clone());
    }
    let resp = match tokio::time::timeout(Duration::from_secs(20), req.send()).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => panic!("{what}: the connection was dropped: {e}"),
        Err(_) => panic!("{what}: no answer in 20 s"),
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_else(|e| panic!("{what}: the answer was cut off: {e}"));
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (what, Answer { status, body, headers })
}

#[tokio::test]
async fn every_number_of_every_operation_at_the_i64_edges_is_refused_typed_or_taken_never_a_5xx() {
    let app = spawn_oa_app(None, 300).await;
    let fx = fixture(&app).await;
    let fingerprint = Fingerprint::new(&app).await;
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    let mut ops: Vec<(&str, &str, &Value)> = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((method.as_str(), path.as_str(), op));
        }
    }
    ops.sort_by_key(|(method, path, _)| (rank(method, path), *path));

    let mut n = 0u64;
    let mut before = fingerprint.take(&app).await;
    let (mut sent, mut swept_ops) = (0usize, 0usize);
    for (method, path, op) in ops {
        let body_schema = op["requestBody"]["content"]["application/json; charset=utf-8"]["schema"].clone();
        let has_body = body_schema.is_object();
        let mut body_slots = Vec::new();
        if has_body {
            slots(&body_schema, schemas, Vec::new(), &mut body_slots, 0);
        }
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                (p["in"] == "path" || p["in"] == "query")
                    && (p["schema"]["type"] == "integer" || p["schema"]["format"] == "date-time")
            })
            .collect();
        if params.is_empty() && !body_slots.iter().any(|s| !s.is_time) {
            continue;
        }
        swept_ops += 1;
        let valid_body = |n: &mut u64| {
            has_body.then(|| {
                let s = resolve(&body_schema, schemas);
                valid_object(s, schemas, &fx, n)
            })
        };

        let mut probes: Vec<(Option<String>, String, Option<String>)> = Vec::new();
        for p in &params {
            let name = p["name"].as_str().unwrap().to_owned();
            let edges: Vec<String> = if p["schema"]["format"] == "date-time" {
                TIME_EDGES.iter().map(|t| (*t).to_owned()).collect()
            } else {
                edges_for(&p["schema"])
            };
            for edge in edges {
                let body = valid_body(&mut n).map(|b| b.to_string());
                probes.push((Some(name.clone()), edge, body));
            }
        }
        for slot in &body_slots {
            let edges: Vec<String> = if slot.is_time {
                TIME_EDGES.iter().map(|t| format!("\"{t}\"")).collect()
            } else {
                edges_for(&slot.schema)
            };
            for edge in edges {
                let mut body = valid_body(&mut n).unwrap();
                place(&mut body, &slot.path, &body_schema, schemas, &fx, &mut n);
                let text = body.to_string().replace(&format!("\"{PLACEHOLDER}\""), &edge);
                probes.push((None, format!("{} = {edge}", slot_name(&slot.path)), Some(text)));
            }
        }
        for (param, edge, body) in probes {
            let probe = Probe { method, path, op, param: param.as_deref().map(|p| (p, edge.as_str())), body };
            let (what, a) = send(&app, &fx, &probe, &mut n).await;
            sent += 1;
            if std::env::var("EDGES_TRACE").is_ok() {
                eprintln!("{} {} {}", a.status.as_u16(), a.code(), what.replace('\n', " "));
            }
            let what = format!("{what} [{edge}]");
            assert!(a.status.as_u16() < 500, "{what}: answered {} {}", a.status, a.body);
            if !a.status.is_success() {
                assert!(a.status.is_client_error(), "{what}: answered {}", a.status);
                assert_error_body(&a);
            }
            if method != "get" {
                let after = fingerprint.take(&app).await;
                if !a.status.is_success() {
                    let changed: Vec<_> = after.iter().filter(|row| !before.contains(row)).collect();
                    assert!(changed.is_empty(), "{what}: refused ({} {}) but changed {changed:?}", a.status, a.body);
                }
                before = after;
            }
        }
    }
    assert!(swept_ops > 60, "only {swept_ops} operations take a number");
    assert!(sent > 1000, "only {sent} requests were sent");
    // Still standing after all that: the company's ledger balances and the resident is served.
    app.assert_ledger_balanced().await;
    let me = app.send(bearer(app.client.get(app.url("/mp/v1/me")), &fx.token)).await;
    assert!(me.status.is_success() || me.status == 401, "{}", me.body);
}

/// A partial refund of an order that earned 100,000,000,000 points takes back its share, which
/// as points × refund passes i64 before it is divided.
#[tokio::test]
async fn a_partial_refund_of_the_biggest_order_takes_back_its_share_of_the_points() {
    let app = spawn_oa_app(None, 300).await;
    let fx = fixture(&app).await;
    let path = format!("/merchant/v1/orders/{}/refunds", fx.order_no);
    let r = app.post(&fx.merchant_key, &path, json!({"refund_no": "r-1", "amount": 99_999_999})).await.expect(201);
    assert_eq!(r["amount"], 99_999_999);
    // 100,000,000,000 × 99,999,999 / 100,000,000, rounded down.
    assert_eq!(r["points_back"], 99_999_999_000i64);
    let rest = app.post(&fx.merchant_key, &path, json!({"refund_no": "r-2", "amount": 1})).await.expect(201);
    assert_eq!(rest["points_back"], 1_000, "the last fen takes back what is left");
    app.assert_ledger_balanced().await;
}

/// A `MCHTRANSFER.BILL.FINISHED` notification for `out_no`, signed by WeChat Pay's key, with
/// `amount_text` as the transfer amount and `timestamp` as `Wechatpay-Timestamp`.
fn notification(id: &str, out_no: &str, amount_text: &str, timestamp: &str) -> (String, Vec<(&'static str, String)>) {
    use wechat_mock::pay::{config, sign};
    let plaintext = format!(
        r#"{{"out_bill_no":"{out_no}","transfer_bill_no":"T{id}","state":"SUCCESS","mch_id":"{}","transfer_amount":{amount_text},"openid":"o","create_time":"2026-01-01T00:00:00+08:00","update_time":"2026-01-01T00:00:00+08:00"}}"#,
        config::MCH_ID
    );
    let nonce = "edgenonce012";
    let ciphertext = sign::aes_gcm_encrypt(config::API_V3_KEY, nonce, "mch_payment", &plaintext).unwrap();
    let body = json!({
        "id": id, "create_time": "2026-01-01T00:00:00+08:00", "resource_type": "encrypt-resource",
        "event_type": "MCHTRANSFER.BILL.FINISHED", "summary": "商家转账单据终态通知",
        "resource": {"original_type": "mch_payment", "algorithm": "AEAD_AES_256_GCM", "ciphertext": ciphertext,
                     "associated_data": "mch_payment", "nonce": nonce}
    })
    .to_string();
    let key = sign::private_key(config::WECHATPAY_PRIVATE_KEY_PEM).unwrap();
    let signature = sign::rsa_sign(&key, &sign::v3_response_message(timestamp, "edge-nonce", &body));
    let headers = vec![
        ("Wechatpay-Timestamp", timestamp.to_owned()),
        ("Wechatpay-Nonce", "edge-nonce".to_owned()),
        ("Wechatpay-Signature", signature),
        ("Wechatpay-Serial", config::WECHATPAY_PUBLIC_KEY_ID.to_owned()),
        ("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048".to_owned()),
    ];
    (body, headers)
}

async fn notify(app: &OaApp, (body, headers): (String, Vec<(&'static str, String)>)) -> Answer {
    let mut req = app.client.post(app.url("/wechat/pay/notify")).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    match tokio::time::timeout(Duration::from_secs(20), req.body(body).send()).await {
        Ok(Ok(resp)) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
            Answer { status, body, headers }
        }
        other => panic!("the notification got no answer: {other:?}"),
    }
}

#[tokio::test]
async fn pay_notifications_with_numbers_past_i64_or_absurd_timestamps_are_refused_and_change_nothing() {
    let app = spawn_pay_app(|_| {}).await;
    // A follower grabs a transfer red packet: its payout waits for the resident's confirmation.
    let user = app.mock.add_user();
    let pusher = app.pusher(PushMode::Safe);
    app.say(&pusher, &pusher.follow(&user.oa_openid)).await;
    let token = app.login(&user).await;
    let (from, until) = (now_plus(time::Duration::minutes(-1)), now_plus(time::Duration::hours(2)));
    let c = app
        .post(
            &app.root_key,
            "/admin/v1/red-packets",
            json!({"owner_org_id": app.company_id, "terms": {"theme": "红包", "channel": "transfer",
                   "amount_mode": "fixed", "total_fen": 66, "shares": 1, "starts_at": from, "ends_at": until,
                   "audience": "followers"}}),
        )
        .await
        .expect(201);
    let id = c["id"].as_i64().unwrap();
    app.post(&app.root_key, &format!("/admin/v1/red-packets/{id}/activate"), json!({})).await.expect(200);
    app.send(bearer(app.client.post(app.url(&format!("/mp/v1/red-packets/{id}/grabs"))), &token)).await.expect(201);
    eventually("the transfer waits for the resident", || async {
        app.count("SELECT COUNT(*) FROM payouts WHERE state = 'awaiting_confirmation'").await == 1
    })
    .await;
    let (out_no,): (String,) = sqlx::query_as("SELECT out_no FROM payouts").fetch_one(app.db.reader()).await.unwrap();
    let state = || async {
        let payout: (String, i64, i64) =
            sqlx::query_as("SELECT state, updated_at, next_at FROM payouts").fetch_one(app.db.reader()).await.unwrap();
        let events = app.count("SELECT COUNT(*) FROM payout_events").await;
        let notes = app.count("SELECT COUNT(*) FROM pay_notifications").await;
        (payout, events, notes)
    };
    let before = state().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    // Amounts no payout can have: past i64 (a cast wraps them negative), negative, fractional.
    for (i, amount) in
        ["18446744073709551615", "9223372036854775808", "-1", "-9223372036854775808", "66.0", "1e2"].iter().enumerate()
    {
        let a = notify(&app, notification(&format!("EV-amount-{i}"), &out_no, amount, &now.to_string())).await;
        assert_eq!(a.status, 400, "transfer_amount {amount}: {}", a.body);
        assert_eq!(a.body["code"], "FAIL", "WeChat's own error shape: {}", a.body);
        assert_eq!(state().await, before, "transfer_amount {amount} changed something");
    }
    // Timestamps at the edges of i64 and of the window, each well signed over what it says.
    let stale = [now - 301, now + 301].map(|t| t.to_string());
    let edges = EDGES.iter().map(|e| (*e).to_owned()).chain(stale).chain(["".into(), " 1".into(), "1e9".into()]);
    for (i, ts) in edges.enumerate() {
        let a = notify(&app, notification(&format!("EV-time-{i}"), &out_no, "66", &ts)).await;
        assert_eq!(a.status, 401, "Wechatpay-Timestamp {ts:?}: {}", a.body);
        assert_eq!(state().await, before, "Wechatpay-Timestamp {ts:?} changed something");
    }
    // The same notification with a true amount and time is taken: the refusals were for the numbers.
    let a = notify(&app, notification("EV-good", &out_no, "66", &now.to_string())).await;
    assert_eq!(a.status, 204, "{}", a.body);
    eventually("settled", || async { app.count("SELECT COUNT(*) FROM payouts WHERE state = 'succeeded'").await == 1 })
        .await;
}

/// A fake WeChat API answering `stable_token` and `qrcode/create` with lifetimes at i64::MAX.
async fn absurd_wechat() -> String {
    use poem::{handler, post, web::Json, Route, Server};
    #[handler]
    fn token() -> Json<Value> {
        Json(json!({"access_token": "edge-token", "expires_in": i64::MAX}))
    }
    #[handler]
    fn qr() -> Json<Value> {
        Json(json!({"ticket": "t", "expire_seconds": i64::MAX, "url": "http://weixin.qq.com/q/edge"}))
    }
    let port = free_port();
    let app = Route::new().at("/cgi-bin/stable_token", post(token)).at("/cgi-bin/qrcode/create", post(qr));
    tokio::spawn(Server::new(poem::listener::TcpListener::bind(format!("127.0.0.1:{port}"))).run(app));
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    base
}

#[tokio::test]
async fn lifetimes_wechat_answers_past_any_clock_are_capped_not_overflowed() {
    let app = spawn_oa_app(None, 300).await;
    let base = absurd_wechat().await;
    let tokens = std::sync::Arc::new(linli::db::wechat::TokenTable(app.db.clone()));
    let client = linli::wechat::api::WechatClient::new(&base, tokens);
    let creds = linli::wechat::api::AppCredentials {
        appid: "wx_edge_app".into(),
        secret: linli::config::Secret::new("edge-secret"),
    };
    let started = linli::db::now_ms();
    assert_eq!(client.access_token(&creds).await.unwrap(), "edge-token");
    let (expires_at,): (i64,) = sqlx::query_as("SELECT expires_at FROM wechat_tokens WHERE appid = $1")
        .bind("wx_edge_app")
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    assert!(
        (started..=linli::db::now_ms() + 7_200_000).contains(&expires_at),
        "a token believed to live until {expires_at}"
    );
    let code = client.create_qr_scene(&creds, "edge", 600).await.unwrap();
    assert_eq!(code.expire_seconds, Some(600), "a code lives as long as it was asked to at most");
}
