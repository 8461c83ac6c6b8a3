-- Red-packet campaigns and their shares, grabs, the wallet, payouts to WeChat Pay (the
-- transactional outbox and its history), WeChat Pay notifications, reconciliation runs.
-- Money is fen in integers; times unix milliseconds, as in 0001.

CREATE TABLE rp_campaigns (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_org_id       INTEGER NOT NULL REFERENCES orgs (id),
    company_id         INTEGER NOT NULL REFERENCES orgs (id),
    theme              TEXT    NOT NULL,
    channel            TEXT    NOT NULL CHECK (channel IN ('cash_red_packet', 'transfer', 'balance')),
    amount_mode        TEXT    NOT NULL CHECK (amount_mode IN ('fixed', 'random')),
    total_fen          INTEGER NOT NULL CHECK (total_fen > 0),
    shares             INTEGER NOT NULL CHECK (shares > 0),
    starts_at          INTEGER NOT NULL,
    ends_at            INTEGER NOT NULL,
    -- followers: followers of the official account; verified_residents: residents with a verified
    -- home in one of audience_communities (JSON array of org ids).
    audience           TEXT    NOT NULL CHECK (audience IN ('followers', 'verified_residents')),
    audience_communities TEXT  NOT NULL,
    send_name          TEXT    NOT NULL,
    wishing            TEXT    NOT NULL,
    act_name           TEXT    NOT NULL,
    remark             TEXT    NOT NULL,
    transfer_remark    TEXT    NOT NULL,
    transfer_scene_id  TEXT    NOT NULL,
    state              TEXT    NOT NULL CHECK (state IN ('draft', 'active', 'ended')),
    -- Shares taken so far; never above `shares` (the grab's conditional update).
    granted            INTEGER NOT NULL DEFAULT 0 CHECK (granted >= 0 AND granted <= shares),
    activated_at       INTEGER,
    ended_at           INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX rp_campaigns_company ON rp_campaigns (company_id, state);

-- The amounts, split once at activation; share `seq` goes to the seq-th grab.
CREATE TABLE rp_shares (
    campaign_id INTEGER NOT NULL REFERENCES rp_campaigns (id),
    seq         INTEGER NOT NULL,
    amount_fen  INTEGER NOT NULL CHECK (amount_fen > 0),
    PRIMARY KEY (campaign_id, seq)
);

-- One grab per resident per campaign, one resident per share.
CREATE TABLE rp_grabs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id INTEGER NOT NULL REFERENCES rp_campaigns (id),
    resident_id INTEGER NOT NULL REFERENCES residents (id),
    seq         INTEGER NOT NULL,
    amount_fen  INTEGER NOT NULL,
    -- The payout carrying the money to WeChat; NULL for the balance channel (credited at once).
    payout_id   INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX rp_grabs_resident ON rp_grabs (campaign_id, resident_id);
CREATE UNIQUE INDEX rp_grabs_seq ON rp_grabs (campaign_id, seq);
CREATE INDEX rp_grabs_mine ON rp_grabs (resident_id, id);

-- The in-app wallet: one balance per resident, and its append-only ledger.
CREATE TABLE wallet_accounts (
    resident_id INTEGER PRIMARY KEY REFERENCES residents (id),
    balance_fen INTEGER NOT NULL CHECK (balance_fen >= 0),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE wallet_ledger (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    resident_id   INTEGER NOT NULL REFERENCES residents (id),
    kind          TEXT    NOT NULL CHECK (kind IN ('credit', 'withdraw', 'refund', 'adjust')),
    source        TEXT    NOT NULL CHECK (source IN ('red_packet', 'task', 'payout_failed', 'withdrawal', 'payout_retry', 'operator')),
    -- Unique: posting the same reference twice has one effect.
    reference     TEXT    NOT NULL UNIQUE,
    amount_fen    INTEGER NOT NULL,
    balance_after INTEGER NOT NULL,
    -- Who funded or caused it: the campaign's owner org, the payout.
    owner_org_id  INTEGER,
    payout_id     INTEGER,
    remark        TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX wallet_ledger_resident ON wallet_ledger (resident_id, id);

-- Every cash movement to WeChat Pay: the outbox row written in the same transaction as what
-- caused it (a grab, a withdrawal, a reward), then driven by the dispatcher.
CREATE TABLE payouts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id    INTEGER,
    owner_org_id  INTEGER,
    resident_id   INTEGER NOT NULL REFERENCES residents (id),
    -- cash_red_packet (v2 sendredpack) or transfer (v3 transfer-bills, or the legacy v2 payment).
    channel       TEXT    NOT NULL CHECK (channel IN ('cash_red_packet', 'transfer')),
    source        TEXT    NOT NULL CHECK (source IN ('red_packet', 'withdrawal', 'task')),
    -- Unique per cause: a grab, a withdrawal, a reward never gets two payouts.
    source_ref    TEXT    NOT NULL UNIQUE,
    amount_fen    INTEGER NOT NULL CHECK (amount_fen > 0),
    appid         TEXT    NOT NULL,
    openid        TEXT    NOT NULL,
    -- The merchant number in use: stored before the first call, reused on every retry, replaced
    -- only after a query says the old one failed (every number used is in payout_numbers).
    out_no        TEXT    NOT NULL UNIQUE,
    attempt       INTEGER NOT NULL DEFAULT 1,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'submitted', 'unknown', 'awaiting_confirmation', 'succeeded', 'failed')),
    -- JSON: send_name, wishing, act_name, remark, transfer_remark, transfer_scene_id.
    display       TEXT    NOT NULL,
    wechat_no     TEXT,
    package_info  TEXT,
    last_code     TEXT,
    last_message  TEXT,
    -- Calls made with the current number, and in all.
    calls         INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_until   INTEGER NOT NULL DEFAULT 0,
    -- Set when a failed payout's amount went to the resident's wallet.
    credited_at   INTEGER,
    finished_at   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX payouts_due ON payouts (state, next_at);
CREATE INDEX payouts_resident ON payouts (resident_id, id);
CREATE INDEX payouts_company ON payouts (company_id, id);

-- Every merchant number a payout has used, for queries and reconciliation.
CREATE TABLE payout_numbers (
    out_no     TEXT    PRIMARY KEY,
    payout_id  INTEGER NOT NULL REFERENCES payouts (id),
    attempt    INTEGER NOT NULL,
    -- open while in use; failed once a query or answer said it certainly paid nothing.
    outcome    TEXT    NOT NULL CHECK (outcome IN ('open', 'failed', 'succeeded')),
    created_at INTEGER NOT NULL
);
CREATE INDEX payout_numbers_payout ON payout_numbers (payout_id);

-- A payout's history: every call, answer, notification and operator action.
CREATE TABLE payout_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    payout_id  INTEGER NOT NULL REFERENCES payouts (id),
    kind       TEXT    NOT NULL,
    out_no     TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    code       TEXT,
    message    TEXT,
    actor      TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX payout_events_payout ON payout_events (payout_id, id);

-- WeChat Pay notifications applied, by their id: a redelivery is acknowledged and changes nothing.
CREATE TABLE pay_notifications (
    id          TEXT    PRIMARY KEY,
    event_type  TEXT    NOT NULL,
    out_no      TEXT,
    received_at INTEGER NOT NULL
);

-- Withdrawals from the wallet to WeChat change.
CREATE TABLE wallet_withdrawals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    resident_id INTEGER NOT NULL REFERENCES residents (id),
    amount_fen  INTEGER NOT NULL CHECK (amount_fen > 0),
    payout_id   INTEGER NOT NULL REFERENCES payouts (id),
    created_at  INTEGER NOT NULL
);
CREATE INDEX wallet_withdrawals_resident ON wallet_withdrawals (resident_id, id);

-- Reconciliation of one Beijing day against WeChat Pay's fund-flow bill.
CREATE TABLE reconciliation_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    bill_date   TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('matched', 'differences', 'unavailable')),
    checked     INTEGER NOT NULL,
    -- JSON array of differences.
    differences TEXT    NOT NULL,
    message     TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX reconciliation_runs_date ON reconciliation_runs (bill_date, id);
