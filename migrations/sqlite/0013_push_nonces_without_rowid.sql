-- The URL bindings of 0012, kept in one B-tree: a table keyed by its primary key without the
-- rowid beside it, so each check-in push writes one index entry for its URL instead of two.
-- The bindings taken so far are carried over.
CREATE TABLE wechat_push_nonces_keyed (
    url_timestamp INTEGER NOT NULL,
    appid         TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    body_sha256   TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    PRIMARY KEY (url_timestamp, appid, nonce)
) WITHOUT ROWID;

INSERT INTO wechat_push_nonces_keyed (url_timestamp, appid, nonce, body_sha256, received_at)
    SELECT url_timestamp, appid, nonce, body_sha256, received_at FROM wechat_push_nonces;

DROP TABLE wechat_push_nonces;

ALTER TABLE wechat_push_nonces_keyed RENAME TO wechat_push_nonces;
