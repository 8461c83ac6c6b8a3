//! Passive replies that linli writes in the HTTP response to an official-account push.
//!
//! * [`SUCCESS`]: "received, no reply" (never needs encrypting).
//! * [`text_reply`]: a text message back to the user.
//! * [`encrypted_reply`]: the safe-mode envelope around a reply.

use std::borrow::Cow;

use super::crypto::{signature, MsgCrypt};

/// Body that acknowledges a push without replying; WeChat then neither retries nor shows an error.
/// Sent as-is (not encrypted) even in safe mode.
pub const SUCCESS: &str = "success";

/// A passive text reply (swap ids: ToUserName = the user's openid, FromUserName = the OA's gh_ id);
/// strings in CDATA, with "]]>" inside content split safely.
///
/// Characters that XML 1.0 forbids (control characters other than tab, LF, CR; U+FFFE, U+FFFF)
/// are dropped from every string.
pub fn text_reply(to_user: &str, from_user: &str, create_time: i64, content: &str) -> String {
    let mut out = String::with_capacity(160 + to_user.len() + from_user.len() + content.len());
    out.push_str("<xml><ToUserName>");
    push_cdata(&mut out, to_user);
    out.push_str("</ToUserName><FromUserName>");
    push_cdata(&mut out, from_user);
    out.push_str("</FromUserName><CreateTime>");
    out.push_str(&create_time.to_string());
    out.push_str("</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>");
    push_cdata(&mut out, content);
    out.push_str("</Content></xml>");
    out
}

/// The encrypted reply envelope
/// `<xml><Encrypt>…</Encrypt><MsgSignature>…</MsgSignature><TimeStamp>…</TimeStamp><Nonce>…</Nonce></xml>`,
/// signature over (token, timestamp, nonce, encrypt); the reply is encrypted with fresh OS randomness.
///
/// `timestamp`/`nonce` are the reply's own (the request's nonce may be echoed).
pub fn encrypted_reply(crypt: &MsgCrypt, token: &str, reply_xml: &str, timestamp: &str, nonce: &str) -> String {
    encrypted_envelope(token, &crypt.encrypt(reply_xml), timestamp, nonce)
}

/// Signs an already-encrypted reply (`Encrypt` value) and wraps it in the reply envelope;
/// [`encrypted_reply`] is this plus [`MsgCrypt::encrypt`].
pub fn encrypted_envelope(token: &str, encrypt: &str, timestamp: &str, nonce: &str) -> String {
    let msg_signature = signature(&[token, timestamp, nonce, encrypt]);
    let mut out = String::with_capacity(140 + encrypt.len() + timestamp.len() + nonce.len());
    out.push_str("<xml><Encrypt>");
    push_cdata(&mut out, encrypt);
    out.push_str("</Encrypt><MsgSignature>");
    push_cdata(&mut out, &msg_signature);
    out.push_str("</MsgSignature><TimeStamp>");
    push_escaped(&mut out, timestamp);
    out.push_str("</TimeStamp><Nonce>");
    push_cdata(&mut out, nonce);
    out.push_str("</Nonce></xml>");
    out
}

/// Whether XML 1.0 allows `c` in character data.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Appends `s` as one or more CDATA sections: each "]]>" is split as "]]" + ">" across two sections.
/// Forbidden characters are dropped first, so dropping cannot create a new "]]>".
fn push_cdata(out: &mut String, s: &str) {
    let clean = xml_chars(s);
    out.push_str("<![CDATA[");
    let mut rest: &str = &clean;
    while let Some(i) = rest.find("]]>") {
        out.push_str(&rest[..i + 2]);
        out.push_str("]]><![CDATA[");
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out.push_str("]]>");
}

/// `s` without the characters XML 1.0 forbids.
fn xml_chars(s: &str) -> Cow<'_, str> {
    if s.chars().all(is_xml_char) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|&c| is_xml_char(c)).collect())
    }
}

