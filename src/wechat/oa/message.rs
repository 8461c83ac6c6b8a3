//! Parsing of the XML that WeChat pushes to linli's official-account callback.
//!
//! * [`parse_envelope`]: the outer POST body (to find `Encrypt` in safe/compatible mode).
//! * [`parse_message`]: a plaintext or decrypted message/event, as [`Message`].
//!
//! The parser is quick-xml's event reader over a flat `<xml>…</xml>` document. It never expands
//! entities: any DOCTYPE/DTD or entity declaration, and any entity reference other than the five
//! predefined ones and numeric character references, is rejected ([`XmlError::Doctype`]). Input
//! size is capped before parsing ([`MAX_XML_BYTES`]), so memory is bounded by the input size.
//! Values may be CDATA or escaped text; unknown elements are ignored; elements nested below the
//! first level (e.g. `ScanCodeInfo`) are skipped.

use std::borrow::Cow;
use std::collections::HashMap;

use quick_xml::errors::Error as QxError;
use quick_xml::escape::{resolve_xml_entity, EscapeError};
use quick_xml::events::{BytesStart, BytesText, Event as XmlEvent};
use quick_xml::Reader;

/// Largest body linli parses (bytes). WeChat pushes are a few KiB; larger input is refused unparsed.
pub const MAX_XML_BYTES: usize = 64 * 1024;

/// Why a pushed XML body was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum XmlError {
    /// Larger than [`MAX_XML_BYTES`]; not parsed.
    #[error("XML body larger than {MAX_XML_BYTES} bytes")]
    TooLarge,
    /// A DOCTYPE/DTD, an entity declaration, or a reference to a non-predefined entity.
    #[error("XML DOCTYPE, DTD or custom entity is not allowed")]
    Doctype,
    /// Not well-formed, not an `<xml>` document, or a field with an impossible value.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// A required field is absent or empty.
    #[error("required XML field <{0}> is missing")]
    MissingField(&'static str),
}

/// The outer body of a push: in safe mode only `ToUserName` + `Encrypt`; in compatible mode the
/// plaintext fields **and** `Encrypt`; in plaintext mode no `Encrypt`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// `ToUserName` (the account's `gh_…` id), trimmed; `None` when absent or empty.
    pub to_user: Option<String>,
    /// `Encrypt` (base64 ciphertext), trimmed; `None` when absent or empty.
    pub encrypt: Option<String>,
}

/// Parses the outer POST body. Use `encrypt` to tell safe/compatible mode from plaintext mode.
pub fn parse_envelope(xml: &str) -> Result<Envelope, XmlError> {
    let fields = Fields::parse(xml)?;
    Ok(Envelope {
        to_user: fields.trimmed("ToUserName").map(str::to_owned),
        encrypt: fields.trimmed("Encrypt").map(str::to_owned),
    })
}

/// A message or event pushed by WeChat, reduced to what linli needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `ToUserName`: the official account's original id (`gh_…`).
    pub to_user: String,
    /// `FromUserName`: the user's openid.
    pub from_user: String,
    /// `CreateTime`: unix seconds.
    pub create_time: i64,
    /// `MsgId` of ordinary messages (text, image, …); `None` for events.
    pub msg_id: Option<String>,
    /// What was pushed.
    pub kind: MessageKind,
}

/// Kind of a pushed [`Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    /// `MsgType=text`: the user typed `content`.
    Text {
        /// `Content`, as sent (may be empty).
        content: String,
    },
    /// `MsgType=event`.
    Event(Event),
    /// Any other `MsgType` (image, voice, location, link, …): kept, never an error.
    Other {
        /// `MsgType` as sent.
        msg_type: String,
    },
}

/// An event push (`MsgType=event`). Event names match case-insensitively.
///
/// Event-specific fields that are absent are read as empty strings (or `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Plain follow: scene None. Follow through a parametric QR code: EventKey `"qrscene_<scene>"` →
    /// scene `Some("<scene>")` (prefix stripped), ticket.
    Subscribe {
        /// QR scene (`EventKey` without `qrscene_`); `None` unless the key has that prefix.
        scene: Option<String>,
        /// `Ticket` of the QR code, when present and non-empty.
        ticket: Option<String>,
    },
    /// The user unfollowed.
    Unsubscribe,
    /// Already-following user scanned a parametric QR code: EventKey is the scene, no prefix.
    Scan {
        /// `EventKey`: scene_id or scene_str.
        scene: String,
        /// `Ticket` of the QR code, when present and non-empty.
        ticket: Option<String>,
    },
    /// Menu click (`CLICK`).
    Click {
        /// `EventKey`: the menu item's key.
        key: String,
    },
    /// Menu link opened (`VIEW`).
    View {
        /// `EventKey`: the URL.
        url: String,
    },
    /// Location report (`LOCATION`), values as sent (decimal strings).
    Location {
        /// `Latitude`.
        latitude: String,
        /// `Longitude`.
        longitude: String,
        /// `Precision`.
        precision: String,
    },
    /// Any other event (TEMPLATESENDJOBFINISH, debug_demo, …): kept, never an error.
    Other {
        /// `Event` as sent.
        event: String,
        /// `EventKey`, when present and non-empty.
        key: Option<String>,
    },
}

