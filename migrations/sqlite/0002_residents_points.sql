-- Residents and their WeChat identities, OA pushes (dedupe), the shared access-token cache,
-- points programmes, accounts and the append-only ledger, check-ins and referrals.
-- Flags are 0/1 integers, times unix milliseconds, as in 0001.

CREATE TABLE residents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- WeChat's unionid: one person across every app of one Open Platform account, when known.
    unionid     TEXT,
    -- The code a resident's invitations carry (parametric QR scenes, mini-program links).
    invite_code TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX residents_unionid ON residents (unionid) WHERE unionid IS NOT NULL;

-- One row per (app, openid): the same person has a different openid in each app.
CREATE TABLE resident_identities (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    resident_id        INTEGER NOT NULL REFERENCES residents (id),
    app_kind           TEXT    NOT NULL CHECK (app_kind IN ('oa', 'mp')),
    appid              TEXT    NOT NULL,
    openid             TEXT    NOT NULL,
    subscribed         INTEGER NOT NULL DEFAULT 0,
    first_followed_at  INTEGER,
    last_followed_at   INTEGER,
    last_unfollowed_at INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE UNIQUE INDEX resident_identities_openid ON resident_identities (appid, openid);
CREATE INDEX resident_identities_resident ON resident_identities (resident_id);

-- Every follow and unfollow, in order.
CREATE TABLE follow_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    identity_id INTEGER NOT NULL REFERENCES resident_identities (id),
    resident_id INTEGER NOT NULL REFERENCES residents (id),
    kind        TEXT    NOT NULL CHECK (kind IN ('follow', 'unfollow')),
    scene       TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX follow_events_resident ON follow_events (resident_id, id);

-- One row per distinct OA push: the durable dedupe record shared by every instance, with the
-- answer given, so a redelivery gets the same answer.
CREATE TABLE wechat_pushes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    appid       TEXT    NOT NULL,
    dedupe_key  TEXT    NOT NULL,
    openid      TEXT    NOT NULL,
    msg_type    TEXT    NOT NULL,
    event       TEXT,
    reply       TEXT,
    received_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX wechat_pushes_dedupe ON wechat_pushes (appid, dedupe_key);

-- The access token of each app, shared by every instance; a lease lets one refresh at a time.
CREATE TABLE wechat_tokens (
    appid        TEXT PRIMARY KEY,
    access_token TEXT,
    expires_at   INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE points_programmes (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id         INTEGER NOT NULL UNIQUE REFERENCES orgs (id),
    name               TEXT    NOT NULL,
    -- The programme's time zone as a fixed UTC offset in minutes (Asia/Shanghai: 480).
    utc_offset_minutes INTEGER NOT NULL,
    follow_points      INTEGER NOT NULL,
    checkin_points     INTEGER NOT NULL,
    -- JSON: [{"day": 7, "points": 20, "repeat": true}]
    streak_bonuses     TEXT    NOT NULL,
    referral_points    INTEGER NOT NULL,
    checkin_keyword    TEXT    NOT NULL,
    checkin_menu_key   TEXT    NOT NULL,
    default_reply      TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE points_accounts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    programme_id INTEGER NOT NULL REFERENCES points_programmes (id),
    resident_id  INTEGER NOT NULL REFERENCES residents (id),
    balance      INTEGER NOT NULL CHECK (balance >= 0),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX points_accounts_resident ON points_accounts (programme_id, resident_id);

-- Append-only: rows are never updated. The account balance equals the sum of its rows.
CREATE TABLE points_ledger (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    programme_id    INTEGER NOT NULL REFERENCES points_programmes (id),
    account_id      INTEGER NOT NULL REFERENCES points_accounts (id),
    resident_id     INTEGER NOT NULL REFERENCES residents (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('issue', 'earn', 'spend', 'redeem', 'refund', 'expire', 'adjust')),
    source          TEXT    NOT NULL CHECK (source IN ('follow', 'checkin', 'purchase', 'referral', 'task', 'redemption', 'operator')),
    -- Unique per programme: posting the same reference twice has one effect.
    reference       TEXT    NOT NULL,
    amount          INTEGER NOT NULL,
    balance_after   INTEGER NOT NULL,
    operator_key_id INTEGER,
    operator        TEXT,
    remark          TEXT,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX points_ledger_reference ON points_ledger (programme_id, reference);
CREATE INDEX points_ledger_account ON points_ledger (account_id, id);
CREATE INDEX points_ledger_programme ON points_ledger (programme_id, id);

-- One check-in per resident per local day of the programme; `day` counts days since 1970-01-01
-- in the programme's time zone.
CREATE TABLE checkins (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    programme_id INTEGER NOT NULL REFERENCES points_programmes (id),
    resident_id  INTEGER NOT NULL REFERENCES residents (id),
    day          INTEGER NOT NULL,
    streak       INTEGER NOT NULL,
    points       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX checkins_day ON checkins (programme_id, resident_id, day);

-- Who brought whom: at most one inviter per invitee.
CREATE TABLE referrals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    invitee_id  INTEGER NOT NULL UNIQUE REFERENCES residents (id),
    inviter_id  INTEGER NOT NULL REFERENCES residents (id),
    scene       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
