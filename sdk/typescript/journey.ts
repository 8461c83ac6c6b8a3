// The TypeScript SDK proof's journey: an operator sets up a community, a coupon and a red packet;
// residents log in to the mini-program API, bind to their homes, check in, claim the coupon, grab
// the red packet and read their wallet — through openapi-fetch typed by openapi-typescript from
// openapi/openapi.yaml.
//
// Run by sdk/typescript/run.sh, which generates ./schema.ts, type-checks this file against it
// (strict: a spec change that breaks the client's types fails before anything runs), starts linli
// and wechat-mock and sets:
//   LINLI_URL, WECHAT_MOCK_URL  where they listen
//   LINLI_BIN, DATABASE_URL     to make the first admin key with `linli keys create`
//   LINLI_OA_COMPANY_ID         the id the first company gets (its official account's)
//
// Every call to linli's own API (/admin/v1 and /mp/v1) goes through the typed client. Plain fetch
// talks only to the mock's control API (/__mock/), for what WeChat itself would do: make a user and
// hand the mini-program a `wx.login` code.

import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";

import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
type Linli = Client<paths>;
type ErrorBody = Schemas["ErrorBody"];

function setting(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through sdk/typescript/run.sh`);
  return value;
}

const LINLI_URL = setting("LINLI_URL");
const MOCK_URL = setting("WECHAT_MOCK_URL");
const LINLI_BIN = setting("LINLI_BIN");
const COMPANY_ID = Number(setting("LINLI_OA_COMPANY_ID"));

class CheckFailed extends Error {}

function ensure(condition: boolean, message: string): asserts condition {
  if (!condition) throw new CheckFailed(message);
}

/** What openapi-fetch answers: the parsed body on success, the typed error body otherwise. */
interface Answer {
  data?: unknown;
  error?: unknown;
  response: Response;
}

function shown(answer: Answer): string {
  return JSON.stringify(answer.error ?? answer.data ?? null);
}

/** The body of a successful answer, which must have `status`. */
function ok<A extends Answer>(answer: A, status: number): NonNullable<A["data"]> {
  const { response, data } = answer;
  if (response.status !== status || data === undefined || data === null) {
    throw new CheckFailed(`${response.url}: expected ${status}, got ${response.status}: ${shown(answer)}`);
  }
  return data as NonNullable<A["data"]>;
}

/** A refusal: `status` with the error body `{code, message, request_id}` naming `code`. */
function refused<A extends Answer & { error?: ErrorBody }>(answer: A, status: number, code: string): ErrorBody {
  const { response, error } = answer;
  if (response.status !== status || error === undefined) {
    throw new CheckFailed(`${response.url}: expected ${status} ${code}, got ${response.status}: ${shown(answer)}`);
  }
  ensure(error.code === code, `expected code ${code}, got ${JSON.stringify(error)}`);
  ensure(error.message.length > 0 && error.request_id.length > 0, `an incomplete error body: ${JSON.stringify(error)}`);
  ensure(
    response.headers.get("x-request-id") === error.request_id,
    `the body's request_id ${error.request_id} is not the header's ${response.headers.get("x-request-id")}`,
  );
  return error;
}

const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();
const aMinuteAgo = () => new Date(Date.now() - 60_000).toISOString();
const yuan = (fen: number) => `${Math.trunc(fen / 100)}.${String(fen % 100).padStart(2, "0")}`;

// --- what WeChat does (the mock's control API, plain fetch) -----------------------------------------

interface WechatUser {
  unionid: string;
  oa_openid: string;
  mp_openid: string;
}

async function wechat<T>(path: string): Promise<T> {
  const r = await fetch(`${MOCK_URL}${path}`, { method: "POST" });
  if (!r.ok) throw new CheckFailed(`wechat-mock ${path} answered ${r.status}: ${await r.text()}`);
  return (await r.json()) as T;
}

async function newWechatUser(): Promise<WechatUser> {
  const user = await wechat<WechatUser>("/__mock/users");
  for (const field of ["unionid", "oa_openid", "mp_openid"] as const) {
    ensure(Boolean(user[field]), `the mock's new user has no ${field}: ${JSON.stringify(user)}`);
  }
  return user;
}

