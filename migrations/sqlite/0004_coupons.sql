-- Coupon templates and the coupons residents claim from them.
-- Money is integer fen.

CREATE TABLE coupon_templates (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Who issues and funds it: a property company, a community or a merchant.
    owner_org_id        INTEGER NOT NULL REFERENCES orgs (id),
    -- The property company above the owner, whose residents it is for.
    company_id          INTEGER NOT NULL REFERENCES orgs (id),
    category            TEXT    NOT NULL,
    title               TEXT    NOT NULL,
    kind                TEXT    NOT NULL CHECK (kind IN ('cash', 'discount')),
    amount_off          INTEGER,
    percent_off         INTEGER,
    discount_cap        INTEGER,
    min_spend           INTEGER NOT NULL DEFAULT 0,
    -- Validity: a fixed window, or a number of days from the claim.
    valid_from          INTEGER,
    valid_until         INTEGER,
    valid_days          INTEGER,
    claim_from          INTEGER NOT NULL,
    claim_until         INTEGER NOT NULL,
    stock_total         INTEGER NOT NULL,
    -- The durable guard against overselling: claims decrement it only while it is positive.
    stock_left          INTEGER NOT NULL CHECK (stock_left >= 0),
    per_resident_limit  INTEGER NOT NULL,
    per_household_limit INTEGER,
    audience            TEXT    NOT NULL CHECK (audience IN ('followers', 'verified_residents', 'new_customers')),
    -- JSON array of merchant org ids where it may be used; empty: any merchant of the owner's company.
    merchant_ids        TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('active', 'ended')),
    ended_at            INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX coupon_templates_company ON coupon_templates (company_id, state);

CREATE TABLE coupons (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    template_id INTEGER NOT NULL REFERENCES coupon_templates (id),
    resident_id INTEGER NOT NULL REFERENCES residents (id),
    -- The household (room) it counts against, when the template limits households.
    room_id     INTEGER REFERENCES rooms (id),
    code        TEXT    NOT NULL UNIQUE,
    state       TEXT    NOT NULL CHECK (state IN ('unused', 'used', 'expired', 'revoked')),
    valid_from  INTEGER NOT NULL,
    valid_until INTEGER NOT NULL,
    discount    INTEGER,
    used_at     INTEGER,
    expired_at  INTEGER,
    claimed_at  INTEGER NOT NULL
);
CREATE INDEX coupons_resident ON coupons (resident_id, state, id);
CREATE INDEX coupons_template ON coupons (template_id, state);
CREATE INDEX coupons_room ON coupons (template_id, room_id);
CREATE INDEX coupons_due ON coupons (state, valid_until);
