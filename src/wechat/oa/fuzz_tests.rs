//! Property tests of the official-account parsers against structured mutations of valid pushes:
//! [`parse_message`] / [`parse_envelope`] over generated XML, and [`MsgCrypt`] over hand-built
//! plaintexts (encrypted here with an independent AES-256-CBC, so the layout under test is the
//! protocol's, not a copy of the decoder's). Every malformed input must give one specific
//! [`XmlError`] or [`CryptoError`]; valid ones must round-trip.

use aes::cipher::{BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use proptest::prelude::*;

use super::crypto::{signature, CryptoError, MsgCrypt};
use super::message::{parse_envelope, parse_message, Event, Message, MessageKind, XmlError, MAX_XML_BYTES};
use super::reply;
use crate::wechat::fuzz::{self, byte_mutations, mutate, xml_text};

// ---------------------------------------------------------------------------------------------
// A model of a pushed message, rendered as XML in the ways WeChat (and pretty-printers) write it.

/// How one first-level element is written.
#[derive(Clone, Debug)]
enum Style {
    /// `<![CDATA[value]]>`, `]]>` split across two sections.
    Cdata,
    /// Escaped text; `numeric` writes non-ASCII characters as `&#x…;` references.
    Escaped { numeric: bool },
    /// Indented CDATA: whitespace, CDATA, whitespace.
    Pretty,
    /// `<Name/>` when the value is empty (CDATA otherwise).
    Empty,
    /// The value is markup, written as is (to move a field one level down).
    Raw,
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    value: String,
    style: Style,
    /// Extra first-level containers that should read as empty (`<X><Inner>…</Inner></X>`).
    nested: bool,
}

impl Field {
    fn new(name: &str, value: &str) -> Self {
        Self { name: name.to_owned(), value: value.to_owned(), style: Style::Cdata, nested: false }
    }
}

#[derive(Clone, Debug)]
struct Doc {
    bom: bool,
    decl: bool,
    comment: bool,
    fields: Vec<Field>,
}

fn cdata(value: &str) -> String {
    format!("<![CDATA[{}]]>", value.replace("]]>", "]]]]><![CDATA[>"))
}

fn escaped(value: &str, numeric: bool) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if numeric && !c.is_ascii() => out.push_str(&format!("&#x{:X};", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn render_field(field: &Field) -> String {
    let name = &field.name;
    if field.nested {
        return format!("<{name}><Inner>{}</Inner><Leaf/></{name}>", cdata(&field.value));
    }
    match field.style {
        Style::Empty if field.value.is_empty() => format!("<{name}/>"),
        Style::Cdata | Style::Empty => format!("<{name}>{}</{name}>", cdata(&field.value)),
        Style::Escaped { numeric } => format!("<{name}>{}</{name}>", escaped(&field.value, numeric)),
        Style::Pretty => format!("<{name}>\n    {}\n  </{name}>", cdata(&field.value)),
        Style::Raw => format!("<{name}>{}</{name}>", field.value),
    }
}

impl Doc {
    /// The pieces of the document; markup may be inserted between any two of them.
    fn pieces(&self) -> Vec<String> {
        let mut head = String::new();
        if self.bom {
            head.push('\u{feff}');
        }
        if self.decl {
            head.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        }
        if self.comment {
            head.push_str("<!-- linli test push -->\n");
        }
        let mut pieces = vec![head, "<xml>".to_owned()];
        pieces.extend(self.fields.iter().map(|f| format!("\n  {}", render_field(f))));
        pieces.push("\n</xml>".to_owned());
        pieces
    }

    fn render(&self) -> String {
        self.pieces().concat()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name && !f.nested)
    }
}

/// Random choices of a rendering, independent of the message.
#[derive(Clone, Debug)]
struct Look {
    styles: Vec<Style>,
    order: Vec<u32>,
    /// Whether an optional empty field is written empty (true) or left out.
    write_empty: Vec<bool>,
    extras: Vec<Field>,
    bom: bool,
    decl: bool,
    comment: bool,
    /// CreateTime is trimmed: write it with surrounding spaces.
    spaced_time: bool,
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        3 => Just(Style::Cdata),
        2 => any::<bool>().prop_map(|numeric| Style::Escaped { numeric }),
        1 => Just(Style::Pretty),
        1 => Just(Style::Empty),
    ]
}

fn extra_field() -> impl Strategy<Value = Field> {
    ("X_[A-Za-z0-9_]{0,8}", xml_text(20), style(), any::<bool>()).prop_map(|(name, value, style, nested)| Field {
        name,
        value,
        style,
        nested,
    })
}

fn look() -> impl Strategy<Value = Look> {
    (
        proptest::collection::vec(style(), 16),
        proptest::collection::vec(any::<u32>(), 16),
        proptest::collection::vec(any::<bool>(), 4),
        proptest::collection::vec(extra_field(), 0..4),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(|(styles, order, write_empty, extras, (bom, decl, comment, spaced_time))| Look {
            styles,
            order,
            write_empty,
            extras,
            bom,
            decl,
            comment,
            spaced_time,
        })
}

/// `name` with each ASCII letter's case chosen by `flips`.
fn recase(name: &str, flips: &[bool]) -> String {
    name.chars()
        .zip(flips.iter().cycle())
        .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect()
}

const KNOWN_EVENTS: [&str; 6] = ["subscribe", "unsubscribe", "scan", "click", "view", "location"];

fn event() -> impl Strategy<Value = Event> {
    let value = || xml_text(30);
    let non_empty = || xml_text(30).prop_filter("non-empty", |v| !v.is_empty());
    prop_oneof![
        (proptest::option::of(xml_text(20)), proptest::option::of(non_empty()))
            .prop_map(|(scene, ticket)| Event::Subscribe { scene, ticket }),
        Just(Event::Unsubscribe),
        (value(), proptest::option::of(non_empty())).prop_map(|(scene, ticket)| Event::Scan { scene, ticket }),
        value().prop_map(|key| Event::Click { key }),
        value().prop_map(|url| Event::View { url }),
        ("-?[0-9]{1,3}\\.[0-9]{1,6}", "-?[0-9]{1,3}\\.[0-9]{1,6}", "[0-9]{1,3}\\.[0-9]{1,6}")
            .prop_map(|(latitude, longitude, precision)| Event::Location { latitude, longitude, precision }),
        (
            "[A-Za-z_]{1,24}"
                .prop_filter("not a known event", |e| !KNOWN_EVENTS.iter().any(|k| k.eq_ignore_ascii_case(e))),
            proptest::option::of(non_empty())
        )
            .prop_map(|(event, key)| Event::Other { event, key }),
    ]
}

fn message() -> impl Strategy<Value = (Message, Vec<bool>)> {
    let kind = prop_oneof![
        xml_text(60).prop_map(|content| MessageKind::Text { content }),
        event().prop_map(MessageKind::Event),
        "[A-Za-z]{1,12}"
            .prop_filter("not text or event", |t| !t.eq_ignore_ascii_case("text") && !t.eq_ignore_ascii_case("event"))
            .prop_map(|msg_type| MessageKind::Other { msg_type }),
    ];
    (
        "gh_[0-9a-f]{12}",
        "[A-Za-z0-9_-]{1,28}",
        any::<i64>(),
        proptest::option::of("[0-9]{1,19}"),
        kind,
        proptest::collection::vec(any::<bool>(), 12),
    )
        .prop_map(|(to_user, from_user, create_time, msg_id, kind, flips)| {
            (Message { to_user, from_user, create_time, msg_id, kind }, flips)
        })
}

/// The first-level fields a push of `msg` carries; optional empty ones per `look`.
fn fields_of(msg: &Message, flips: &[bool], look: &Look) -> Vec<Field> {
    let mut fields = vec![
        Field::new("ToUserName", &msg.to_user),
        Field::new("FromUserName", &msg.from_user),
        Field::new(
            "CreateTime",
            &if look.spaced_time { format!(" {} ", msg.create_time) } else { msg.create_time.to_string() },
        ),
    ];
    if let Some(id) = &msg.msg_id {
        fields.push(Field::new("MsgId", id));
    }
    // An empty optional value: written empty or left out.
    let optional = |fields: &mut Vec<Field>, name: &str, value: &str, slot: usize| {
        if !value.is_empty() || look.write_empty[slot % look.write_empty.len()] {
            fields.push(Field::new(name, value));
        }
    };
    match &msg.kind {
        MessageKind::Text { content } => {
            fields.push(Field::new("MsgType", &recase("text", flips)));
            fields.push(Field::new("Content", content));
        }
        MessageKind::Other { msg_type } => fields.push(Field::new("MsgType", msg_type)),
        MessageKind::Event(event) => {
            fields.push(Field::new("MsgType", &recase("event", flips)));
            let name = match event {
                Event::Other { event, .. } => event.clone(),
                other => recase(&other.name_lowercase(), &flips[1..]),
            };
            fields.push(Field::new("Event", &name));
            match event {
                Event::Subscribe { scene, ticket } => {
                    let key = scene.as_ref().map(|s| format!("qrscene_{s}")).unwrap_or_default();
                    optional(&mut fields, "EventKey", &key, 0);
                    optional(&mut fields, "Ticket", ticket.as_deref().unwrap_or(""), 1);
                }
                Event::Unsubscribe => optional(&mut fields, "EventKey", "", 0),
                Event::Scan { scene, ticket } => {
                    optional(&mut fields, "EventKey", scene, 0);
                    optional(&mut fields, "Ticket", ticket.as_deref().unwrap_or(""), 1);
                }
                Event::Click { key } => optional(&mut fields, "EventKey", key, 0),
                Event::View { url } => optional(&mut fields, "EventKey", url, 0),
                Event::Location { latitude, longitude, precision } => {
                    fields.push(Field::new("Latitude", latitude));
                    fields.push(Field::new("Longitude", longitude));
                    fields.push(Field::new("Precision", precision));
                }
                Event::Other { key, .. } => optional(&mut fields, "EventKey", key.as_deref().unwrap_or(""), 0),
            }
        }
    }
    for (i, field) in fields.iter_mut().enumerate() {
        field.style = look.styles[i % look.styles.len()].clone();
    }
    fields.extend(look.extras.iter().cloned());
    // A stable shuffle: sort by the look's random keys.
    let mut keyed: Vec<(u32, Field)> =
        fields.into_iter().enumerate().map(|(i, f)| (look.order[i % look.order.len()], f)).collect();
    keyed.sort_by_key(|(key, _)| *key);
    keyed.into_iter().map(|(_, f)| f).collect()
}

fn doc_of(msg: &Message, flips: &[bool], look: &Look) -> Doc {
    Doc { bom: look.bom, decl: look.decl, comment: look.comment, fields: fields_of(msg, flips, look) }
}

fn valid_push() -> impl Strategy<Value = (Message, Doc)> {
    (message(), look()).prop_map(|((msg, flips), look)| {
        let doc = doc_of(&msg, &flips, &look);
        (msg, doc)
    })
}

/// The fields `parse_message` requires for this message's kind, in the order it checks them.
fn required_fields(msg: &Message) -> Vec<&'static str> {
    let mut names = vec!["ToUserName", "FromUserName", "CreateTime", "MsgType"];
    match msg.kind {
        MessageKind::Text { .. } => names.push("Content"),
        MessageKind::Event(_) => names.push("Event"),
        MessageKind::Other { .. } => {}
    }
    names
}

/// Markup that declares or expands entities, in the spellings quick-xml reports in different ways.
const DECLARATIONS: &[&str] = &[
    "<!DOCTYPE xml>",
    "<!doctype xml>",
    "<!DOCTYPE xml [<!ENTITY a \"b\">]>",
    "<!DOCTYPE xml SYSTEM \"http://example.invalid/x.dtd\">",
    "<!DOCTYPE xml [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>",
    "<!ENTITY a \"b\">",
    "<!ENTITY a SYSTEM \"file:///etc/passwd\">",
    "<!ELEMENT xml ANY>",
    "<!ATTLIST xml a CDATA \"b\">",
    "<!NOTATION n SYSTEM \"x\">",
];

const XML_TOKENS: &[&str] = &[
    "<xml>",
    "</xml>",
    "<Content>",
    "</Content>",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?x?>",
    "<!DOCTYPE x>",
    "<!ENTITY",
    "&amp;",
    "&lt;",
    "&#x4E2D;",
    "&#0;",
    "&#xD800;",
    "&#99999999999;",
    "&x;",
    "&",
    "<",
    ">",
    "/>",
    "\"",
    "=",
    " a=\"&x;\"",
    "\u{feff}",
    "\u{0}",
];

fn cases(default: u32) -> ProptestConfig {
    fuzz::config(default)
}

proptest! {
    #![proptest_config(cases(192))]

    /// A push written in any of WeChat's styles (CDATA, escaped, indented, empty elements,
    /// numeric references, any field order, unknown and nested extra fields, declaration,
    /// comment, BOM) reads back as the message it was made from.
    #[test]
    fn valid_pushes_read_back((msg, doc) in valid_push()) {
        let xml = doc.render();
        prop_assert_eq!(parse_message(&xml), Ok(msg.clone()), "{}", xml);
        let envelope = parse_envelope(&xml).unwrap();
        prop_assert_eq!(envelope.to_user.as_deref(), Some(msg.to_user.as_str()));
        prop_assert_eq!(envelope.encrypt, None);
    }

    /// Safe mode end to end: encrypt, wrap in the signed envelope, parse it, verify and decrypt,
    /// parse the message. Changing any signed part is a bad signature, checked before decryption.
    #[test]
    fn safe_mode_pipeline_round_trips(
        (msg, doc) in valid_push(),
        key in proptest::array::uniform32(any::<u8>()),
        appid in "wx[0-9a-f]{16}",
        token in "[A-Za-z0-9]{3,32}",
        timestamp in "[0-9]{10}",
        nonce in "[0-9]{1,10}",
        tampered in 0usize..4,
    ) {
        let encoding_key = STANDARD.encode(key).trim_end_matches('=').to_owned();
        let crypt = MsgCrypt::new(&encoding_key, &appid).unwrap();
        let xml = doc.render();
        let body = reply::encrypted_reply(&crypt, &token, &xml, &timestamp, &nonce);
        let envelope = parse_envelope(&body).unwrap();
        let encrypt = envelope.encrypt.unwrap();
        let msg_signature = signature(&[&token, &timestamp, &nonce, &encrypt]);
        let inner = crypt.decrypt_verified(&token, &timestamp, &nonce, &msg_signature, &encrypt).unwrap();
        prop_assert_eq!(&inner, &xml);
        prop_assert_eq!(parse_message(&inner), Ok(msg));

        let mut parts = [token.clone(), timestamp.clone(), nonce.clone(), encrypt.clone()];
        parts[tampered].push('0');
        prop_assert_eq!(
            crypt.decrypt_verified(&parts[0], &parts[1], &parts[2], &msg_signature, &parts[3]),
            Err(CryptoError::BadSignature)
        );
        // Garbage with a wrong signature is refused for the signature, not for its encoding.
        prop_assert_eq!(
            crypt.decrypt_verified(&token, &timestamp, &nonce, &msg_signature, "!!not base64!!"),
            Err(CryptoError::BadSignature)
        );
    }

    /// A required field that is absent, empty (where it is trimmed), or moved one level down is
    /// reported as that field, by name.
    #[test]
    fn missing_required_field_is_named(
        (msg, mut doc) in valid_push(),
        pick in any::<prop::sample::Index>(),
        how in 0u8..3,
        blank in "[ \t\n]{0,3}",
    ) {
        let required = required_fields(&msg);
        let name = required[pick.index(required.len())];
        let at = doc.position(name).unwrap();
        match how {
            0 => { doc.fields.remove(at); }
            1 if name != "Content" => doc.fields[at].value = blank,
            1 => { doc.fields.remove(at); }
            _ => {
                let inner = render_field(&doc.fields[at]);
                doc.fields[at] = Field { name: "Wrapper".into(), value: inner, style: Style::Raw, nested: false };
            }
        }
        let xml = doc.render();
        prop_assert_eq!(parse_message(&xml), Err(XmlError::MissingField(name)), "{}", xml);
    }

    /// A DOCTYPE, an entity/element/attribute declaration, or an undeclared entity reference,
    /// anywhere markup can go, refuses the whole document as [`XmlError::Doctype`].
    #[test]
    fn declarations_and_entities_are_refused(
        (_msg, doc) in valid_push(),
        declaration in proptest::sample::select(DECLARATIONS),
        entity in "[a-z][a-z0-9]{0,6}".prop_filter("not predefined", |e| !["amp", "lt", "gt", "quot", "apos"].contains(&e.as_str())),
        at in any::<prop::sample::Index>(),
        kind in 0u8..3,
    ) {
        let mut pieces = doc.pieces();
        let xml = match kind {
            // Between any two pieces: before the root, after `<xml>`, between fields, before `</xml>`.
            0 => {
                let i = at.index(pieces.len() + 1);
                pieces.insert(i, declaration.to_owned());
                pieces.concat()
            }
            // As the text of a field.
            1 => {
                let i = 2 + at.index(pieces.len() - 3);
                pieces[i] = format!("\n  <X_ref>a&{entity};b</X_ref>");
                pieces.concat()
            }
            // In an attribute of a field.
            _ => {
                let i = 2 + at.index(pieces.len() - 3);
                pieces[i] = format!("\n  <X_attr a=\"&{entity};\">v</X_attr>");
                pieces.concat()
            }
        };
        prop_assert_eq!(parse_envelope(&xml), Err(XmlError::Doctype), "{}", xml);
        prop_assert_eq!(parse_message(&xml), Err(XmlError::Doctype), "{}", xml);
    }

    /// Every strict prefix of a push is malformed (never a half-read message).
    #[test]
    fn truncated_pushes_are_malformed((_msg, doc) in valid_push(), at in any::<prop::sample::Index>()) {
        let xml = doc.render();
        let mut cut = at.index(xml.len());
        while !xml.is_char_boundary(cut) {
            cut -= 1;
        }
        let prefix = &xml[..cut];
        prop_assert!(matches!(parse_envelope(prefix), Err(XmlError::Malformed(_))), "{:?}: {:?}", prefix, parse_envelope(prefix));
        prop_assert!(matches!(parse_message(prefix), Err(XmlError::Malformed(_))), "{:?}", prefix);
    }

    /// A closing tag that does not match, a second root, or a CreateTime that is not an integer
    /// is malformed.
    #[test]
    fn broken_structure_is_malformed(
        (_msg, mut doc) in valid_push(),
        pick in any::<prop::sample::Index>(),
        bad_time in "[0-9]{0,4}[a-z.:][0-9a-z]{0,4}|[1-9][0-9]{19,24}",
        how in 0u8..3,
    ) {
        let xml = match how {
            0 => {
                let i = pick.index(doc.fields.len());
                let mut pieces = doc.pieces();
                let field = &doc.fields[i];
                let closing = format!("</{}>", field.name);
                let piece = &mut pieces[2 + i];
                match piece.rfind(&closing) {
                    Some(at) => piece.replace_range(at..at + closing.len(), &format!("</{}x>", field.name)),
                    // `<Name/>`: give it a closing tag it never opened.
                    None => piece.push_str(&closing),
                }
                pieces.concat()
            }
            1 => format!("{}<xml></xml>", doc.render()),
            _ => {
                let at = doc.position("CreateTime").unwrap();
                doc.fields[at].value = bad_time;
                doc.render()
            }
        };
        prop_assert!(matches!(parse_message(&xml), Err(XmlError::Malformed(_))), "{} → {:?}", xml, parse_message(&xml));
    }

    /// A later duplicate of a field does not change the message (the first occurrence wins), and
    /// CDATA holding markup (`</Content>`, `<!DOCTYPE`, `&x;`, `]]>`) is plain text.
    #[test]
    fn duplicates_and_cdata_tricks(
        (msg, mut doc) in valid_push(),
        pick in any::<prop::sample::Index>(),
        other in xml_text(20),
    ) {
        let i = pick.index(doc.fields.len());
        let mut copy = doc.fields[i].clone();
        copy.value = other;
        doc.fields.push(copy);
        let tricky = "</Content><!DOCTYPE x>&x;]]><xml>";
        doc.fields.push(Field::new("X_tricky", tricky));
        prop_assert_eq!(parse_message(&doc.render()), Ok(msg));
    }

    /// Past [`MAX_XML_BYTES`], a body is refused for its size, whatever else is wrong with it.
    #[test]
    fn oversized_pushes_are_refused_by_size(
        (_msg, mut doc) in valid_push(),
        extra in 1usize..4096,
        prefix in proptest::sample::select(DECLARATIONS),
    ) {
        let len = doc.render().len();
        doc.fields.push(Field::new("X_fill", &"a".repeat(MAX_XML_BYTES - len.min(MAX_XML_BYTES) + extra)));
        let xml = format!("{prefix}{}", doc.render());
        prop_assert!(xml.len() > MAX_XML_BYTES);
        prop_assert_eq!(parse_envelope(&xml), Err(XmlError::TooLarge));
        prop_assert_eq!(parse_message(&xml), Err(XmlError::TooLarge));
    }

    /// Random byte-level damage (flips, cuts, insertions of XML syntax, repeats): never a panic, and
    /// whatever is accepted still satisfies the message contract (required ids present, trimmed).
    #[test]
    fn damaged_pushes_never_panic((_msg, doc) in valid_push(), mutations in byte_mutations(XML_TOKENS, 4)) {
        let bytes = mutate(doc.render().as_bytes(), &mutations);
        let xml = String::from_utf8_lossy(&bytes);
        if let Ok(msg) = parse_message(&xml) {
            for id in [&msg.to_user, &msg.from_user] {
                prop_assert!(!id.is_empty() && id.trim() == id.as_str(), "{:?}", id);
            }
        }
        if let Ok(envelope) = parse_envelope(&xml) {
            for value in [envelope.to_user, envelope.encrypt].into_iter().flatten() {
                prop_assert!(!value.is_empty() && value.trim() == value.as_str(), "{:?}", value);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Safe-mode decryption over hand-built plaintexts.

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// Encrypts a block-aligned plaintext as WeChat does (AES-256-CBC, IV = key[..16], no padding
/// added by the cipher), with the key decoded from `encoding_key` independently of `MsgCrypt`.
fn encrypt_plaintext(encoding_key: &str, plaintext: &[u8]) -> String {
    let key = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
    .decode(format!("{encoding_key}="))
    .unwrap();
    assert_eq!(plaintext.len() % 16, 0);
    let mut buf = plaintext.to_vec();
    let mut enc = Aes256CbcEnc::new_from_slices(&key, &key[..16]).unwrap();
    for chunk in buf.chunks_exact_mut(16) {
        enc.encrypt_block_mut(aes::Block::from_mut_slice(chunk));
    }
    STANDARD.encode(buf)
}

/// What is wrong with a hand-built plaintext.
#[derive(Clone, Debug)]
enum Fault {
    None,
    /// The 4-byte length field says this instead of the message's length.
    Length(u32),
    /// The last padding byte is this instead of the pad length.
    LastPadByte(u8),
    /// A padding byte other than the last differs.
    PadByte {
        at: prop::sample::Index,
        value: u8,
    },
    /// Another appid at the end.
    AppId(String),
    /// The message bytes are not UTF-8.
    NotUtf8 {
        at: prop::sample::Index,
    },
    /// Fewer bytes than the 20-byte header before the padding.
    Short(usize),
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        2 => Just(Fault::None),
        2 => prop_oneof![any::<u32>(), 0u32..300, Just(u32::MAX), Just(u32::MAX - 19)].prop_map(Fault::Length),
        2 => any::<u8>().prop_map(Fault::LastPadByte),
        1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, value)| Fault::PadByte { at, value }),
        1 => "[A-Za-z0-9]{0,24}".prop_map(Fault::AppId),
        1 => any::<prop::sample::Index>().prop_map(|at| Fault::NotUtf8 { at }),
        1 => (0usize..20).prop_map(Fault::Short),
    ]
}

/// Builds `random ‖ len ‖ msg ‖ appid ‖ pad` with `fault`, and the error `decrypt` must give
/// (`None`: it must succeed with `msg`).
fn build_plaintext(random: &[u8; 16], msg: &str, appid: &str, fault: &Fault) -> (Vec<u8>, Option<CryptoError>) {
    let mut msg_bytes = msg.as_bytes().to_vec();
    let mut appid_bytes = appid.as_bytes().to_vec();
    let mut len_field = msg_bytes.len() as u32;
    let mut expected = None;
    match fault {
        Fault::None => {}
        Fault::Length(claimed) => {
            len_field = *claimed;
            let available = (msg_bytes.len() + appid_bytes.len()) as u64;
            if u64::from(*claimed) > available {
                expected = Some(CryptoError::BadLength);
            } else if *claimed as usize != msg_bytes.len() {
                // The appid is read from the wrong place.
                expected = Some(CryptoError::AppIdMismatch);
            }
        }
        Fault::AppId(other) => {
            if other != appid {
                expected = Some(CryptoError::AppIdMismatch);
            }
            appid_bytes = other.as_bytes().to_vec();
        }
        Fault::NotUtf8 { at } => {
            let i = at.index(msg_bytes.len() + 1);
            msg_bytes.insert(i, 0xff);
            len_field += 1;
            expected = Some(CryptoError::NotUtf8);
        }
        Fault::Short(n) => {
            let mut content = random.to_vec();
            content.extend_from_slice(&len_field.to_be_bytes());
            content.truncate(*n);
            return (pad(content), Some(CryptoError::BadLength));
        }
        Fault::LastPadByte(_) | Fault::PadByte { .. } => {}
    }
    let mut content = random.to_vec();
    content.extend_from_slice(&len_field.to_be_bytes());
    content.extend_from_slice(&msg_bytes);
    content.extend_from_slice(&appid_bytes);
    let content_len = content.len();
    let mut plain = pad(content);
    let pad_len = plain.len() - content_len;
    match fault {
        Fault::LastPadByte(value) if usize::from(*value) != pad_len => {
            *plain.last_mut().unwrap() = *value;
            // A claimed pad of 1 byte is consistent by itself: the real pad bytes are then read
            // as the end of the appid.
            expected = Some(if *value == 1 { CryptoError::AppIdMismatch } else { CryptoError::BadPadding });
        }
        Fault::PadByte { at, value } if pad_len >= 2 && usize::from(*value) != pad_len => {
            let i = content_len + at.index(pad_len - 1);
            plain[i] = *value;
            expected = Some(CryptoError::BadPadding);
        }
        _ => {}
    }
    (plain, expected)
}

/// WeChat's padding: 1..=32 bytes, each equal to the count, up to a multiple of 32.
fn pad(mut content: Vec<u8>) -> Vec<u8> {
    let k = 32 - content.len() % 32;
    content.resize(content.len() + k, k as u8);
    content
}

fn encoding_key() -> impl Strategy<Value = String> {
    proptest::array::uniform32(any::<u8>()).prop_map(|k| STANDARD.encode(k).trim_end_matches('=').to_owned())
}

proptest! {
    #![proptest_config(cases(384))]

    /// Each fault in the decrypted layout (length field larger than the buffer, up to u32::MAX;
    /// wrong, zero or oversized padding; another appid; non-UTF-8; a short header) gives its own
    /// error, and a faultless plaintext decrypts to its message.
    #[test]
    fn plaintext_faults_give_their_error(
        key in encoding_key(),
        random in any::<[u8; 16]>(),
        msg in xml_text(80),
        appid in "wx[0-9a-f]{16}",
        fault in fault(),
    ) {
        let crypt = MsgCrypt::new(&key, &appid).unwrap();
        let (plain, expected) = build_plaintext(&random, &msg, &appid, &fault);
        let result = crypt.decrypt(&encrypt_plaintext(&key, &plain));
        match expected {
            None => prop_assert_eq!(result, Ok(msg)),
            Some(err) => prop_assert_eq!(result, Err(err)),
        }
    }

    /// Ciphertext that is not whole AES blocks, is empty, or is not base64 is refused for that.
    #[test]
    fn ciphertext_shape_faults(
        key in encoding_key(),
        msg in xml_text(80),
        cut in 1usize..16,
        junk in proptest::sample::select(&["!", "*", "-", "_", "中", "\u{0}", "==", "=A"][..]),
        at in any::<prop::sample::Index>(),
    ) {
        let crypt = MsgCrypt::new(&key, "wx0123456789abcdef").unwrap();
        let raw = STANDARD.decode(crypt.encrypt(&msg)).unwrap();
        // Not a whole number of blocks.
        let short = &raw[..raw.len() - cut];
        prop_assert_eq!(crypt.decrypt(&STANDARD.encode(short)), Err(CryptoError::BadLength));
        prop_assert_eq!(crypt.decrypt(""), Err(CryptoError::BadLength));
        // Characters outside standard base64 (URL-safe ones included), or misplaced padding.
        let mut encoded = STANDARD.encode(&raw);
        let i = at.index(encoded.len() - 2);
        encoded.insert_str(i, junk);
        prop_assert_eq!(crypt.decrypt(&encoded), Err(CryptoError::Base64));
    }

    /// A claimed message length larger than the buffer is refused without reading past it, for
    /// any buffer size; so is an `Encrypt` value too long to come out of a bounded push.
    #[test]
    fn lengths_are_bounded(
        key in encoding_key(),
        blocks in 2usize..64,
        claimed in prop_oneof![any::<u32>(), 0u32..2100],
    ) {
        let crypt = MsgCrypt::new(&key, "wx0123456789abcdef").unwrap();
        let mut content = vec![0u8; 16];
        content.extend_from_slice(&claimed.to_be_bytes());
        content.resize(blocks * 32 - 1, b'a');
        let plain = pad(content);
        let room = plain.len() - 1 - 20;
        let result = crypt.decrypt(&encrypt_plaintext(&key, &plain));
        if claimed as usize > room {
            prop_assert_eq!(result, Err(CryptoError::BadLength));
        } else {
            prop_assert_eq!(result, Err(CryptoError::AppIdMismatch));
        }
    }
}

/// Regression: an `Encrypt` value larger than any push can carry is refused before it is decoded
/// (memory stays bounded by [`MAX_XML_BYTES`] whoever calls `decrypt`).
#[test]
fn oversized_encrypt_is_refused_before_decoding() {
    let crypt = MsgCrypt::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "wx0123456789abcdef").unwrap();
    let big = crypt.encrypt(&"a".repeat(MAX_XML_BYTES));
    assert!(big.len() > MAX_XML_BYTES);
    assert_eq!(crypt.decrypt(&big), Err(CryptoError::BadLength));
    // Just below the limit still decrypts.
    let fits = crypt.encrypt(&"a".repeat(MAX_XML_BYTES / 2));
    assert_eq!(crypt.decrypt(&fits).unwrap().len(), MAX_XML_BYTES / 2);
}
