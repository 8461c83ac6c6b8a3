//! What a user does that WeChat pushes to the account, and the XML WeChat writes for it. Field order
//! and the empty `EventKey` of a plain follow follow captures of real pushes.

use base64::{engine::general_purpose::STANDARD, Engine};
use rand::Rng;

use crate::callback::xml::XmlWriter;

/// The prefix WeChat puts before the scene of a parametric QR code in a follow's `EventKey`.
pub const QR_SCENE_PREFIX: &str = "qrscene_";

/// One thing a user did that WeChat tells the official account about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OaMessage {
    /// Followed the account (`subscribe`, empty `EventKey`).
    Follow {
        /// The user's openid under the account.
        openid: String,
    },
    /// Followed by scanning a parametric QR code (`subscribe`, `EventKey=qrscene_<scene>`, `Ticket`).
    FollowScene {
        /// The user's openid under the account.
        openid: String,
        /// The QR code's `scene_id` or `scene_str`.
        scene: String,
        /// The QR code's ticket.
        ticket: String,
    },
    /// Stopped following (`unsubscribe`).
    Unfollow {
        /// The user's openid under the account.
        openid: String,
    },
    /// Scanned a parametric QR code while already following (`SCAN`, `EventKey=<scene>`, `Ticket`).
    Scan {
        /// The user's openid under the account.
        openid: String,
        /// The QR code's `scene_id` or `scene_str`.
        scene: String,
        /// The QR code's ticket.
        ticket: String,
    },
    /// Tapped a `click` menu button (`CLICK`, `EventKey=<key>`).
    Click {
        /// The user's openid under the account.
        openid: String,
        /// The button's key.
        key: String,
    },
    /// Sent a text message (`MsgType=text`, `Content`, `MsgId`).
    Text {
        /// The user's openid under the account.
        openid: String,
        /// What they wrote.
        content: String,
        /// WeChat's 64-bit message id.
        msg_id: u64,
    },
    /// Anything else WeChat may push (an image, a location report, an event the account does not
    /// use): the common header, then these fields in order (`MsgType` first, as WeChat writes it).
    Raw {
        /// The user's openid under the account.
        openid: String,
        /// Field names and text values after `CreateTime`.
        fields: Vec<(String, String)>,
    },
}

impl OaMessage {
    /// The user's openid.
    pub fn openid(&self) -> &str {
        match self {
            Self::Follow { openid }
            | Self::FollowScene { openid, .. }
            | Self::Unfollow { openid }
            | Self::Scan { openid, .. }
            | Self::Click { openid, .. }
            | Self::Text { openid, .. }
            | Self::Raw { openid, .. } => openid,
        }
    }

    /// The message as WeChat writes it, addressed to `original_id` (`gh_…`) at `create_time`.
    pub fn to_xml(&self, original_id: &str, create_time: i64) -> String {
        self.write(original_id, create_time).finish()
    }

    /// The message's fields, leaving the document open for an `<Encrypt>` (compatible mode).
    pub(crate) fn write(&self, original_id: &str, create_time: i64) -> XmlWriter {
        let head = XmlWriter::new()
            .text("ToUserName", original_id)
            .text("FromUserName", self.openid())
            .number("CreateTime", create_time);
        let event = |name: &str| head.clone().text("MsgType", "event").text("Event", name);
        match self {
            Self::Follow { .. } => event("subscribe").text("EventKey", ""),
            Self::FollowScene { scene, ticket, .. } => {
                event("subscribe").text("EventKey", &format!("{QR_SCENE_PREFIX}{scene}")).text("Ticket", ticket)
            }
            Self::Unfollow { .. } => event("unsubscribe"),
            Self::Scan { scene, ticket, .. } => event("SCAN").text("EventKey", scene).text("Ticket", ticket),
            Self::Click { key, .. } => event("CLICK").text("EventKey", key),
            Self::Text { content, msg_id, .. } => {
                head.clone().text("MsgType", "text").text("Content", content).number("MsgId", msg_id)
            }
            Self::Raw { fields, .. } => fields.iter().fold(head.clone(), |w, (name, value)| w.text(name, value)),
        }
    }
}

/// A message id in the range real ones fall in (19 digits), below 2^63 so it fits a signed 64-bit
/// column too.
pub fn new_msg_id() -> u64 {
    rand::thread_rng().gen_range(1_000_000_000_000_000_000..=i64::MAX.unsigned_abs())
}

/// A QR ticket shaped like WeChat's (`gQ…`, base64).
pub fn new_ticket() -> String {
    let mut bytes = [0u8; 60];
    rand::thread_rng().fill(&mut bytes[..]);
    format!("gQ{}", STANDARD.encode(bytes))
}

/// A nonce as WeChat sends them: a decimal number of up to ten digits.
pub(crate) fn new_nonce() -> String {
    rand::thread_rng().gen_range(100_000_000u32..=u32::MAX).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::xml::parse_fields;

    #[test]
    fn event_fields_follow_wechat() {
        let follow = OaMessage::FollowScene { openid: "o_u".into(), scene: "42".into(), ticket: "gQtk".into() }
            .to_xml("gh_x", 7);
        assert!(follow.starts_with("<xml><ToUserName><![CDATA[gh_x]]></ToUserName>\n"));
        let fields = parse_fields(&follow).unwrap();
        assert_eq!(fields.get("FromUserName"), Some("o_u"));
        assert_eq!(fields.get("CreateTime"), Some("7"));
        assert_eq!(fields.get("MsgType"), Some("event"));
        assert_eq!(fields.get("Event"), Some("subscribe"));
        assert_eq!(fields.get("EventKey"), Some("qrscene_42"));
        assert_eq!(fields.get("Ticket"), Some("gQtk"));

        let plain = parse_fields(&OaMessage::Follow { openid: "o".into() }.to_xml("g", 1)).unwrap();
        assert_eq!(plain.get("EventKey"), Some(""));
        assert!(!plain.contains("Ticket"));

        let scan = parse_fields(
            &OaMessage::Scan { openid: "o".into(), scene: "home_7".into(), ticket: "t".into() }.to_xml("g", 1),
        )
        .unwrap();
        assert_eq!(scan.get("Event"), Some("SCAN"));
        assert_eq!(scan.get("EventKey"), Some("home_7"));

        let text = parse_fields(
            &OaMessage::Text { openid: "o".into(), content: "签到".into(), msg_id: 6_306_264_631_030_309_910 }
                .to_xml("g", 1),
        )
        .unwrap();
        assert_eq!(text.get("MsgType"), Some("text"));
        assert_eq!(text.get("Content"), Some("签到"));
        assert_eq!(text.get("MsgId"), Some("6306264631030309910"));
        assert!(!text.contains("Event"));
    }

    #[test]
    fn generated_values_look_real() {
        let id = new_msg_id();
        assert_eq!(id.to_string().len(), 19);
        assert!(i64::try_from(id).is_ok());
        assert!(new_ticket().starts_with("gQ"));
        assert!(new_nonce().parse::<u32>().is_ok());
    }
}
