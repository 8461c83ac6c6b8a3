-- Mini-program sessions, residents' bindings to rooms, and owners' invitations to their room.

-- A resident's session in the mini-program. Tokens are stored as SHA-256 hashes; WeChat's
-- session_key stays here and never leaves the server.
CREATE TABLE mp_sessions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    resident_id        INTEGER NOT NULL REFERENCES residents (id),
    identity_id        INTEGER NOT NULL REFERENCES resident_identities (id),
    token_hash         TEXT    NOT NULL UNIQUE,
    refresh_hash       TEXT    NOT NULL UNIQUE,
    session_key        TEXT    NOT NULL,
    expires_at         INTEGER NOT NULL,
    refresh_expires_at INTEGER NOT NULL,
    revoked_at         INTEGER,
    created_at         INTEGER NOT NULL
);
CREATE INDEX mp_sessions_resident ON mp_sessions (resident_id);

-- A resident's phone number as WeChat confirmed it (the mini-program's phone-number button).
ALTER TABLE residents ADD COLUMN phone TEXT;

-- A resident's claim to a room: pending → verified | rejected; verified → ended.
CREATE TABLE bindings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    resident_id  INTEGER NOT NULL REFERENCES residents (id),
    room_id      INTEGER NOT NULL REFERENCES rooms (id),
    community_id INTEGER NOT NULL REFERENCES orgs (id),
    role         TEXT    NOT NULL CHECK (role IN ('owner', 'family', 'tenant')),
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'verified', 'rejected', 'ended')),
    name         TEXT    NOT NULL,
    phone        TEXT    NOT NULL,
    -- How it was verified: 'roster', 'owner' (an invitation) or 'operator'.
    verified_by  TEXT,
    -- Why it was rejected or ended, shown to the resident.
    reason       TEXT,
    -- Who decided (an operator's key label, 'owner:<binding id>', or 'resident').
    decided_by   TEXT,
    decided_at   INTEGER,
    invited_by   INTEGER REFERENCES bindings (id),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
-- One open (pending or verified) binding per resident per room.
CREATE UNIQUE INDEX bindings_open ON bindings (resident_id, room_id) WHERE state IN ('pending', 'verified');
CREATE INDEX bindings_room ON bindings (room_id, state);
CREATE INDEX bindings_community ON bindings (community_id, state, id);
CREATE INDEX bindings_resident ON bindings (resident_id, id);

-- An owner's invitation for family or tenants to bind to the owner's room.
CREATE TABLE binding_invitations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    code         TEXT    NOT NULL UNIQUE,
    binding_id   INTEGER NOT NULL REFERENCES bindings (id),
    room_id      INTEGER NOT NULL REFERENCES rooms (id),
    role         TEXT    NOT NULL CHECK (role IN ('family', 'tenant')),
    expires_at   INTEGER NOT NULL,
    redeemed_by  INTEGER REFERENCES bindings (id),
    created_at   INTEGER NOT NULL
);
