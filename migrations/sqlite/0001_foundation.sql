-- Foundation: the org tree, rooms, resident rosters, operator API keys and the audit log.
-- Times are unix milliseconds (UTC) in BIGINT columns, the same in both engines.

CREATE TABLE orgs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id     INTEGER REFERENCES orgs (id),
    kind          TEXT    NOT NULL CHECK (kind IN ('platform', 'company', 'community', 'merchant')),
    name          TEXT    NOT NULL,
    -- '/1/5/12/': the ids from the root down to this org; a subtree is a prefix match.
    path          TEXT    NOT NULL,
    address       TEXT,
    contact_name  TEXT,
    contact_phone TEXT,
    archived_at   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX orgs_parent ON orgs (parent_id);
CREATE INDEX orgs_path ON orgs (path);
CREATE UNIQUE INDEX orgs_one_platform ON orgs (kind) WHERE kind = 'platform';
CREATE UNIQUE INDEX orgs_sibling_name ON orgs (parent_id, name) WHERE archived_at IS NULL;

-- The platform is the root every other org hangs under; it is id 1 on a fresh database.
INSERT INTO orgs (parent_id, kind, name, path, created_at, updated_at)
VALUES (NULL, 'platform', 'Platform', '/1/', CAST(strftime('%s', 'now') AS INTEGER) * 1000,
        CAST(strftime('%s', 'now') AS INTEGER) * 1000);

CREATE TABLE rooms (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    community_id INTEGER NOT NULL REFERENCES orgs (id),
    building     TEXT    NOT NULL,
    unit         TEXT    NOT NULL DEFAULT '',
    number       TEXT    NOT NULL,
    archived_at  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX rooms_address ON rooms (community_id, building, unit, number);

CREATE TABLE roster_entries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    community_id INTEGER NOT NULL REFERENCES orgs (id),
    room_id      INTEGER NOT NULL REFERENCES rooms (id),
    name         TEXT    NOT NULL,
    phone        TEXT    NOT NULL,
    role         TEXT    NOT NULL CHECK (role IN ('owner', 'family', 'tenant')),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX roster_room_phone ON roster_entries (room_id, phone);
CREATE INDEX roster_community_phone ON roster_entries (community_id, phone);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id     INTEGER NOT NULL REFERENCES orgs (id),
    role       TEXT    NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    name       TEXT    NOT NULL,
    -- The first characters of the key, shown so operators can tell keys apart.
    prefix     TEXT    NOT NULL,
    -- SHA-256 of the whole key, hex: the key itself is shown once and never stored.
    key_hash   TEXT    NOT NULL UNIQUE,
    created_by INTEGER REFERENCES api_keys (id),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_keys_org ON api_keys (org_id);

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    actor_key_id INTEGER,
    actor        TEXT    NOT NULL,
    org_id       INTEGER NOT NULL,
    org_path     TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    target_type  TEXT    NOT NULL,
    target_id    TEXT    NOT NULL,
    before_json  TEXT,
    after_json   TEXT,
    request_id   TEXT
);
CREATE INDEX audit_log_org_path ON audit_log (org_path, id);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id);
