-- Abuse limits shared by the linli instances that share one database.

-- Each live instance rewrites its row every few seconds; every instance counts the rows seen
-- recently and gives each of its in-memory rate limits that share of the configured rate.
CREATE TABLE instances (
    id      TEXT   PRIMARY KEY,
    seen_ms BIGINT NOT NULL
);

-- Token buckets kept here where one limit must hold across all instances exactly (the login per
-- client address). `bucket` is a kind and a hash, never the address or credential itself.
-- `tokens` are millionths of a request; `granted` says whether the last take was allowed.
CREATE TABLE rate_buckets (
    bucket     TEXT   PRIMARY KEY,
    tokens     BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    granted    BIGINT NOT NULL
);

CREATE INDEX rate_buckets_by_updated ON rate_buckets (updated_ms);
