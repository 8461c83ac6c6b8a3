-- Automatic coupon issuance: a rule gives a template's coupon when its trigger happens.

CREATE TABLE coupon_rules (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    template_id   INTEGER NOT NULL REFERENCES coupon_templates (id),
    company_id    INTEGER NOT NULL REFERENCES orgs (id),
    -- first_follow: a resident's first follow of the official account; first_binding: a
    -- resident's first verified home; repeat_purchase: a purchase that leaves the resident with
    -- between min_purchases and max_purchases purchases in the last window_days days.
    trigger_kind  TEXT    NOT NULL CHECK (trigger_kind IN ('first_follow', 'first_binding', 'repeat_purchase')),
    min_purchases INTEGER,
    max_purchases INTEGER,
    window_days   INTEGER,
    active        INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX coupon_rules_company ON coupon_rules (company_id, trigger_kind, active);

-- One coupon per rule per trigger (a resident for first_* rules, an order for repeat purchases).
CREATE TABLE coupon_issuances (
    rule_id     INTEGER NOT NULL REFERENCES coupon_rules (id),
    trigger_ref TEXT    NOT NULL,
    coupon_id   INTEGER REFERENCES coupons (id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (rule_id, trigger_ref)
);
