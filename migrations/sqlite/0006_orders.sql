-- Merchants' orders and refunds, points for purchases, residents' member codes.

-- Points per yuan paid, and the multiplier (percent) on a resident's first purchase at a merchant.
ALTER TABLE points_programmes ADD COLUMN points_per_yuan INTEGER NOT NULL DEFAULT 1;
ALTER TABLE points_programmes ADD COLUMN first_purchase_percent INTEGER NOT NULL DEFAULT 200;

-- Campaign multipliers: items of a category bought in a window earn `percent` of the usual points.
CREATE TABLE points_multipliers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    programme_id INTEGER NOT NULL REFERENCES points_programmes (id),
    category     TEXT    NOT NULL,
    percent      INTEGER NOT NULL CHECK (percent >= 0),
    starts_at    INTEGER NOT NULL,
    ends_at      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX points_multipliers_programme ON points_multipliers (programme_id, category);

-- A short-lived code a resident shows at the counter so the merchant can name them.
CREATE TABLE member_codes (
    code        TEXT    PRIMARY KEY,
    resident_id INTEGER NOT NULL REFERENCES residents (id),
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE orders (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id   INTEGER NOT NULL REFERENCES orgs (id),
    company_id    INTEGER NOT NULL REFERENCES orgs (id),
    order_no      TEXT    NOT NULL,
    resident_id   INTEGER NOT NULL REFERENCES residents (id),
    -- Fen: before the coupon, the coupon's discount, and what the resident paid.
    amount        INTEGER NOT NULL CHECK (amount > 0),
    discount      INTEGER NOT NULL CHECK (discount >= 0),
    paid          INTEGER NOT NULL CHECK (paid >= 0),
    refunded      INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0),
    coupon_id     INTEGER REFERENCES coupons (id),
    -- JSON: [{"name", "category", "amount"}]
    items         TEXT    NOT NULL,
    points        INTEGER NOT NULL,
    points_back   INTEGER NOT NULL DEFAULT 0,
    ordered_at    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX orders_number ON orders (merchant_id, order_no);
CREATE INDEX orders_resident ON orders (resident_id, merchant_id);

CREATE TABLE order_refunds (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id    INTEGER NOT NULL REFERENCES orders (id),
    refund_no   TEXT    NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    points_back INTEGER NOT NULL,
    coupon_restored INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX order_refunds_number ON order_refunds (order_id, refund_no);

-- Coupons used at the counter without an order.
ALTER TABLE coupons ADD COLUMN used_by_merchant INTEGER REFERENCES orgs (id);