/// Appends `s` as escaped character data.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars().filter(|&c| is_xml_char(c)) {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{parse_envelope, parse_message, MessageKind};
    use super::*;
    use proptest::prelude::*;

    const E_TOKEN: &str = "AAAAA";
    const E_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const E_APPID: &str = "wx134c8103faa5a59e";

    fn roundtrip(content: &str) -> String {
        let xml = text_reply("oUser", "gh_abc", 1_713_424_427, content);
        let msg = parse_message(&xml).unwrap();
        assert_eq!(msg.to_user, "oUser");
        assert_eq!(msg.from_user, "gh_abc");
        assert_eq!(msg.create_time, 1_713_424_427);
        assert_eq!(msg.msg_id, None);
        match msg.kind {
            MessageKind::Text { content } => content,
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn text_reply_shape() {
        assert_eq!(
            text_reply("oUser", "gh_abc", 12, "hi"),
            "<xml><ToUserName><![CDATA[oUser]]></ToUserName><FromUserName><![CDATA[gh_abc]]></FromUserName>\
             <CreateTime>12</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>"
        );
    }

    #[test]
    fn text_reply_roundtrips_tricky_content() {
        for content in [
            "",
            "plain",
            "a]]>b",
            "]]>",
            "]]>]]>",
            "]]]]>>",
            "x]]",
            "<b>bold</b> & <![CDATA[inner]]>",
            "&amp; &lt; &xxe;",
            "欢迎关注邻里！回复「1」查看活动 🎉",
            "line1\nline2\ttab",
            "  padded  ",
        ] {
            assert_eq!(roundtrip(content), content, "{content:?}");
        }
    }

    #[test]
    fn forbidden_xml_chars_are_dropped() {
        assert_eq!(roundtrip("a\u{0}b\u{1b}c\u{FFFE}d"), "abcd");
        // Dropping a forbidden character must not create an unsplit "]]>".
        assert_eq!(roundtrip("x]]\u{0}>y"), "x]]>y");
    }

    #[test]
    fn e_encrypted_reply_envelope() {
        // Reply half of the official worked example (protocol notes §2, vector E).
        let crypt = MsgCrypt::new(E_KEY, E_APPID).unwrap();
        let encrypt =
            crypt.encrypt_with_random("<xml><demo_resp>[CDATA[good luck]]</demo_resp></xml>", b"999951349e8ee746");
        let envelope = encrypted_envelope(E_TOKEN, &encrypt, "1713424427", "415670741");
        assert_eq!(
            envelope,
            "<xml><Encrypt><![CDATA[hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HAZbSvPT9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7]]></Encrypt>\
             <MsgSignature><![CDATA[03e0812039325c2712ef5f0f980fd14c70d6e307]]></MsgSignature>\
             <TimeStamp>1713424427</TimeStamp><Nonce><![CDATA[415670741]]></Nonce></xml>"
        );
    }

    #[test]
    fn encrypted_reply_roundtrips() {
        let crypt = MsgCrypt::new(E_KEY, E_APPID).unwrap();
        let reply = text_reply("oUser", "gh_abc", 5, "你好 ]]> &");
        let envelope = encrypted_reply(&crypt, E_TOKEN, &reply, "1713424427", "n<1>");
        let env = parse_envelope(&envelope).unwrap();
        let encrypt = env.encrypt.unwrap();
        assert_eq!(crypt.decrypt(&encrypt).unwrap(), reply);
        assert!(envelope.contains(&format!(
            "<MsgSignature><![CDATA[{}]]></MsgSignature>",
            signature(&[E_TOKEN, "1713424427", "n<1>", &encrypt])
        )));
        assert!(envelope.contains("<Nonce><![CDATA[n<1>]]></Nonce>"));
        let odd_ts = encrypted_envelope(E_TOKEN, "x", "1<2&3", "n");
        assert!(odd_ts.contains("<TimeStamp>1&lt;2&amp;3</TimeStamp>"));
        assert!(parse_envelope(&odd_ts).is_ok());
    }

    proptest! {
        #[test]
        fn text_reply_roundtrip_any(content in any::<String>(), to in "[A-Za-z0-9_-]{1,40}", ts in any::<i64>()) {
            let xml = text_reply(&to, "gh_abc", ts, &content);
            let msg = parse_message(&xml).unwrap();
            let expected: String = content.chars().filter(|&c| is_xml_char(c)).collect();
            prop_assert_eq!(msg.to_user, to);
            prop_assert_eq!(msg.create_time, ts);
            prop_assert_eq!(msg.kind, MessageKind::Text { content: expected });
        }
    }
}
