//! Property tests of how v2 answers are read: the flat XML parser and the signature check over
//! generated, signed answers and structured mutations of them. Every malformed answer must give
//! one specific [`XmlError`] or [`SignatureError`], never a panic and never a trusted field that
//! the signature did not cover.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::wechat::fuzz::{self, byte_mutations, mutate, xml_text};
use crate::wechat::pay::xml::MAX_XML_BYTES;

const API_KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fn api_key() -> Secret {
    Secret::new(API_KEY)
}

/// One client per answer policy for the whole run (building one loads the TLS roots).
fn client(require_signed_answers: bool) -> &'static V2Client {
    static LAX: OnceLock<V2Client> = OnceLock::new();
    static STRICT: OnceLock<V2Client> = OnceLock::new();
    let cell = if require_signed_answers { &STRICT } else { &LAX };
    cell.get_or_init(|| {
        V2Client::new(V2Config {
            base_url: "http://127.0.0.1:9".into(),
            mch_id: "10000098".into(),
            api_key: api_key(),
            client_identity_pem: None,
            root_ca_pem: None,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            require_signed_answers,
        })
        .unwrap()
    })
}

/// Values that look like markup to a careless parser; inside CDATA they are plain text.
const TRICKY_VALUES: &[&str] =
    &["<!DOCTYPE xml>", "<!ENTITY a \"b\">", "]]>", "&amp;", "&x;", "</xml>", "<xml><a>1</a></xml>", "中文 红包"];

/// How a value is written.
#[derive(Clone, Copy, Debug)]
enum Style {
    Cdata,
    Escaped,
    /// `<name/>` when empty (CDATA otherwise).
    Empty,
}

/// A signed v2 answer as WeChat Pay writes it.
#[derive(Clone, Debug)]
struct Answer {
    /// Every field, `sign` included.
    fields: BTreeMap<String, String>,
    /// Order of the elements in the document.
    order: Vec<String>,
    styles: Vec<Style>,
    decl: bool,
}

impl Answer {
    /// The document in pieces; markup may go between any two.
    fn pieces_with(&self, fields: &[(String, String)]) -> Vec<String> {
        let mut pieces = Vec::new();
        if self.decl {
            pieces.push("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n".to_owned());
        }
        pieces.push("<xml>\n".to_owned());
        for (i, (name, value)) in fields.iter().enumerate() {
            pieces.push(format!("{}\n", render_field(name, value, self.styles[i % self.styles.len()])));
        }
        pieces.push("</xml>".to_owned());
        pieces
    }

    fn render_with(&self, fields: &[(String, String)]) -> String {
        self.pieces_with(fields).concat()
    }

    fn pairs(&self) -> Vec<(String, String)> {
        self.order.iter().map(|name| (name.clone(), self.fields[name].clone())).collect()
    }

    fn render(&self) -> String {
        self.render_with(&self.pairs())
    }
}

fn render_field(name: &str, value: &str, style: Style) -> String {
    match style {
        Style::Empty if value.is_empty() => format!("<{name}/>"),
        Style::Cdata | Style::Empty => {
            format!("<{name}><![CDATA[{}]]></{name}>", value.replace("]]>", "]]]]><![CDATA[>"))
        }
        Style::Escaped => {
            let escaped = value.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            format!("<{name}>{escaped}</{name}>")
        }
    }
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => xml_text(24),
        1 => proptest::sample::select(TRICKY_VALUES).prop_map(str::to_owned),
        1 => Just(String::new()),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    let codes = prop_oneof![Just("SUCCESS".to_owned()), Just("FAIL".to_owned()), "[A-Z_]{1,12}"];
    (
        codes.clone(),
        codes,
        proptest::collection::btree_map("[a-z][a-z_]{0,11}", value(), 0..10),
        any::<bool>(),
        proptest::collection::vec(prop_oneof![Just(Style::Cdata), Just(Style::Escaped), Just(Style::Empty)], 8),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(return_code, result_code, extra, hmac, styles, shuffle, decl)| {
            let mut fields = extra;
            fields.remove("sign");
            fields.remove("sign_type");
            fields.insert("return_code".into(), return_code);
            fields.insert("result_code".into(), result_code);
            fields.insert("nonce_str".into(), "5K8264ILTKCH16CQ2502SI8ZNMTM67VS".into());
            let sign_type = if hmac {
                fields.insert("sign_type".into(), "HMAC-SHA256".into());
                SignType::HmacSha256
            } else {
                SignType::Md5
            };
            let signature = sign(&fields, &api_key(), sign_type);
            fields.insert("sign".into(), signature);
            let mut order: Vec<String> = fields.keys().cloned().collect();
            // A rotation chosen by `shuffle`: WeChat's field order is not alphabetical.
            let len = order.len();
            order.rotate_left((shuffle as usize) % len);
            Answer { fields, order, styles, decl }
        })
}