async function loginCode(user: WechatUser): Promise<string> {
  return (await wechat<{ code: string }>(`/__mock/users/${user.unionid}/login-code`)).code;
}

// --- linli, through the typed client -----------------------------------------------------------------

const anonymous: Linli = createClient<paths>({ baseUrl: LINLI_URL });

/** An admin-API client: the key goes in `X-Api-Key`. */
function operator(key: string): Linli {
  return createClient<paths>({ baseUrl: LINLI_URL, headers: { "X-Api-Key": key } });
}

/** A mini-program client: `Authorization: Bearer <access_token>`. */
function resident(session: Schemas["Session"]): Linli {
  return createClient<paths>({ baseUrl: LINLI_URL, headers: { Authorization: `Bearer ${session.access_token}` } });
}

/** `linli keys create --org 1 --role admin` on the same database; the secret is the last line. */
function firstAdminKey(): string {
  const done = spawnSync(LINLI_BIN, ["keys", "create", "--org", "1", "--role", "admin", "--name", "sdk-ts proof"], {
    encoding: "utf8",
    timeout: 60_000,
    env: process.env,
  });
  if (done.status !== 0) {
    throw new CheckFailed(`linli keys create failed (${done.status ?? done.signal}): ${done.stderr.trim()}`);
  }
  const secret = done.stdout.trim().split("\n").at(-1)?.trim() ?? "";
  ensure(secret.startsWith("lk_"), `no key secret on the last line of: ${JSON.stringify(done.stdout)}`);
  return secret;
}

async function logIn(user: WechatUser): Promise<Schemas["Session"]> {
  const code = await loginCode(user);
  return ok(await anonymous.POST("/mp/v1/sessions", { body: { code } }), 201);
}

// --- the checks ----------------------------------------------------------------------------------------

type Step = [name: string, run: () => Promise<string | void>];

class Run {
  passed = 0;
  failed = 0;
  skipped = 0;

  /** Runs `steps` in order; after a failure the rest of the group is skipped. */
  async group(title: string, steps: Step[]): Promise<boolean> {
    console.log(`\n${title}`);
    for (const [i, [name, step]] of steps.entries()) {
      let detail: string | void;
      try {
        detail = await step();
      } catch (err) {
        this.failed += 1;
        console.log(`  FAIL ${name}: ${err instanceof Error ? err.message : String(err)}`);
        if (!(err instanceof CheckFailed) && err instanceof Error && err.stack) console.log(err.stack);
        for (const [skipped] of steps.slice(i + 1)) {
          this.skipped += 1;
          console.log(`  skip ${skipped}`);
        }
        return false;
      }
      this.passed += 1;
      console.log(`  ok   ${name}${detail ? `: ${detail}` : ""}`);
    }
    return true;
  }

  summary(): number {
    const skipped = this.skipped ? `, ${this.skipped} skipped` : "";
    console.log(`\nsdk-ts: ${this.passed} passed, ${this.failed} failed${skipped}`);
    return this.failed === 0 && this.passed > 0 ? 0 : 1;
  }
}

interface Setup {
  admin: Linli;
  community: number;
  coupon: number;
  redPacket: number;
}

interface Resident {
  me: Linli;
  session: Schemas["Session"];
  code?: string;
  binding?: number;
  coupon?: Schemas["ClaimedCoupon"];
  share?: Schemas["MyRedPacket"];
}

const ZHANG = { name: "张三", phone: "13800138000" };
const SHARE_FEN = 100;
const SHARES = 3;