const QRSCENE_PREFIX: &str = "qrscene_";

impl Event {
    /// The event name, lowercased (as used in dedupe keys).
    pub fn name_lowercase(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            Event::Subscribe { .. } => "subscribe",
            Event::Unsubscribe => "unsubscribe",
            Event::Scan { .. } => "scan",
            Event::Click { .. } => "click",
            Event::View { .. } => "view",
            Event::Location { .. } => "location",
            Event::Other { event, .. } => return Cow::Owned(event.to_lowercase()),
        })
    }

    /// The `EventKey` as WeChat sent it (`qrscene_` prefix restored for QR follows); empty if none.
    pub fn event_key(&self) -> Cow<'_, str> {
        match self {
            Event::Subscribe { scene: Some(scene), .. } => Cow::Owned(format!("{QRSCENE_PREFIX}{scene}")),
            Event::Scan { scene, .. } => Cow::Borrowed(scene),
            Event::Click { key } => Cow::Borrowed(key),
            Event::View { url } => Cow::Borrowed(url),
            Event::Other { key: Some(key), .. } => Cow::Borrowed(key),
            _ => Cow::Borrowed(""),
        }
    }

    /// The QR `Ticket`, for follow/scan events that carry one.
    pub fn ticket(&self) -> Option<&str> {
        match self {
            Event::Subscribe { ticket, .. } | Event::Scan { ticket, .. } => ticket.as_deref(),
            _ => None,
        }
    }
}

impl Message {
    /// Durable dedupe key: `"msg:<MsgId>"` for messages with a MsgId; for events
    /// `"ev:<FromUserName>:<CreateTime>:<Event lowercased>:<EventKey>"` plus `":<Ticket>"` when
    /// present (FromUserName+CreateTime alone collides: several events can share one second).
    /// A non-event without MsgId gets `"ft:<FromUserName>:<CreateTime>:<MsgType lowercased>"`.
    ///
    /// For a follow whose EventKey is neither empty nor `qrscene_…`, the key part is empty.
    pub fn dedupe_key(&self) -> String {
        match &self.kind {
            MessageKind::Event(event) => {
                let mut key = format!(
                    "ev:{}:{}:{}:{}",
                    self.from_user,
                    self.create_time,
                    event.name_lowercase(),
                    event.event_key()
                );
                if let Some(ticket) = event.ticket() {
                    key.push(':');
                    key.push_str(ticket);
                }
                key
            }
            _ => match &self.msg_id {
                Some(id) => format!("msg:{id}"),
                None => {
                    let msg_type = match &self.kind {
                        MessageKind::Text { .. } => Cow::Borrowed("text"),
                        MessageKind::Other { msg_type } => Cow::Owned(msg_type.to_lowercase()),
                        MessageKind::Event(_) => Cow::Borrowed("event"),
                    };
                    format!("ft:{}:{}:{}", self.from_user, self.create_time, msg_type)
                }
            },
        }
    }
}

/// Parses a plaintext (or decrypted) message. Event names match case-insensitively.
///
/// Required: `ToUserName`, `FromUserName`, `CreateTime` (integer), `MsgType`, and `Event` when
/// `MsgType=event`; `Content` when `MsgType=text`. Everything else is optional.
pub fn parse_message(xml: &str) -> Result<Message, XmlError> {
    let fields = Fields::parse(xml)?;
    let to_user = fields.required("ToUserName")?.to_owned();
    let from_user = fields.required("FromUserName")?.to_owned();
    let create_time = fields
        .required("CreateTime")?
        .parse::<i64>()
        .map_err(|_| XmlError::Malformed("CreateTime is not an integer".into()))?;
    let msg_type = fields.required("MsgType")?;
    let msg_id = fields.trimmed("MsgId").map(str::to_owned);

    let kind = if msg_type.eq_ignore_ascii_case("event") {
        MessageKind::Event(parse_event(&fields)?)
    } else if msg_type.eq_ignore_ascii_case("text") {
        let content = fields.raw("Content").ok_or(XmlError::MissingField("Content"))?;
        MessageKind::Text { content: content.to_owned() }
    } else {
        MessageKind::Other { msg_type: msg_type.to_owned() }
    };
    Ok(Message { to_user, from_user, create_time, msg_id, kind })
}

