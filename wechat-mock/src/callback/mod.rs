//! WeChat's message push to an official account's server ("callback"), implemented on its own in
//! this crate so that linli's implementation is checked against a second, independent one:
//! - [`signature`]: `signature` and `msg_signature` (SHA-1 over sorted parts);
//! - [`crypto`]: safe-mode AES-256-CBC with the EncodingAESKey, WeChat's 32-byte padding and the
//!   `random ‖ length ‖ message ‖ appid` layout;
//! - [`xml`]: WeChat's flat `<xml>` documents, read without DTDs;
//! - [`reply`]: passive replies, plain and encrypted.
//!
//! The pusher in [`crate::push`] builds on these; tests use them directly to play the account's side.

pub mod crypto;
pub mod reply;
pub mod signature;
pub mod xml;

use serde::Serialize;

/// The message encryption mode configured for the account ("消息加解密方式").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushMode {
    /// 明文模式: plain XML both ways, only `signature` in the URL.
    Plaintext,
    /// 兼容模式: the plain fields and `<Encrypt>` in one body; replies may be plain or encrypted.
    Compatible,
    /// 安全模式: only `ToUserName` and `<Encrypt>`; replies must be encrypted.
    Safe,
}

impl PushMode {
    /// Whether pushes carry `encrypt_type=aes`, `msg_signature` and an `<Encrypt>` element.
    pub fn encrypts(self) -> bool {
        !matches!(self, Self::Plaintext)
    }
}

#[cfg(test)]
mod tests {
    //! The worked example of WeChat's open-platform "消息推送" guide (Token `AAAAA`, EncodingAESKey
    //! 43×`A`), in both directions.

    use super::crypto::{decrypt, decrypt_for, encrypt_with_random, AesKey};
    use super::reply::{decode_reply, envelope, ReplyKeys};
    use super::signature::{msg_signature, signature};
    use super::xml::{parse_fields, XmlWriter};
    use super::PushMode;

    const TOKEN: &str = "AAAAA";
    const APPID: &str = "wx134c8103faa5a59e";
    const TIMESTAMP: &str = "1715943329";
    const NONCE: &str = "1590219412";
    const ENCRYPT: &str = "D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==";
    const REPLY_MSG: &str = "<xml><demo_resp>[CDATA[good luck]]</demo_resp></xml>";
    const REPLY_ENCRYPT: &str = "hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HAZbSvPT9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7";

    fn key() -> AesKey {
        AesKey::from_encoding_aes_key(&"A".repeat(43)).unwrap()
    }

    /// The push of the example: an event built with this crate's own XML writer.
    fn push_message() -> String {
        XmlWriter::new()
            .text("ToUserName", "gh_97417a04a28d")
            .text("FromUserName", "o9AgO5Kd5ggOC-bXrbNODIiE3bGY")
            .number("CreateTime", 1_715_943_329)
            .text("MsgType", "event")
            .text("Event", "debug_demo")
            .text("debug_str", "hello world")
            .finish()
    }

    #[test]
    fn example_push_signatures() {
        assert_eq!(signature(TOKEN, TIMESTAMP, NONCE), "cc0c594499c1634947d5b502f158ee518947db27");
        assert_eq!(msg_signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT), "6c12a4205838198b8fa631b3220723bb07f1015c");
    }

    #[test]
    fn example_push_decrypts() {
        let decrypted = decrypt(&key(), ENCRYPT).unwrap();
        assert_eq!(&decrypted.random, b"1205899eaf019bbd");
        assert_eq!(decrypted.appid, APPID);
        assert_eq!(decrypted.message.len(), 292);
        assert_eq!(decrypted.message, push_message());
        let fields = parse_fields(&decrypted.message).unwrap();
        assert_eq!(fields.get("Event"), Some("debug_demo"));
        assert_eq!(fields.get("debug_str"), Some("hello world"));
    }

    #[test]
    fn example_push_encrypts_to_the_published_text() {
        let encrypted = encrypt_with_random(&key(), b"1205899eaf019bbd", APPID, &push_message());
        assert_eq!(encrypted, ENCRYPT);
    }

    #[test]
    fn example_reply_both_ways() {
        let encrypted = encrypt_with_random(&key(), b"999951349e8ee746", APPID, REPLY_MSG);
        assert_eq!(encrypted, REPLY_ENCRYPT);
        assert_eq!(
            msg_signature(TOKEN, "1713424427", "415670741", REPLY_ENCRYPT),
            "03e0812039325c2712ef5f0f980fd14c70d6e307"
        );
        assert_eq!(decrypt_for(&key(), APPID, REPLY_ENCRYPT).unwrap(), REPLY_MSG);

        // The whole envelope verifies; its inner document has no MsgType, so it is not a reply
        // message WeChat could show, which the decoder reports.
        let body = envelope(TOKEN, REPLY_ENCRYPT, "1713424427", "415670741");
        assert!(body.contains("<MsgSignature><![CDATA[03e0812039325c2712ef5f0f980fd14c70d6e307]]>"));
        let key = key();
        let keys = ReplyKeys { token: TOKEN, key: &key, appid: APPID };
        assert_eq!(decode_reply(&body, PushMode::Safe, &keys), Err(super::reply::ReplyError::MissingField("MsgType")));
    }
}
