-- The URL signature of an official-account push covers the token, timestamp and nonce, not the
-- body. Each (timestamp, nonce) an account accepts is bound here to the SHA-256 of the first body
-- that came with it (of an encrypted push, its decrypted message): a different body under a URL
-- seen before (a captured URL reused) is refused, on every instance, while WeChat's redeliveries
-- of the same body still get the first answer.
-- Claimed in the transaction that applies the push; rows whose timestamp is out of the window,
-- which no push can be accepted under any more, are pruned.
CREATE TABLE wechat_push_nonces (
    url_timestamp BIGINT  NOT NULL,
    appid         TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    body_sha256   TEXT    NOT NULL,
    received_at   BIGINT  NOT NULL,
    PRIMARY KEY (url_timestamp, appid, nonce)
);
