-- WeChat apps (official accounts, mini-programs) and WeChat Pay merchants as records, each owned
-- by an org (a property company, or the platform for shared use). Every secret column holds a
-- value sealed under LINLI_SECRET_KEY (src/sealing.rs), never the secret itself.
CREATE TABLE wechat_apps (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id           INTEGER NOT NULL REFERENCES orgs (id),
    kind             TEXT    NOT NULL CHECK (kind IN ('oa', 'mp')),
    appid            TEXT    NOT NULL UNIQUE,
    name             TEXT    NOT NULL,
    secret_sealed    TEXT    NOT NULL,
    -- Official accounts: the callback Token and EncodingAESKey, and the message mode.
    token_sealed     TEXT,
    aes_key_sealed   TEXT,
    message_mode     TEXT    CHECK (message_mode IN ('plain', 'compat', 'safe')),
    -- Mini-programs: the subscribe-message template task rewards are told with.
    task_template_id TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CHECK (kind = 'oa' OR (token_sealed IS NULL AND aes_key_sealed IS NULL AND message_mode IS NULL)),
    CHECK (kind = 'mp' OR task_template_id IS NULL)
);
CREATE INDEX wechat_apps_org ON wechat_apps (org_id);

CREATE TABLE pay_merchants (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id             INTEGER NOT NULL REFERENCES orgs (id),
    mch_id             TEXT    NOT NULL UNIQUE,
    name               TEXT    NOT NULL,
    api_key_v2_sealed  TEXT,
    api_v3_key_sealed  TEXT,
    -- The merchant API certificate's private key (PEM) and serial.
    private_key_sealed TEXT,
    cert_serial        TEXT,
    -- The WeChat Pay public key (微信支付公钥), public material.
    public_key_id      TEXT,
    public_key_pem     TEXT,
    verify_with        TEXT    CHECK (verify_with IN ('public_key', 'platform_certificates', 'both')),
    -- The client certificate and its key (PEM) the v2 payout calls need.
    client_cert_sealed TEXT,
    notify_url         TEXT,
    transfer_scene_id  TEXT    NOT NULL,
    transfer_api       TEXT    NOT NULL CHECK (transfer_api IN ('v3', 'v2')),
    rate_per_sec       INTEGER NOT NULL CHECK (rate_per_sec > 0),
    -- A platform merchant that pays for owners without one of their own (only the platform's).
    platform_fallback  INTEGER NOT NULL DEFAULT 0 CHECK (platform_fallback IN (0, 1)),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX pay_merchants_org ON pay_merchants (org_id);

-- The merchant a payout goes through: chosen when it is queued, from its funding owner; absent,
-- the merchant configured by environment (WECHATPAY_MCH_ID), as before records existed.
ALTER TABLE payouts ADD COLUMN mch_id TEXT;

-- Reconciliation runs per merchant: absent, the merchant configured by environment.
ALTER TABLE reconciliation_runs ADD COLUMN mch_id TEXT;