async function main(): Promise<number> {
  const run = new Run();
  const s: Partial<Setup> = {};
  const setup = (): Setup => s as Setup;

  // The operator: a company, a community with rooms and a roster, a coupon and a red packet for the
  // community's verified residents.
  const ready = await run.group("operator (admin API, X-Api-Key)", [
    [
      "first admin key",
      async () => {
        s.admin = operator(firstAdminKey());
        const me = ok(await s.admin.GET("/admin/v1/me"), 200);
        ensure(me.role === "admin" && me.org.kind === "platform", `the key is ${JSON.stringify(me)}`);
        return "made with `linli keys create --org 1 --role admin`, a platform admin";
      },
    ],
    [
      "create_org: company and community",
      async () => {
        const admin = setup().admin;
        const company = ok(
          await admin.POST("/admin/v1/orgs", { body: { parent_id: 1, kind: "company", name: "阳光物业" } }),
          201,
        );
        ensure(company.id === COMPANY_ID, `the company got id ${company.id}, not ${COMPANY_ID} (LINLI_OA_COMPANY_ID)`);
        const community = ok(
          await admin.POST("/admin/v1/orgs", { body: { parent_id: company.id, kind: "community", name: "阳光花园" } }),
          201,
        );
        s.community = community.id;
        return `company ${company.id}, community ${community.id}`;
      },
    ],
    [
      "import_rooms and import_roster as JSON",
      async () => {
        const { admin, community } = setup();
        const params = { path: { community_id: community } };
        const rooms = ok(
          await admin.POST("/admin/v1/communities/{community_id}/rooms/import", {
            params,
            body: { rows: ["101", "102"].map((number) => ({ building: "1", unit: "1", number })) },
          }),
          200,
        );
        ensure(rooms.created === 2 && rooms.rejected.length === 0, `rooms import: ${JSON.stringify(rooms)}`);
        const roster = ok(
          await admin.POST("/admin/v1/communities/{community_id}/roster/import", {
            params,
            body: { rows: [{ ...ZHANG, building: "1", unit: "1", number: "101", role: "owner" }] },
          }),
          200,
        );
        ensure(roster.created === 1 && roster.rejected.length === 0, `roster import: ${JSON.stringify(roster)}`);
        return `rooms 1-1-101, 1-1-102; ${ZHANG.name} owns 1-1-101`;
      },
    ],
    [
      "create_coupon_template for verified residents",
      async () => {
        const t = ok(
          await setup().admin.POST("/admin/v1/coupon-templates", {
            body: {
              owner_org_id: COMPANY_ID,
              terms: {
                category: "水果",
                title: "满50减10",
                kind: "cash",
                amount_off: 1000,
                min_spend: 5000,
                valid_days: 7,
                claim_from: aMinuteAgo(),
                claim_until: inAnHour(),
                stock_total: 10,
                per_resident_limit: 1,
                audience: "verified_residents",
              },
            },
          }),
          201,
        );
        ensure(t.state === "active" && t.company_id === COMPANY_ID, `template: ${JSON.stringify(t)}`);
        s.coupon = t.id;
        return `template ${t.id}: ${t.terms.title}, ${t.terms.stock_total} in stock`;
      },
    ],
    [
      "create_red_packet (balance channel) and activate_red_packet",
      async () => {
        const { admin, community } = setup();
        const draft = ok(
          await admin.POST("/admin/v1/red-packets", {
            body: {
              owner_org_id: COMPANY_ID,
              terms: {
                theme: "邻里红包",
                channel: "balance",
                amount_mode: "fixed",
                total_fen: SHARE_FEN * SHARES,
                shares: SHARES,
                starts_at: aMinuteAgo(),
                ends_at: inAnHour(),
                audience: "verified_residents",
                audience_communities: [community],
              },
            },
          }),
          201,
        );
        ensure(draft.state === "draft", `a new red packet is ${draft.state}`);
        const active = ok(
          await admin.POST("/admin/v1/red-packets/{red_packet_id}/activate", {
            params: { path: { red_packet_id: draft.id } },
          }),
          200,
        );
        ensure(active.state === "active", `after activation: ${active.state}`);
        s.redPacket = active.id;
        return `red packet ${active.id}: ${yuan(active.total_fen)} yuan in ${active.shares} shares, ${active.state}`;
      },
    ],
  ]);
  if (!ready) return run.summary();
  const { admin, community, coupon, redPacket } = setup();

  // 张三 is on the roster: verified at once, then everything a resident does.
  const zhang: Partial<Resident> = {};
  const z = (): Resident => zhang as Resident;
  await run.group(`resident ${ZHANG.name}: roster match (mini-program API, Bearer)`, [
    [
      "create_session with a wx.login code",
      async () => {
        const code = await loginCode(await newWechatUser());
        const session = ok(await anonymous.POST("/mp/v1/sessions", { body: { code } }), 201);
        ensure(session.token_type === "Bearer", `token_type ${session.token_type}`);
        Object.assign(zhang, { me: resident(session), session, code });
        return `resident ${session.resident_id}`;
      },
    ],
    [
      "get_my_profile",
      async () => {
        const profile = ok(await z().me.GET("/mp/v1/me"), 200);
        ensure(profile.resident_id === z().session.resident_id, `profile of resident ${profile.resident_id}`);
        const kinds = profile.identities.map((i) => i.app_kind).sort();
        ensure(kinds.includes("mp"), `no mini-program identity: ${kinds.join(", ")}`);
        return `resident ${profile.resident_id}, identities ${kinds.join(", ")}`;
      },
    ],
    [
      "list_communities finds 阳光花园",
      async () => {
        const found = ok(await z().me.GET("/mp/v1/communities", { params: { query: { q: "阳光" } } }), 200);
        ensure(
          found.items.some((c) => c.id === community),
          `community ${community} not found: ${JSON.stringify(found.items)}`,
        );
        return `${found.page.total} found`;
      },
    ],
    [
      "request_binding 1-1-101 as owner → verified",
      async () => {
        const b = ok(
          await z().me.POST("/mp/v1/me/bindings", {
            body: { community_id: community, building: "1", unit: "1", number: "101", role: "owner", ...ZHANG },
          }),
          201,
        );
        ensure(
          b.state === "verified" && b.verified_by === "roster" && b.room_label === "1-1-101",
          `binding: ${JSON.stringify(b)}`,
        );
        zhang.binding = b.id;
        return `binding ${b.id} ${b.state} by ${b.verified_by}`;
      },
    ],
    [
      "list_my_bindings → verified",
      async () => {
        const mine = ok(await z().me.GET("/mp/v1/me/bindings"), 200);
        const b = mine.items.find((item) => item.id === z().binding);
        ensure(b?.state === "verified", `binding ${z().binding} among mine: ${JSON.stringify(mine.items)}`);
        return `${b.room_label} ${b.role} ${b.state}`;
      },
    ],
    [
      "check_in, then again the same day",
      async () => {
        const first = ok(await z().me.POST("/mp/v1/me/checkins", { body: { company_id: COMPANY_ID } }), 200);
        ensure(!first.already_checked_in && first.points > 0 && first.streak === 1, `check-in: ${JSON.stringify(first)}`);
        const again = ok(await z().me.POST("/mp/v1/me/checkins", { body: { company_id: COMPANY_ID } }), 200);
        ensure(
          again.already_checked_in && again.points === 0 && again.balance === first.balance,
          `a second check-in: ${JSON.stringify(again)}`,
        );
        return `+${first.points} points, balance ${first.balance}; again: already checked in`;
      },
    ],
    [
      "list_my_points_ledger has the check-in",
      async () => {
        const ledger = ok(
          await z().me.GET("/mp/v1/me/points/ledger", { params: { query: { company_id: COMPANY_ID } } }),
          200,
        );
        const row = ledger.items.find((r) => r.source === "checkin");
        ensure(row !== undefined && row.amount > 0, `no check-in row: ${JSON.stringify(ledger.items)}`);
        return `${ledger.page.total} row(s), balance after the check-in ${row.balance_after}`;
      },
    ],
    [
      "list_claimable_coupons, claim_coupon with an Idempotency-Key",
      async () => {
        const offered = ok(
          await z().me.GET("/mp/v1/coupons", { params: { query: { company_id: COMPANY_ID } } }),
          200,
        );
        const mine = offered.items.find((c) => c.template_id === coupon);
        ensure(mine?.my_remaining === 1, `template ${coupon} offered as ${JSON.stringify(offered.items)}`);
        const params = { path: { template_id: coupon }, header: { "Idempotency-Key": randomUUID() } };
        const claimed = ok(await z().me.POST("/mp/v1/coupons/{template_id}/claims", { params }), 201);
        ensure(claimed.state === "unused" && claimed.template_id === coupon, `claimed: ${JSON.stringify(claimed)}`);
        // A retry with the same key is the same claim, not a second one.
        const retried = ok(await z().me.POST("/mp/v1/coupons/{template_id}/claims", { params }), 201);
        ensure(retried.id === claimed.id, `the retry claimed coupon ${retried.id}, not ${claimed.id}`);
        zhang.coupon = claimed;
        return `coupon ${claimed.code}, ${claimed.state}, valid until ${claimed.valid_until}; the retry answered the same`;
      },
    ],
    [
      "a second claim → 409 ErrorBody(code=limit_reached)",
      async () => {
        const params = { path: { template_id: coupon }, header: { "Idempotency-Key": randomUUID() } };
        const err = refused(await z().me.POST("/mp/v1/coupons/{template_id}/claims", { params }), 409, "limit_reached");
        return `409 ${err.code}: ${err.message}`;
      },
    ],
    [
      "list_my_coupons",
      async () => {
        const mine = ok(await z().me.GET("/mp/v1/me/coupons", { params: { query: { state: "unused" } } }), 200);
        ensure(
          mine.items.length === 1 && mine.items[0]?.code === z().coupon?.code,
          `my coupons: ${JSON.stringify(mine.items)}`,
        );
        return `${mine.items.length} unused: ${mine.items[0]?.code}`;
      },
    ],
    [
      "list_open_red_packets, grab_red_packet",
      async () => {
        const open = ok(await z().me.GET("/mp/v1/red-packets", { params: { query: { company_id: COMPANY_ID } } }), 200);
        const rp = open.items.find((p) => p.id === redPacket);
        ensure(rp?.shares_left === SHARES, `red packet ${redPacket} listed as ${JSON.stringify(open.items)}`);
        const share = ok(
          await z().me.POST("/mp/v1/red-packets/{red_packet_id}/grabs", {
            params: { path: { red_packet_id: redPacket } },
          }),
          201,
        );
        ensure(
          share.amount_fen === SHARE_FEN && share.in_balance && share.channel === "balance",
          `share: ${JSON.stringify(share)}`,
        );
        zhang.share = share;
        return `${yuan(share.amount_fen)} yuan, in the balance`;
      },
    ],
    [
      "a second grab → 409 ErrorBody(code=already_grabbed)",
      async () => {
        const again = await z().me.POST("/mp/v1/red-packets/{red_packet_id}/grabs", {
          params: { path: { red_packet_id: redPacket } },
        });
        const err = refused(again, 409, "already_grabbed");
        return `409 ${err.code}: ${err.message}`;
      },
    ],
    [
      "list_my_red_packets, get_my_wallet, list_my_wallet_entries",
      async () => {
        const mine = ok(await z().me.GET("/mp/v1/me/red-packets"), 200);
        ensure(
          mine.items.length === 1 && mine.items[0]?.id === z().share?.id,
          `my red packets: ${JSON.stringify(mine.items)}`,
        );
        const wallet = ok(await z().me.GET("/mp/v1/me/wallet"), 200);
        ensure(wallet.balance_fen === SHARE_FEN, `wallet: ${JSON.stringify(wallet)}`);
        const entries = ok(await z().me.GET("/mp/v1/me/wallet/entries"), 200);
        const credit = entries.items.find((e) => e.source === "red_packet");
        ensure(
          credit?.amount_fen === SHARE_FEN && credit.balance_after === SHARE_FEN,
          `wallet entries: ${JSON.stringify(entries.items)}`,
        );
        return `balance ${yuan(wallet.balance_fen)} yuan, credited by the red packet`;
      },
    ],
    [
      "a reused login code → 401 ErrorBody(code=unauthorized)",
      async () => {
        const err = refused(
          await anonymous.POST("/mp/v1/sessions", { body: { code: z().code ?? "" } }),
          401,
          "unauthorized",
        );
        return `401 ${err.code}: ${err.message}`;
      },
    ],
    [
      "a bad bearer token → 401 ErrorBody(code=unauthorized)",
      async () => {
        const forged = resident({ ...z().session, access_token: "ms_not_a_session_token" });
        const err = refused(await forged.GET("/mp/v1/me/wallet"), 401, "unauthorized");
        return `401 ${err.code}: ${err.message}`;
      },
    ],
    [
      "delete_session, then the token → 401",
      async () => {
        const out = await z().me.DELETE("/mp/v1/sessions/current");
        ensure(out.response.status === 204, `log out answered ${out.response.status}: ${shown(out)}`);
        refused(await z().me.GET("/mp/v1/me"), 401, "unauthorized");
        return "logged out; the old token is refused";
      },
    ],
  ]);

  // 李四 is not on the roster: pending, outside the red packet's audience until an operator of the
  // community approves the binding.
  const li: Partial<Resident> = {};
  const l = (): Resident => li as Resident;
  await run.group("resident 李四: no roster match, reviewed", [
    [
      "request_binding → pending",
      async () => {
        const session = await logIn(await newWechatUser());
        Object.assign(li, { me: resident(session), session });
        const b = ok(
          await l().me.POST("/mp/v1/me/bindings", {
            body: {
              community_id: community,
              building: "1",
              unit: "1",
              number: "102",
              role: "tenant",
              name: "李四",
              phone: "13900139000",
            },
          }),
          201,
        );
        ensure(b.state === "pending", `binding: ${JSON.stringify(b)}`);
        li.binding = b.id;
        return `binding ${b.id} ${b.state}`;
      },
    ],
    [
      "grab_red_packet while pending → 403 ErrorBody(code=forbidden)",
      async () => {
        const err = refused(
          await l().me.POST("/mp/v1/red-packets/{red_packet_id}/grabs", {
            params: { path: { red_packet_id: redPacket } },
          }),
          403,
          "forbidden",
        );
        return `403 ${err.code}: ${err.message}`;
      },
    ],
    [
      "list_bindings and approve_binding (an operator key of the community)",
      async () => {
        const made = ok(
          await admin.POST("/admin/v1/api-keys", {
            body: { org_id: community, role: "operator", name: "front desk" },
          }),
          201,
        );
        const desk = operator(made.secret);
        const queue = ok(
          await desk.GET("/admin/v1/bindings", { params: { query: { community_id: community, state: "pending" } } }),
          200,
        );
        const waiting = queue.items.map((b) => b.id);
        ensure(waiting.length === 1 && waiting[0] === l().binding, `queue: ${JSON.stringify(waiting)}`);
        const b = ok(
          await desk.POST("/admin/v1/bindings/{binding_id}/approve", {
            params: { path: { binding_id: l().binding ?? 0 } },
            body: { reason: "租赁合同已核验" },
          }),
          200,
        );
        ensure(b.state === "verified" && b.verified_by === "operator", `binding: ${JSON.stringify(b)}`);
        return `binding ${b.id} approved by key ${made.key.prefix}`;
      },
    ],
    [
      "grab_red_packet once verified, get_my_wallet",
      async () => {
        const share = ok(
          await l().me.POST("/mp/v1/red-packets/{red_packet_id}/grabs", {
            params: { path: { red_packet_id: redPacket } },
          }),
          201,
        );
        const wallet = ok(await l().me.GET("/mp/v1/me/wallet"), 200);
        ensure(wallet.balance_fen === share.amount_fen, `wallet ${wallet.balance_fen}, share ${share.amount_fen}`);
        return `${yuan(share.amount_fen)} yuan, balance ${yuan(wallet.balance_fen)} yuan`;
      },
    ],
    [
      "get_red_packet (operator): the figures add up",
      async () => {
        const rp = ok(
          await admin.GET("/admin/v1/red-packets/{red_packet_id}", { params: { path: { red_packet_id: redPacket } } }),
          200,
        );
        const { grabbed, grabbed_fen, paid_fen } = rp.figures;
        ensure(
          grabbed === 2 && grabbed_fen === 2 * SHARE_FEN && paid_fen === grabbed_fen,
          `figures: ${JSON.stringify(rp.figures)}`,
        );
        return `${grabbed} of ${rp.shares} shares grabbed, ${yuan(paid_fen)} yuan paid into balances`;
      },
    ],
  ]);
  return run.summary();
}

main().then(
  (status) => {
    process.exitCode = status;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
