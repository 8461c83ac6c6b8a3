-- Points redemption (积分兑换): a catalogue per points programme of goods and services a
-- merchant fulfils, the redemptions residents make (each a voucher the merchant writes off), and
-- the mini-program's idempotency keys. Times unix milliseconds, flags 0/1, as in 0001.

CREATE TABLE catalogue_items (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    programme_id       INTEGER NOT NULL REFERENCES points_programmes (id),
    company_id         INTEGER NOT NULL REFERENCES orgs (id),
    -- The merchant org (under the programme's company) that fulfils redemptions of this item.
    merchant_id        INTEGER NOT NULL REFERENCES orgs (id),
    title              TEXT    NOT NULL,
    description        TEXT,
    points_price       INTEGER NOT NULL CHECK (points_price > 0),
    stock_total        INTEGER NOT NULL CHECK (stock_total >= 0),
    -- Taken by a redemption with a conditional update, given back by a cancellation: the durable
    -- guard against overselling.
    stock_left         INTEGER NOT NULL CHECK (stock_left >= 0 AND stock_left <= stock_total),
    -- Open (redeemed or fulfilled) redemptions one resident may hold of this item.
    per_resident_limit INTEGER NOT NULL CHECK (per_resident_limit >= 1),
    available_from     INTEGER,
    available_until    INTEGER,
    active             INTEGER NOT NULL DEFAULT 1,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    archived_at        INTEGER
);
CREATE INDEX catalogue_items_programme ON catalogue_items (programme_id, id);

-- redeemed → fulfilled (the merchant wrote the voucher off) | cancelled (points refunded).
CREATE TABLE redemptions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id      INTEGER NOT NULL REFERENCES catalogue_items (id),
    programme_id INTEGER NOT NULL REFERENCES points_programmes (id),
    resident_id  INTEGER NOT NULL REFERENCES residents (id),
    merchant_id  INTEGER NOT NULL REFERENCES orgs (id),
    -- The item's title when it was redeemed.
    title        TEXT    NOT NULL,
    points       INTEGER NOT NULL CHECK (points > 0),
    -- The voucher code the resident shows the merchant.
    code         TEXT    NOT NULL UNIQUE,
    state        TEXT    NOT NULL CHECK (state IN ('redeemed', 'fulfilled', 'cancelled')),
    fulfilled_at INTEGER,
    fulfilled_by TEXT,
    cancelled_at INTEGER,
    cancelled_by TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX redemptions_item ON redemptions (item_id, resident_id, state);
CREATE INDEX redemptions_resident ON redemptions (resident_id, id);
CREATE INDEX redemptions_programme ON redemptions (programme_id, id);

-- A resident's Idempotency-Key for a mutating mini-program call, with the answer it got: the
-- same key again from the same resident gets the same answer and has no second effect.
CREATE TABLE mp_idempotency_keys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    resident_id   INTEGER NOT NULL REFERENCES residents (id),
    operation     TEXT    NOT NULL,
    idem_key      TEXT    NOT NULL,
    -- What was asked, so the same key with a different request is refused.
    request       TEXT    NOT NULL,
    -- The answer, as JSON; written in the transaction that did the work.
    response      TEXT,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX mp_idempotency_keys_key ON mp_idempotency_keys (resident_id, operation, idem_key);