fn parse_event(fields: &Fields) -> Result<Event, XmlError> {
    let name = fields.required("Event")?;
    let text = |name: &str| fields.raw(name).unwrap_or_default().to_owned();
    let non_empty = |name: &str| fields.raw(name).filter(|v| !v.is_empty()).map(str::to_owned);
    let is = |expected: &str| name.eq_ignore_ascii_case(expected);

    Ok(if is("subscribe") {
        let scene = fields.raw("EventKey").and_then(|k| k.strip_prefix(QRSCENE_PREFIX)).map(str::to_owned);
        Event::Subscribe { scene, ticket: non_empty("Ticket") }
    } else if is("unsubscribe") {
        Event::Unsubscribe
    } else if is("SCAN") {
        Event::Scan { scene: text("EventKey"), ticket: non_empty("Ticket") }
    } else if is("CLICK") {
        Event::Click { key: text("EventKey") }
    } else if is("VIEW") {
        Event::View { url: text("EventKey") }
    } else if is("LOCATION") {
        Event::Location { latitude: text("Latitude"), longitude: text("Longitude"), precision: text("Precision") }
    } else {
        Event::Other { event: name.to_owned(), key: non_empty("EventKey") }
    })
}

/// The first-level children of `<xml>` with their text values (first occurrence wins).
struct Fields {
    map: HashMap<String, String>,
}

/// A first-level element being read.
struct Open {
    name: String,
    value: String,
    /// Leading whitespace-only text, held back: dropped if a CDATA section follows
    /// (pretty-printed CDATA), kept otherwise.
    whitespace: String,
    has_cdata: bool,
    has_children: bool,
}

fn malformed(err: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(err.to_string())
}

fn map_qx_error(err: QxError) -> XmlError {
    match err {
        QxError::EscapeError(EscapeError::UnrecognizedEntity(..)) => XmlError::Doctype,
        other => malformed(other),
    }
}

/// Unescapes text, allowing only the five predefined entities and numeric references.
fn unescape_text(text: &BytesText<'_>) -> Result<String, XmlError> {
    text.unescape_with(resolve_xml_entity).map(Cow::into_owned).map_err(map_qx_error)
}

/// Attribute values are never used, but are checked for entity references like text.
fn check_attributes(start: &BytesStart<'_>) -> Result<(), XmlError> {
    for attr in start.attributes() {
        let attr = attr.map_err(malformed)?;
        attr.unescape_value_with(resolve_xml_entity).map_err(map_qx_error)?;
    }
    Ok(())
}

fn element_name(start: &BytesStart<'_>) -> Result<String, XmlError> {
    std::str::from_utf8(start.name().as_ref()).map(str::to_owned).map_err(malformed)
}

/// Whether the bytes at a syntax error start a declaration (`<!ENTITY`, `<!ELEMENT`, `<!ATTLIST`,
/// `<!NOTATION`) outside a DOCTYPE, which quick-xml reports as a generic syntax error.
fn is_declaration_at(xml: &str, pos: u64) -> bool {
    let Ok(pos) = usize::try_from(pos) else {
        return false;
    };
    let Some(rest) = xml.as_bytes().get(pos..) else {
        return false;
    };
    let rest = &rest[..rest.len().min(12)];
    [&b"<!ENTITY"[..], b"<!ELEMENT", b"<!ATTLIST", b"<!NOTATION"]
        .iter()
        .any(|decl| rest.len() >= decl.len() && rest[..decl.len()].eq_ignore_ascii_case(decl))
}

