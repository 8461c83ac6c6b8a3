-- Tasks: operators publish "invite neighbours" tasks, residents accept them and invite; invitees
-- are attributed to one inviter's task once and count when they become verified residents (bind
-- tasks) or make a first purchase (shop tasks); every `target` counted invitees earn one reward.

CREATE TABLE tasks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_org_id   INTEGER NOT NULL REFERENCES orgs (id),
    company_id     INTEGER NOT NULL REFERENCES orgs (id),
    theme          TEXT    NOT NULL,
    -- open: residents accept it; assigned: operators assign it.
    mode           TEXT    NOT NULL CHECK (mode IN ('open', 'assigned')),
    category       TEXT    NOT NULL CHECK (category IN ('invite_bind', 'invite_shop')),
    -- invite_shop: the merchant to shop at; NULL: any merchant of the company.
    merchant_id    INTEGER REFERENCES orgs (id),
    target         INTEGER NOT NULL CHECK (target > 0),
    reward_kind    TEXT    NOT NULL CHECK (reward_kind IN ('points', 'balance', 'red_packet')),
    -- Points, or fen.
    reward_amount  INTEGER NOT NULL CHECK (reward_amount > 0),
    -- red_packet: cash_red_packet or transfer.
    reward_channel TEXT,
    starts_at      INTEGER NOT NULL,
    ends_at        INTEGER NOT NULL,
    -- How many times one resident may complete it.
    max_rounds     INTEGER NOT NULL CHECK (max_rounds > 0),
    -- The most invitations of one inviter that count per day (Beijing), over all tasks.
    daily_cap      INTEGER NOT NULL CHECK (daily_cap > 0),
    state          TEXT    NOT NULL CHECK (state IN ('active', 'ended')),
    ended_at       INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX tasks_company ON tasks (company_id, state);

-- A resident's hold on a task (accepted, or assigned by an operator), with its counters: the
-- row is locked while an invitation is counted, so rounds are decided one at a time.
CREATE TABLE task_holds (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     INTEGER NOT NULL REFERENCES tasks (id),
    resident_id INTEGER NOT NULL REFERENCES residents (id),
    how         TEXT    NOT NULL CHECK (how IN ('accepted', 'assigned')),
    counted     INTEGER NOT NULL DEFAULT 0,
    rounds      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX task_holds_resident ON task_holds (task_id, resident_id);
CREATE INDEX task_holds_mine ON task_holds (resident_id, id);

-- One attribution per invitee per task: who brought them, how, and whether they counted.
CREATE TABLE task_invitations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id       INTEGER NOT NULL REFERENCES tasks (id),
    inviter_id    INTEGER NOT NULL REFERENCES residents (id),
    invitee_id    INTEGER NOT NULL REFERENCES residents (id),
    via           TEXT    NOT NULL CHECK (via IN ('oa_qr', 'mp_scene')),
    state         TEXT    NOT NULL CHECK (state IN ('attributed', 'counted', 'rejected')),
    reason        TEXT,
    attributed_at INTEGER NOT NULL,
    counted_at    INTEGER
);
CREATE UNIQUE INDEX task_invitations_invitee ON task_invitations (task_id, invitee_id);
CREATE INDEX task_invitations_inviter ON task_invitations (task_id, inviter_id, state);
CREATE INDEX task_invitations_pending ON task_invitations (invitee_id, state);

-- One reward per task, resident and round.
CREATE TABLE task_rewards (
    task_id     INTEGER NOT NULL REFERENCES tasks (id),
    resident_id INTEGER NOT NULL REFERENCES residents (id),
    round       INTEGER NOT NULL,
    reward_kind TEXT    NOT NULL,
    amount      INTEGER NOT NULL,
    payout_id   INTEGER,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (task_id, resident_id, round)
);

-- The OA QR code of each inviter's invitation, kept until it expires.
CREATE TABLE task_qrcodes (
    task_id     INTEGER NOT NULL REFERENCES tasks (id),
    resident_id INTEGER NOT NULL REFERENCES residents (id),
    scene       TEXT    NOT NULL,
    ticket      TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (task_id, resident_id)
);

-- Mini-program subscribe messages to send (an outbox: written with what they announce).
CREATE TABLE mp_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    resident_id INTEGER NOT NULL REFERENCES residents (id),
    appid       TEXT    NOT NULL,
    openid      TEXT    NOT NULL,
    template_id TEXT    NOT NULL,
    page        TEXT,
    data        TEXT    NOT NULL,
    reference   TEXT    NOT NULL UNIQUE,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    next_at     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    sent_at     INTEGER
);
CREATE INDEX mp_messages_due ON mp_messages (state, next_at);