/// The fields a signature covers: non-empty ones other than `sign`.
fn signed_part(fields: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    fields.iter().filter(|(k, v)| k.as_str() != "sign" && !v.is_empty()).map(|(k, v)| (k.clone(), v.clone())).collect()
}

const XML_TOKENS: &[&str] = &[
    "<xml>",
    "</xml>",
    "<a>",
    "</a>",
    "<![CDATA[",
    "]]>",
    "<!--x-->",
    "<?x?>",
    "<!DOCTYPE x>",
    "<!ENTITY",
    "&amp;",
    "&#x4E2D;",
    "&#xD800;",
    "&x;",
    "<sign>",
    "</sign>",
    "\u{feff}",
];

const DECLARATIONS: &[&str] = &[
    "<!DOCTYPE xml>",
    "<!DOCTYPE xml [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>",
    "<!DOCTYPE xml [<!ENTITY % p SYSTEM \"http://example.invalid/p\"> %p;]>",
    "<!ENTITY e \"x\">",
];

proptest! {
    #![proptest_config(fuzz::config(192))]

    /// A signed answer in any field order and writing style reads back field for field and verifies.
    #[test]
    fn signed_answers_read_back(answer in answer()) {
        let xml = answer.render();
        prop_assert_eq!(parse_xml(xml.as_bytes()), Ok(answer.fields.clone()), "{}", xml);
        prop_assert_eq!(client(true).check_answer(xml.as_bytes()), Ok(answer.fields.clone()));
    }

    /// Changing, adding or removing any signed (non-empty) field breaks the signature; a field
    /// written twice is refused before any signature is checked.
    #[test]
    fn tampered_answers_are_refused(
        answer in answer(),
        pick in any::<prop::sample::Index>(),
        replacement in xml_text(12).prop_filter("non-empty", |v| !v.is_empty()),
        how in 0u8..4,
    ) {
        let mut pairs = answer.pairs();
        let signed: Vec<usize> = (0..pairs.len())
            // `sign_type` picks the algorithm: changing it is a different error, tested in v2's own tests.
            .filter(|&i| !["sign", "sign_type"].contains(&pairs[i].0.as_str()) && !pairs[i].1.is_empty())
            .collect();
        let i = signed[pick.index(signed.len())];
        let expected = match how {
            0 => {
                prop_assume!(pairs[i].1 != replacement);
                pairs[i].1 = replacement;
                Err(SignatureError::Mismatch)
            }
            1 => {
                pairs.remove(i);
                Err(SignatureError::Mismatch)
            }
            2 => {
                pairs.push(("zz_added_field1".into(), replacement));
                Err(SignatureError::Mismatch)
            }
            _ => {
                let copy = pairs[i].clone();
                let name = copy.0.clone();
                pairs.push(copy);
                let xml = answer.render_with(&pairs);
                prop_assert_eq!(parse_xml(xml.as_bytes()), Err(XmlError::DuplicateField(name)));
                return Ok(());
            }
        };
        let xml = answer.render_with(&pairs);
        let fields = parse_xml(xml.as_bytes()).unwrap();
        prop_assert_eq!(verify(&fields, &api_key(), SignType::Md5), expected);
        let refused = client(false).check_answer(xml.as_bytes()).unwrap_err();
        prop_assert_eq!(refused.0, CODE_BAD_SIGNATURE);
    }

    /// A DOCTYPE or entity declaration anywhere, or a reference to an undeclared entity, is
    /// refused as [`XmlError::Doctype`], even when a value holds `<!DOCTYPE` as CDATA text.
    #[test]
    fn declarations_and_entities_are_refused(
        answer in answer(),
        declaration in proptest::sample::select(DECLARATIONS),
        at in any::<prop::sample::Index>(),
        entity in "[a-z][a-z0-9]{0,6}".prop_filter("not predefined", |e| !["amp", "lt", "gt", "quot", "apos"].contains(&e.as_str())),
        as_reference in any::<bool>(),
    ) {
        let mut pieces = answer.pieces_with(&answer.pairs());
        // Between two elements, before the root or after it.
        let i = at.index(pieces.len() + 1);
        if as_reference {
            pieces.insert(i.clamp(2, pieces.len() - 1), format!("<zz_ref>a&{entity};b</zz_ref>"));
        } else {
            pieces.insert(i, declaration.to_owned());
        }
        let xml = pieces.concat();
        prop_assert_eq!(parse_xml(xml.as_bytes()), Err(XmlError::Doctype), "{}", xml);
    }

    /// Every strict prefix of an answer is malformed, whatever text its values hold.
    #[test]
    fn truncated_answers_are_malformed(answer in answer(), at in any::<prop::sample::Index>()) {
        let xml = answer.render();
        let cut = at.index(xml.len());
        let result = parse_xml(&xml.as_bytes()[..cut]);
        prop_assert!(
            matches!(result, Err(XmlError::Malformed(_)) | Err(XmlError::NotUtf8)),
            "{:?} → {:?}", &xml[..xml.floor_char_boundary_compat(cut)], result
        );
        // A cut inside a multi-byte character is a UTF-8 error, anything else a structural one.
        if xml.is_char_boundary(cut) {
            prop_assert!(matches!(result, Err(XmlError::Malformed(_))));
        }
    }

    /// A byte that is not UTF-8 anywhere, or a body past the size limit, is refused for that.
    #[test]
    fn encoding_and_size(answer in answer(), at in any::<prop::sample::Index>(), byte in 0x80u8..=0xff, extra in 1usize..2048) {
        let mut bytes = answer.render().into_bytes();
        // A lone continuation byte or a lead byte followed by ASCII is never valid UTF-8.
        let i = at.index(bytes.len() + 1);
        bytes.splice(i..i, [byte, b'<']);
        prop_assert_eq!(parse_xml(&bytes), Err(XmlError::NotUtf8));

        let mut big = answer.fields.clone();
        big.insert("zz_fill".into(), "a".repeat(MAX_XML_BYTES + extra));
        let xml = to_xml(big.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        prop_assert_eq!(parse_xml(xml.as_bytes()), Err(XmlError::TooLarge));
    }

    /// Random damage to a signed answer: never a panic, and whatever the strict client still
    /// accepts carries exactly the signed fields WeChat sent.
    #[test]
    fn damaged_answers_never_yield_unsigned_fields(answer in answer(), mutations in byte_mutations(XML_TOKENS, 4)) {
        let bytes = mutate(answer.render().as_bytes(), &mutations);
        if let Ok(fields) = client(true).check_answer(&bytes) {
            prop_assert_eq!(signed_part(&fields), signed_part(&answer.fields));
        }
    }

    /// Whatever fields an answer has, only a double SUCCESS is a success, only a listed code a
    /// definite failure, and a success must echo our number.
    #[test]
    fn classification_never_invents_outcomes(
        fields in proptest::collection::btree_map(
            proptest::sample::select(&["return_code", "result_code", "err_code", "err_code_des", "return_msg", "mch_billno", "status", "total_amount"][..]).prop_map(str::to_owned),
            prop_oneof![Just("SUCCESS".to_owned()), Just("FAIL".to_owned()), Just("B1".to_owned()), Just("NOTENOUGH".to_owned()), Just("SYSTEMERROR".to_owned()), "\\PC{0,8}"],
            0..8,
        ),
    ) {
        let success = fields.get("return_code").map(String::as_str) == Some("SUCCESS")
            && fields.get("result_code").map(String::as_str) == Some("SUCCESS");
        match classify_payout(PayoutApi::RedPack, &fields, |f| read_red_pack_sent(f, "B1")) {
            V2Outcome::Success(sent) => {
                prop_assert!(success);
                prop_assert_eq!(sent.mch_billno, "B1");
                prop_assert!(fields.get("mch_billno").is_none_or(|b| b.is_empty() || b == "B1"));
            }
            V2Outcome::Failed { code, .. } => {
                prop_assert!(!success);
                prop_assert!(is_definite_failure(PayoutApi::RedPack, &code));
            }
            V2Outcome::Unknown { .. } => {}
        }
        if let V2Query::Found(info) = classify_query(&fields, |f| read_red_pack_info(f, "B1")) {
            prop_assert!(success);
            prop_assert!(fields.get("status").is_some_and(|s| !s.is_empty()));
            prop_assert_eq!(info.mch_billno, "B1");
        }
    }
}

/// `str::floor_char_boundary` is not stable on the crate's minimum Rust: a small stand-in.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, at: usize) -> usize;
}

impl FloorCharBoundary for String {
    fn floor_char_boundary_compat(&self, mut at: usize) -> usize {
        while !self.is_char_boundary(at) {
            at -= 1;
        }
        at
    }
}