impl Fields {
    fn parse(xml: &str) -> Result<Self, XmlError> {
        if xml.len() > MAX_XML_BYTES {
            return Err(XmlError::TooLarge);
        }
        let xml = xml.strip_prefix('\u{FEFF}').unwrap_or(xml);
        let mut reader = Reader::from_str(xml);
        {
            let config = reader.config_mut();
            config.check_end_names = true;
            config.allow_unmatched_ends = false;
            config.expand_empty_elements = false;
            config.trim_text(false);
        }

        let mut map: HashMap<String, String> = HashMap::new();
        let mut depth: usize = 0;
        let mut root_seen = false;
        let mut open: Option<Open> = None;

        loop {
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(err) => {
                    if is_declaration_at(xml, reader.error_position())
                        || is_declaration_at(xml, reader.buffer_position())
                    {
                        return Err(XmlError::Doctype);
                    }
                    return Err(map_qx_error(err));
                }
            };
            match event {
                XmlEvent::DocType(_) => return Err(XmlError::Doctype),
                XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) => {}
                XmlEvent::Start(start) => {
                    check_attributes(&start)?;
                    depth += 1;
                    match depth {
                        1 => {
                            if root_seen {
                                return Err(malformed("more than one root element"));
                            }
                            root_seen = true;
                            if start.name().as_ref() != b"xml" {
                                return Err(malformed("root element must be <xml>"));
                            }
                        }
                        2 => {
                            open = Some(Open {
                                name: element_name(&start)?,
                                value: String::new(),
                                whitespace: String::new(),
                                has_cdata: false,
                                has_children: false,
                            });
                        }
                        _ => {
                            if let Some(field) = open.as_mut() {
                                field.has_children = true;
                            }
                        }
                    }
                }
                XmlEvent::Empty(start) => {
                    check_attributes(&start)?;
                    match depth {
                        0 => {
                            if root_seen {
                                return Err(malformed("more than one root element"));
                            }
                            root_seen = true;
                            if start.name().as_ref() != b"xml" {
                                return Err(malformed("root element must be <xml>"));
                            }
                        }
                        1 => {
                            map.entry(element_name(&start)?).or_default();
                        }
                        _ => {
                            if let Some(field) = open.as_mut() {
                                field.has_children = true;
                            }
                        }
                    }
                }
                XmlEvent::End(_) => {
                    // quick-xml has already checked that the name matches the open element.
                    if depth == 2 {
                        if let Some(field) = open.take() {
                            // Containers (e.g. ScanCodeInfo) keep an empty value. Held-back
                            // whitespace is the value only when nothing else came (no CDATA).
                            let value = if field.has_children {
                                String::new()
                            } else if field.value.is_empty() && !field.has_cdata {
                                field.whitespace
                            } else {
                                field.value
                            };
                            map.entry(field.name).or_insert(value);
                        }
                    }
                    depth = depth.saturating_sub(1);
                }
                XmlEvent::Text(text) => {
                    // Unescaped wherever it is, so any custom entity reference is refused.
                    let value = unescape_text(&text)?;
                    let blank = value.chars().all(|c| c.is_ascii_whitespace());
                    match depth {
                        2 => {
                            if let Some(field) = open.as_mut() {
                                if blank && field.has_cdata {
                                    // Indentation after a CDATA section: formatting, dropped.
                                } else if blank && field.value.is_empty() {
                                    // Maybe indentation before a CDATA section: held back.
                                    field.whitespace.push_str(&value);
                                } else {
                                    let held = std::mem::take(&mut field.whitespace);
                                    field.value.push_str(&held);
                                    field.value.push_str(&value);
                                }
                            }
                        }
                        0 if !blank => return Err(malformed("text outside the root element")),
                        // Whitespace around fields, or text inside nested elements: ignored.
                        _ => {}
                    }
                }
                XmlEvent::CData(cdata) => match depth {
                    2 => {
                        if let Some(field) = open.as_mut() {
                            let s = std::str::from_utf8(&cdata).map_err(malformed)?;
                            field.whitespace.clear();
                            field.has_cdata = true;
                            field.value.push_str(s);
                        }
                    }
                    0 => return Err(malformed("CDATA outside the root element")),
                    _ => {}
                },
                XmlEvent::Eof => {
                    if depth != 0 {
                        return Err(malformed("unexpected end of input"));
                    }
                    if !root_seen {
                        return Err(malformed("no <xml> root element"));
                    }
                    return Ok(Self { map });
                }
            }
        }
    }

    /// The value as parsed (not trimmed).
    fn raw(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// The value trimmed of ASCII whitespace; `None` when absent or empty.
    fn trimmed(&self, name: &str) -> Option<&str> {
        self.raw(name).map(|v| v.trim_matches(|c: char| c.is_ascii_whitespace())).filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<&str, XmlError> {
        self.trimmed(name).ok_or(XmlError::MissingField(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wrap(body: &str) -> String {
        format!(
            "<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName>\
             <FromUserName><![CDATA[oUser-1_x]]></FromUserName>\
             <CreateTime>1713424427</CreateTime>{body}</xml>"
        )
    }

    fn event_xml(event: &str, extra: &str) -> String {
        wrap(&format!("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>{extra}"))
    }

    fn event_of(xml: &str) -> Event {
        match parse_message(xml).unwrap().kind {
            MessageKind::Event(e) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn e_decrypted_request_parses() {
        // Official worked example E (protocol notes §2): decrypt, then parse.
        let crypt =
            super::super::crypto::MsgCrypt::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "wx134c8103faa5a59e")
                .unwrap();
        let envelope = "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA[D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==]]></Encrypt></xml>";
        let env = parse_envelope(envelope).unwrap();
        assert_eq!(env.to_user.as_deref(), Some("gh_97417a04a28d"));
        let inner = crypt
            .decrypt_verified(
                "AAAAA",
                "1715943329",
                "1590219412",
                "6c12a4205838198b8fa631b3220723bb07f1015c",
                env.encrypt.as_deref().unwrap(),
            )
            .unwrap();
        let msg = parse_message(&inner).unwrap();
        assert_eq!(msg.to_user, "gh_97417a04a28d");
        assert_eq!(msg.from_user, "o9AgO5Kd5ggOC-bXrbNODIiE3bGY");
        assert_eq!(msg.create_time, 1_715_943_329);
        assert_eq!(msg.kind, MessageKind::Event(Event::Other { event: "debug_demo".into(), key: None }));
        assert_eq!(msg.dedupe_key(), "ev:o9AgO5Kd5ggOC-bXrbNODIiE3bGY:1715943329:debug_demo:");
    }

    #[test]
    fn text_message_with_msg_id() {
        let xml = wrap(
            "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 <b>&amp;</b>]]></Content>\
             <MsgId>24523645474561234</MsgId>",
        );
        let msg = parse_message(&xml).unwrap();
        assert_eq!(msg.to_user, "gh_123456789abc");
        assert_eq!(msg.from_user, "oUser-1_x");
        assert_eq!(msg.create_time, 1_713_424_427);
        assert_eq!(msg.msg_id.as_deref(), Some("24523645474561234"));
        assert_eq!(msg.kind, MessageKind::Text { content: "你好 <b>&amp;</b>".into() });
        assert_eq!(msg.dedupe_key(), "msg:24523645474561234");
    }

    #[test]
    fn escaped_text_values() {
        let xml = "<xml><ToUserName>gh_a</ToUserName><FromUserName>o_b</FromUserName>\
                   <CreateTime>1</CreateTime><MsgType>text</MsgType>\
                   <Content>a &lt;b&gt; &amp; &quot;c&apos; &#20320;&#x597D;</Content></xml>";
        let msg = parse_message(xml).unwrap();
        assert_eq!(msg.kind, MessageKind::Text { content: "a <b> & \"c' 你好".into() });
        assert_eq!(msg.msg_id, None);
        assert_eq!(msg.dedupe_key(), "ft:o_b:1:text");
    }

    #[test]
    fn plain_follow() {
        let e = event_of(&event_xml("subscribe", "<EventKey><![CDATA[]]></EventKey>"));
        assert_eq!(e, Event::Subscribe { scene: None, ticket: None });
        // EventKey absent altogether.
        let msg = parse_message(&event_xml("subscribe", "")).unwrap();
        assert_eq!(msg.kind, MessageKind::Event(Event::Subscribe { scene: None, ticket: None }));
        assert_eq!(msg.msg_id, None);
        assert_eq!(msg.dedupe_key(), "ev:oUser-1_x:1713424427:subscribe:");
    }

    #[test]
    fn qrscene_follow_strips_prefix() {
        let xml = event_xml(
            "subscribe",
            "<EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
        );
        let msg = parse_message(&xml).unwrap();
        assert_eq!(
            msg.kind,
            MessageKind::Event(Event::Subscribe { scene: Some("123123".into()), ticket: Some("TICKET".into()) })
        );
        assert_eq!(msg.dedupe_key(), "ev:oUser-1_x:1713424427:subscribe:qrscene_123123:TICKET");
        // scene_str values are kept verbatim after the prefix.
        let e = event_of(&event_xml("subscribe", "<EventKey><![CDATA[qrscene_invite:42]]></EventKey>"));
        assert_eq!(e, Event::Subscribe { scene: Some("invite:42".into()), ticket: None });
    }

    #[test]
    fn scan_keeps_scene_without_prefix() {
        let xml = event_xml("SCAN", "<EventKey><![CDATA[123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>");
        let msg = parse_message(&xml).unwrap();
        assert_eq!(msg.kind, MessageKind::Event(Event::Scan { scene: "123123".into(), ticket: Some("TICKET".into()) }));
        assert_eq!(msg.dedupe_key(), "ev:oUser-1_x:1713424427:scan:123123:TICKET");
    }

    #[test]
    fn click_view_location_unsubscribe() {
        assert_eq!(
            event_of(&event_xml("CLICK", "<EventKey><![CDATA[V1001_GOOD]]></EventKey>")),
            Event::Click { key: "V1001_GOOD".into() }
        );
        let view = parse_message(&event_xml(
            "VIEW",
            "<EventKey><![CDATA[https://example.com/a?b=1&c=2]]></EventKey><MenuId>208379533</MenuId>",
        ))
        .unwrap();
        assert_eq!(view.kind, MessageKind::Event(Event::View { url: "https://example.com/a?b=1&c=2".into() }));
        assert_eq!(view.dedupe_key(), "ev:oUser-1_x:1713424427:view:https://example.com/a?b=1&c=2");
        let loc = parse_message(&event_xml(
            "LOCATION",
            "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>",
        ))
        .unwrap();
        assert_eq!(
            loc.kind,
            MessageKind::Event(Event::Location {
                latitude: "23.137466".into(),
                longitude: "113.352425".into(),
                precision: "119.385040".into()
            })
        );
        assert_eq!(loc.dedupe_key(), "ev:oUser-1_x:1713424427:location:");
        assert_eq!(event_of(&event_xml("unsubscribe", "<EventKey><![CDATA[]]></EventKey>")), Event::Unsubscribe);
    }

    #[test]
    fn event_names_are_case_insensitive() {
        for name in ["SUBSCRIBE", "Subscribe", "subscribe"] {
            assert!(matches!(event_of(&event_xml(name, "")), Event::Subscribe { .. }));
        }
        for name in ["scan", "Scan", "SCAN"] {
            assert!(matches!(event_of(&event_xml(name, "<EventKey>1</EventKey>")), Event::Scan { .. }));
        }
        assert!(matches!(event_of(&event_xml("click", "")), Event::Click { .. }));
        assert!(matches!(event_of(&event_xml("view", "")), Event::View { .. }));
        assert!(matches!(event_of(&event_xml("location", "")), Event::Location { .. }));
        assert_eq!(event_of(&event_xml("UNSUBSCRIBE", "")), Event::Unsubscribe);
        // MsgType too.
        let msg = parse_message(&wrap("<MsgType>EVENT</MsgType><Event>SCAN</Event><EventKey>7</EventKey>")).unwrap();
        assert_eq!(msg.dedupe_key(), "ev:oUser-1_x:1713424427:scan:7");
    }

    #[test]
    fn unknown_event_and_msg_type_are_kept() {
        let msg = parse_message(&event_xml(
            "TEMPLATESENDJOBFINISH",
            "<MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>",
        ))
        .unwrap();
        assert_eq!(msg.kind, MessageKind::Event(Event::Other { event: "TEMPLATESENDJOBFINISH".into(), key: None }));
        assert_eq!(msg.dedupe_key(), "ev:oUser-1_x:1713424427:templatesendjobfinish:");
        let e = event_of(&event_xml("debug_demo", "<EventKey>k</EventKey>"));
        assert_eq!(e, Event::Other { event: "debug_demo".into(), key: Some("k".into()) });

        let image = parse_message(&wrap(
            "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://x/y]]></PicUrl>\
             <MediaId><![CDATA[m]]></MediaId><MsgId>1234567890123456</MsgId>",
        ))
        .unwrap();
        assert_eq!(image.kind, MessageKind::Other { msg_type: "image".into() });
        assert_eq!(image.dedupe_key(), "msg:1234567890123456");
        let no_id = parse_message(&wrap("<MsgType>Shiny</MsgType>")).unwrap();
        assert_eq!(no_id.dedupe_key(), "ft:oUser-1_x:1713424427:shiny");
    }

    #[test]
    fn dedupe_keys_separate_same_second_events() {
        let a = parse_message(&event_xml("CLICK", "<EventKey>a</EventKey>")).unwrap();
        let b = parse_message(&event_xml("CLICK", "<EventKey>b</EventKey>")).unwrap();
        let c = parse_message(&event_xml("VIEW", "<EventKey>a</EventKey>")).unwrap();
        let keys = [a.dedupe_key(), b.dedupe_key(), c.dedupe_key()];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[2]);
        // Same push delivered twice → same key.
        assert_eq!(a.dedupe_key(), parse_message(&event_xml("click", "<EventKey>a</EventKey>")).unwrap().dedupe_key());
    }

    #[test]
    fn nested_and_unknown_elements_are_tolerated() {
        let xml = event_xml(
            "scancode_waitmsg",
            "<EventKey><![CDATA[rselfmenu_0_0]]></EventKey>\
             <ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType>\
             <ScanResult><![CDATA[1]]></ScanResult><Deep><Deeper/></Deep></ScanCodeInfo>\
             <Unknown attr=\"x\">y</Unknown><EmptyOne/>",
        );
        let e = event_of(&xml);
        assert_eq!(e, Event::Other { event: "scancode_waitmsg".into(), key: Some("rselfmenu_0_0".into()) });
        // Nested names do not leak into the first level.
        let fields = Fields::parse(&xml).unwrap();
        assert_eq!(fields.raw("ScanCodeInfo"), Some(""));
        assert_eq!(fields.raw("ScanType"), None);
        assert_eq!(fields.raw("EmptyOne"), Some(""));
    }

    #[test]
    fn declaration_comments_and_pretty_printing() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- push -->\n<xml>\n  \
                   <ToUserName>\n    <![CDATA[gh_a]]>\n  </ToUserName>\n  \
                   <FromUserName><![CDATA[o_b]]></FromUserName>\n  \
                   <CreateTime> 12 </CreateTime>\n  <MsgType><![CDATA[text]]></MsgType>\n  \
                   <Content><![CDATA[  spaced  ]]></Content>\n</xml>\n";
        let msg = parse_message(xml).unwrap();
        assert_eq!(msg.to_user, "gh_a");
        assert_eq!(msg.create_time, 12);
        assert_eq!(msg.kind, MessageKind::Text { content: "  spaced  ".into() });
        // CDATA split in two sections (how "]]>" is carried) joins back.
        let xml = wrap("<MsgType>text</MsgType><Content><![CDATA[a]]]]><![CDATA[>b]]></Content>");
        assert_eq!(parse_message(&xml).unwrap().kind, MessageKind::Text { content: "a]]>b".into() });
    }

    #[test]
    fn leading_bom_is_ignored() {
        let env = parse_envelope("\u{FEFF}<xml><Encrypt>a</Encrypt></xml>").unwrap();
        assert_eq!(env.encrypt.as_deref(), Some("a"));
    }

    #[test]
    fn envelope_modes() {
        let safe = "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><Encrypt><![CDATA[abc=]]></Encrypt></xml>";
        assert_eq!(
            parse_envelope(safe).unwrap(),
            Envelope { to_user: Some("gh_a".into()), encrypt: Some("abc=".into()) }
        );
        let compat =
            wrap("<MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId><Encrypt><![CDATA[xyz]]></Encrypt>");
        let env = parse_envelope(&compat).unwrap();
        assert_eq!(env.encrypt.as_deref(), Some("xyz"));
        assert_eq!(env.to_user.as_deref(), Some("gh_123456789abc"));
        assert!(parse_message(&compat).is_ok());
        let plain = wrap("<MsgType>text</MsgType><Content>hi</Content>");
        assert_eq!(parse_envelope(&plain).unwrap().encrypt, None);
        let pretty = "<xml>\n<Encrypt>\n  <![CDATA[abc=]]>\n</Encrypt>\n</xml>";
        assert_eq!(parse_envelope(pretty).unwrap().encrypt.as_deref(), Some("abc="));
        assert_eq!(parse_envelope("<xml/>").unwrap(), Envelope::default());
        assert_eq!(parse_envelope("<xml><Encrypt></Encrypt></xml>").unwrap().encrypt, None);
    }

    #[test]
    fn doctype_and_entities_are_rejected() {
        let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol3;</Content></xml>"#;
        assert_eq!(parse_message(billion_laughs), Err(XmlError::Doctype));
        assert_eq!(parse_envelope(billion_laughs), Err(XmlError::Doctype));

        let xxe = r#"<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>&xxe;</ToUserName></xml>"#;
        assert_eq!(parse_envelope(xxe), Err(XmlError::Doctype));

        let external_dtd = r#"<!DOCTYPE xml SYSTEM "http://evil.example/x.dtd"><xml><Encrypt>a</Encrypt></xml>"#;
        assert_eq!(parse_envelope(external_dtd), Err(XmlError::Doctype));

        let lower = r#"<!doctype xml><xml><Encrypt>a</Encrypt></xml>"#;
        assert_eq!(parse_envelope(lower), Err(XmlError::Doctype));

        // DOCTYPE after the root started.
        let inside = r#"<xml><!DOCTYPE x><Encrypt>a</Encrypt></xml>"#;
        assert_eq!(parse_envelope(inside), Err(XmlError::Doctype));

        // An undeclared entity reference (no DOCTYPE at all) is refused, not expanded or kept.
        let undeclared = wrap("<MsgType>text</MsgType><Content>&xxe;</Content>");
        assert_eq!(parse_message(&undeclared), Err(XmlError::Doctype));
        let in_attr = r#"<xml><Encrypt a="&xxe;">a</Encrypt></xml>"#;
        assert_eq!(parse_envelope(in_attr), Err(XmlError::Doctype));
        let between = r#"<xml>&lol;<Encrypt>a</Encrypt></xml>"#;
        assert_eq!(parse_envelope(between), Err(XmlError::Doctype));

        // Bare declarations outside a DOCTYPE.
        for decl in [
            r#"<xml><!ENTITY x "y"><Encrypt>a</Encrypt></xml>"#,
            r#"<!ENTITY x "y"><xml/>"#,
            r#"<xml><!ELEMENT x ANY></xml>"#,
            r#"<xml><!ATTLIST x y CDATA "z"></xml>"#,
        ] {
            assert_eq!(parse_envelope(decl), Err(XmlError::Doctype), "{decl}");
        }

        // Entity-looking text inside CDATA is just text (WeChat wraps user content in CDATA).
        let cdata = wrap("<MsgType>text</MsgType><Content><![CDATA[<!DOCTYPE x> &xxe;]]></Content>");
        assert_eq!(parse_message(&cdata).unwrap().kind, MessageKind::Text { content: "<!DOCTYPE x> &xxe;".into() });
    }

    #[test]
    fn oversize_is_rejected_before_parsing() {
        let filler = "a".repeat(MAX_XML_BYTES);
        let big = wrap(&format!("<MsgType>text</MsgType><Content>{filler}</Content>"));
        assert_eq!(parse_message(&big), Err(XmlError::TooLarge));
        assert_eq!(parse_envelope(&big), Err(XmlError::TooLarge));
        // Even if it is garbage or a DOCTYPE: size is checked first.
        let junk = format!("<!DOCTYPE x>{}", "<".repeat(MAX_XML_BYTES));
        assert_eq!(parse_envelope(&junk), Err(XmlError::TooLarge));
        // Exactly at the limit is parsed.
        let head = "<xml><Encrypt>";
        let tail = "</Encrypt></xml>";
        let exact = format!("{head}{}{tail}", "A".repeat(MAX_XML_BYTES - head.len() - tail.len()));
        assert_eq!(exact.len(), MAX_XML_BYTES);
        assert!(parse_envelope(&exact).is_ok());
    }

    #[test]
    fn malformed_inputs() {
        let cases = [
            "",
            "   ",
            "not xml",
            "<xml>",
            "<xml><ToUserName>a</xml>",
            "<xml><A></B></xml>",
            "<xml></xml><xml></xml>",
            "<xml/><xml/>",
            "<root><Encrypt>a</Encrypt></root>",
            "<xml><Encrypt><![CDATA[abc</Encrypt></xml>",
            "<xml><Encrypt>a &amp b</Encrypt></xml>",
            "<xml><Encrypt>&#xZZ;</Encrypt></xml>",
            "<xml></xml>trailing",
            "</xml>",
            "<xml><!-- unterminated </xml>",
        ];
        for case in cases {
            assert!(
                matches!(parse_envelope(case), Err(XmlError::Malformed(_))),
                "{case:?} → {:?}",
                parse_envelope(case)
            );
        }
        let bad_time = wrap("<MsgType>text</MsgType><Content>x</Content>").replace("1713424427", "soon");
        assert!(matches!(parse_message(&bad_time), Err(XmlError::Malformed(_))));
    }

    #[test]
    fn missing_fields() {
        let full = [
            ("ToUserName", "<ToUserName>gh</ToUserName>"),
            ("FromUserName", "<FromUserName>o</FromUserName>"),
            ("CreateTime", "<CreateTime>1</CreateTime>"),
            ("MsgType", "<MsgType>event</MsgType>"),
            ("Event", "<Event>CLICK</Event>"),
        ];
        for (skip, _) in full {
            let body: String = full.iter().filter(|(name, _)| *name != skip).map(|(_, el)| *el).collect();
            assert_eq!(parse_message(&format!("<xml>{body}</xml>")), Err(XmlError::MissingField(skip)));
        }
        // Empty counts as missing for required fields.
        let empty_from = "<xml><ToUserName>gh</ToUserName><FromUserName><![CDATA[]]></FromUserName>\
                          <CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>";
        assert_eq!(parse_message(empty_from), Err(XmlError::MissingField("FromUserName")));
        let no_content = wrap("<MsgType>text</MsgType>");
        assert_eq!(parse_message(&no_content), Err(XmlError::MissingField("Content")));
        // Safe-mode envelope is not a message.
        assert_eq!(
            parse_message("<xml><ToUserName>gh</ToUserName><Encrypt>x</Encrypt></xml>"),
            Err(XmlError::MissingField("FromUserName"))
        );
    }

    #[test]
    fn first_occurrence_wins() {
        let xml = wrap("<MsgType>text</MsgType><Content>first</Content><Content>second</Content>");
        assert_eq!(parse_message(&xml).unwrap().kind, MessageKind::Text { content: "first".into() });
    }

    #[test]
    fn deep_nesting_is_bounded_and_fine() {
        let depth = 5000;
        let xml = format!("<xml>{}{}<Encrypt>a</Encrypt></xml>", "<a>".repeat(depth), "</a>".repeat(depth));
        assert_eq!(parse_envelope(&xml).unwrap().encrypt.as_deref(), Some("a"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn parse_never_panics_on_strings(s in any::<String>()) {
            let _ = parse_message(&s);
            let _ = parse_envelope(&s);
        }

        #[test]
        fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = parse_message(&s);
            let _ = parse_envelope(&s);
        }

        #[test]
        fn parse_never_panics_on_xmlish(parts in proptest::collection::vec(prop_oneof![
            Just("<xml>"), Just("</xml>"), Just("<Event>"), Just("</Event>"), Just("<![CDATA["),
            Just("]]>"), Just("<!DOCTYPE x>"), Just("&amp;"), Just("&x;"), Just("&#"), Just("<"),
            Just(">"), Just("<MsgType>event</MsgType>"), Just("<CreateTime>9</CreateTime>"),
            Just("<ToUserName>a</ToUserName>"), Just("<FromUserName>b</FromUserName>"),
            Just("<a/>"), Just("<?pi?>"), Just("<!--c-->"), Just("text"), Just("\u{0}"),
            Just("<!ENTITY"), Just("\""), Just("="),
        ], 0..40)) {
            let s: String = parts.concat();
            let _ = parse_message(&s);
            let _ = parse_envelope(&s);
        }

        #[test]
        fn cdata_values_roundtrip(content in any::<String>()) {
            let escaped = content.replace("]]>", "]]]]><![CDATA[>");
            let xml = wrap(&format!("<MsgType>text</MsgType><Content><![CDATA[{escaped}]]></Content>"));
            prop_assert_eq!(parse_message(&xml).unwrap().kind, MessageKind::Text { content });
        }
    }
}
