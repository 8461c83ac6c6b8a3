//! Passive replies: what the account's server answers to a push. `success` or an empty body (WeChat
//! then does nothing), a reply message in plain XML, or (compatible and safe modes) that XML
//! encrypted into `<Encrypt>` with its own `MsgSignature`, `TimeStamp` and `Nonce`.

use std::fmt;

use super::crypto::{self, AesKey, CryptoError};
use super::signature::{msg_signature, verify_msg_signature};
use super::xml::{parse_fields, XmlError, XmlFields, XmlWriter};
use super::PushMode;

/// A passive text reply (`MsgType` `text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextReply {
    /// The user's openid (the push's `FromUserName`).
    pub to_user_name: String,
    /// The account's original id `gh_…` (the push's `ToUserName`).
    pub from_user_name: String,
    /// Unix seconds.
    pub create_time: i64,
    /// The text shown to the user.
    pub content: String,
}

impl TextReply {
    /// The reply as WeChat expects it: ids swapped relative to the push, strings in CDATA.
    pub fn to_xml(&self) -> String {
        XmlWriter::new()
            .text("ToUserName", &self.to_user_name)
            .text("FromUserName", &self.from_user_name)
            .number("CreateTime", self.create_time)
            .text("MsgType", "text")
            .text("Content", &self.content)
            .finish()
    }
}

/// A decoded passive reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The body `success`: nothing to show, do not retry.
    Success,
    /// A 0-byte body: same meaning as `success`.
    Empty,
    /// A text message to the user.
    Text(TextReply),
    /// Another reply message (image, voice, video, music, news, transfer to customer service…).
    Other {
        /// Its `MsgType`.
        msg_type: String,
        /// All its fields.
        fields: XmlFields,
    },
}

/// Why a reply could not be accepted the way WeChat would accept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The callback answered with a status other than 200.
    HttpStatus(u16),
    /// The body is neither `success`, empty, nor XML.
    Xml(XmlError),
    /// A field the reply needs is missing.
    MissingField(&'static str),
    /// A field has a value that cannot be right (e.g. a non-numeric `CreateTime`).
    InvalidField {
        /// The field.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// An encrypted reply whose `MsgSignature` does not match its `Encrypt`, `TimeStamp` and `Nonce`.
    BadMsgSignature,
    /// An encrypted reply that does not decrypt (or was encrypted for another appid).
    Crypto(CryptoError),
    /// A plaintext reply message in safe mode, where replies must be encrypted.
    NotEncrypted,
    /// An encrypted reply in plaintext mode, where WeChat has no key to read it.
    UnexpectedEncryption,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HttpStatus(status) => write!(f, "callback answered HTTP {status}"),
            Self::Xml(err) => write!(f, "reply is not success, empty or XML: {err}"),
            Self::MissingField(name) => write!(f, "reply lacks {name}"),
            Self::InvalidField { name, value } => write!(f, "reply field {name} is {value:?}"),
            Self::BadMsgSignature => f.write_str("encrypted reply has a wrong MsgSignature"),
            Self::Crypto(err) => write!(f, "encrypted reply does not decrypt: {err}"),
            Self::NotEncrypted => f.write_str("safe mode requires an encrypted reply"),
            Self::UnexpectedEncryption => f.write_str("encrypted reply in plaintext mode"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// What the pusher needs to read encrypted replies.
#[derive(Debug, Clone)]
pub struct ReplyKeys<'a> {
    /// The callback token.
    pub token: &'a str,
    /// The AES key.
    pub key: &'a AesKey,
    /// The OA appid the reply must be encrypted for.
    pub appid: &'a str,
}

/// Builds an encrypted reply envelope around `inner_xml`, signed over `timestamp` and `nonce`.
pub fn encrypted_reply_xml(keys: &ReplyKeys<'_>, inner_xml: &str, timestamp: &str, nonce: &str) -> String {
    let encrypt = crypto::encrypt(keys.key, keys.appid, inner_xml);
    envelope(keys.token, &encrypt, timestamp, nonce)
}

/// The envelope of an already encrypted reply.
pub fn envelope(token: &str, encrypt: &str, timestamp: &str, nonce: &str) -> String {
    XmlWriter::new()
        .text("Encrypt", encrypt)
        .text("MsgSignature", &msg_signature(token, timestamp, nonce, encrypt))
        .text("TimeStamp", timestamp)
        .text("Nonce", nonce)
        .finish()
}

/// Reads a reply body as WeChat would in `mode`. Returns the reply and whether it was encrypted.
pub fn decode_reply(body: &str, mode: PushMode, keys: &ReplyKeys<'_>) -> Result<(Reply, bool), ReplyError> {
    if let Some(reply) = bare_reply(body) {
        // `success` and empty bodies need no encryption in any mode.
        return Ok((reply, false));
    }
    let fields = parse_fields(body).map_err(ReplyError::Xml)?;
    if !fields.contains("Encrypt") {
        if mode == PushMode::Safe {
            return Err(ReplyError::NotEncrypted);
        }
        return Ok((reply_message(&fields)?, false));
    }
    if mode == PushMode::Plaintext {
        return Err(ReplyError::UnexpectedEncryption);
    }
    let encrypt = required(&fields, "Encrypt")?;
    let signature = required(&fields, "MsgSignature")?;
    let timestamp = required(&fields, "TimeStamp")?;
    let nonce = required(&fields, "Nonce")?;
    if !verify_msg_signature(keys.token, timestamp, nonce, encrypt, signature) {
        return Err(ReplyError::BadMsgSignature);
    }
    let inner = crypto::decrypt_for(keys.key, keys.appid, encrypt).map_err(ReplyError::Crypto)?;
    if let Some(reply) = bare_reply(&inner) {
        return Ok((reply, true));
    }
    let inner_fields = parse_fields(&inner).map_err(ReplyError::Xml)?;
    Ok((reply_message(&inner_fields)?, true))
}

fn bare_reply(body: &str) -> Option<Reply> {
    match body.trim() {
        "" => Some(Reply::Empty),
        "success" => Some(Reply::Success),
        _ => None,
    }
}

fn reply_message(fields: &XmlFields) -> Result<Reply, ReplyError> {
    let msg_type = required(fields, "MsgType")?;
    if msg_type != "text" {
        return Ok(Reply::Other { msg_type: msg_type.to_owned(), fields: fields.clone() });
    }
    let create_time = required(fields, "CreateTime")?;
    Ok(Reply::Text(TextReply {
        to_user_name: required(fields, "ToUserName")?.to_owned(),
        from_user_name: required(fields, "FromUserName")?.to_owned(),
        create_time: create_time
            .trim()
            .parse()
            .map_err(|_| ReplyError::InvalidField { name: "CreateTime", value: create_time.to_owned() })?,
        content: required(fields, "Content")?.to_owned(),
    }))
}

fn required<'f>(fields: &'f XmlFields, name: &'static str) -> Result<&'f str, ReplyError> {
    fields.get(name).ok_or(ReplyError::MissingField(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(key: &AesKey) -> ReplyKeys<'_> {
        ReplyKeys { token: "tok", key, appid: "wxapp" }
    }

    fn text() -> TextReply {
        TextReply {
            to_user_name: "o_user".into(),
            from_user_name: "gh_x".into(),
            create_time: 1_700_000_000,
            content: "你好 ]]> & <b>".into(),
        }
    }

    #[test]
    fn bare_replies_in_every_mode() {
        let key = AesKey::from_encoding_aes_key(&"A".repeat(43)).unwrap();
        for mode in [PushMode::Plaintext, PushMode::Compatible, PushMode::Safe] {
            assert_eq!(decode_reply("success", mode, &keys(&key)), Ok((Reply::Success, false)));
            assert_eq!(decode_reply("", mode, &keys(&key)), Ok((Reply::Empty, false)));
        }
    }

    #[test]
    fn plain_and_encrypted_text_replies() {
        let key = AesKey::from_encoding_aes_key(&"A".repeat(43)).unwrap();
        let k = keys(&key);
        let plain = text().to_xml();
        assert_eq!(decode_reply(&plain, PushMode::Plaintext, &k), Ok((Reply::Text(text()), false)));
        assert_eq!(decode_reply(&plain, PushMode::Compatible, &k), Ok((Reply::Text(text()), false)));
        assert_eq!(decode_reply(&plain, PushMode::Safe, &k), Err(ReplyError::NotEncrypted));

        let encrypted = encrypted_reply_xml(&k, &plain, "1700000001", "12345");
        for mode in [PushMode::Compatible, PushMode::Safe] {
            assert_eq!(decode_reply(&encrypted, mode, &k), Ok((Reply::Text(text()), true)));
        }
        assert_eq!(decode_reply(&encrypted, PushMode::Plaintext, &k), Err(ReplyError::UnexpectedEncryption));

        let forged = encrypted.replace("1700000001", "1700000002");
        assert_eq!(decode_reply(&forged, PushMode::Safe, &k), Err(ReplyError::BadMsgSignature));
        let for_other_app = encrypted_reply_xml(&ReplyKeys { appid: "wxother", ..k.clone() }, &plain, "1", "2");
        assert!(matches!(
            decode_reply(&for_other_app, PushMode::Safe, &k),
            Err(ReplyError::Crypto(CryptoError::AppidMismatch { .. }))
        ));
        let unsigned = "<xml><Encrypt><![CDATA[abc]]></Encrypt></xml>";
        assert_eq!(decode_reply(unsigned, PushMode::Safe, &k), Err(ReplyError::MissingField("MsgSignature")));
    }

    #[test]
    fn other_messages_and_garbage() {
        let key = AesKey::from_encoding_aes_key(&"A".repeat(43)).unwrap();
        let k = keys(&key);
        let image = "<xml><ToUserName>u</ToUserName><FromUserName>g</FromUserName>\
                     <CreateTime>1</CreateTime><MsgType>image</MsgType></xml>";
        assert!(matches!(
            decode_reply(image, PushMode::Plaintext, &k),
            Ok((Reply::Other { ref msg_type, .. }, false)) if msg_type == "image"
        ));
        assert!(matches!(decode_reply("{\"msg\":\"hi\"}", PushMode::Plaintext, &k), Err(ReplyError::Xml(_))));
        let bad_time = "<xml><ToUserName>u</ToUserName><FromUserName>g</FromUserName>\
                        <CreateTime>soon</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>";
        assert!(matches!(
            decode_reply(bad_time, PushMode::Plaintext, &k),
            Err(ReplyError::InvalidField { name: "CreateTime", .. })
        ));
    }
}
