//! The flat XML of the v2 API: `<xml><name>value</name>…</xml>`.
//!
//! Writing wraps every value in CDATA (splitting any `]]>`), so Chinese text and markup characters
//! travel unchanged. Reading accepts only that shape: one `<xml>` root whose children are text or
//! CDATA leaves; a DOCTYPE or any entity other than XML's five and character references is refused
//! (no entity expansion, no external fetches), input is capped in size, and a repeated field is an
//! error because a signature over an ambiguous map means nothing. Nested containers (such as the
//! `hblist` of `gethbinfo`) are skipped: no signed v2 answer carries them.

use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::Reader;

/// Largest XML document accepted.
pub const MAX_XML_BYTES: usize = super::MAX_ANSWER_BYTES;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("XML document larger than {MAX_XML_BYTES} bytes")]
    TooLarge,
    #[error("XML is not UTF-8")]
    NotUtf8,
    #[error("XML with a DOCTYPE, a declaration or a custom entity is refused")]
    Doctype,
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("field `{0}` appears more than once")]
    DuplicateField(String),
    #[error("field name `{0}` is not a plain XML name")]
    BadFieldName(String),
    #[error("value of `{0}` contains a character XML cannot carry")]
    BadValue(String),
}

fn malformed(what: impl Into<String>) -> XmlError {
    XmlError::Malformed(what.into())
}

/// A reference to an entity XML does not predefine could only be expanded from a DTD: refused
/// like one.
fn map_error(err: quick_xml::Error) -> XmlError {
    match err {
        quick_xml::Error::EscapeError(quick_xml::escape::EscapeError::UnrecognizedEntity(..)) => XmlError::Doctype,
        other => malformed(other.to_string()),
    }
}

/// Whether markup declaring something (`<!DOCTYPE`, `<!ENTITY`, `<!ELEMENT`, `<!ATTLIST`,
/// `<!NOTATION`, in any case) starts at byte `pos` of `text`.
fn declaration_at(text: &str, pos: u64) -> bool {
    let Some(rest) = usize::try_from(pos).ok().and_then(|pos| text.as_bytes().get(pos..)) else {
        return false;
    };
    [&b"<!DOCTYPE"[..], b"<!ENTITY", b"<!ELEMENT", b"<!ATTLIST", b"<!NOTATION"]
        .iter()
        .any(|decl| rest.len() >= decl.len() && rest[..decl.len()].eq_ignore_ascii_case(decl))
}

/// Characters XML 1.0 can carry. Others (NUL, most C0 controls, U+FFFE/FFFF) cannot be sent even in CDATA.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Field names we write: WeChat's are ASCII `[A-Za-z_][A-Za-z0-9_]*`.
fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Writes `fields` as a v2 request document, every value in CDATA.
pub fn to_xml<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<String, XmlError> {
    let mut out = String::from("<xml>");
    for (name, value) in fields {
        if !is_field_name(name) {
            return Err(XmlError::BadFieldName(name.to_owned()));
        }
        if !value.chars().all(is_xml_char) {
            return Err(XmlError::BadValue(name.to_owned()));
        }
        out.push('<');
        out.push_str(name);
        out.push_str("><![CDATA[");
        // `]]>` would end the section: end it after `]]`, and start a new one for `>`.
        out.push_str(&value.replace("]]>", "]]]]><![CDATA[>"));
        out.push_str("]]></");
        out.push_str(name);
        out.push('>');
    }
    out.push_str("</xml>");
    Ok(out)
}

/// Parses a v2 answer into its top-level fields.
pub fn parse_xml(input: &[u8]) -> Result<BTreeMap<String, String>, XmlError> {
    if input.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge);
    }
    let text = std::str::from_utf8(input).map_err(|_| XmlError::NotUtf8)?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    {
        let config = reader.config_mut();
        config.check_end_names = true;
        config.allow_unmatched_ends = false;
        config.expand_empty_elements = true;
        config.trim_text(false);
    }

    let mut fields = BTreeMap::new();
    let mut depth = 0usize;
    let mut root_done = false;
    // The leaf being read: its name, its value so far, and whether it turned out to hold elements.
    let mut open: Option<(String, String, bool)> = None;

    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            // quick-xml reports a declaration it does not parse (`<!ENTITY` outside a DOCTYPE, an
            // unclosed DOCTYPE) as a syntax error: look at what starts where it stopped, not at
            // the whole text, where `<!DOCTYPE` may be a value's CDATA.
            Err(err) => {
                return Err(
                    if declaration_at(text, reader.error_position()) || declaration_at(text, reader.buffer_position()) {
                        XmlError::Doctype
                    } else {
                        map_error(err)
                    },
                )
            }
        };
        match event {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Start(start) => {
                depth += 1;
                match depth {
                    1 => {
                        if root_done {
                            return Err(malformed("more than one root element"));
                        }
                        if start.name().as_ref() != b"xml" {
                            return Err(malformed("root element must be <xml>"));
                        }
                    }
                    2 => {
                        let name =
                            std::str::from_utf8(start.name().as_ref()).map_err(|_| XmlError::NotUtf8)?.to_owned();
                        open = Some((name, String::new(), false));
                    }
                    _ => {
                        if let Some(field) = open.as_mut() {
                            field.2 = true;
                        }
                    }
                }
            }
            Event::End(_) => {
                if depth == 2 {
                    if let Some((name, value, nested)) = open.take() {
                        if !nested {
                            if fields.contains_key(&name) {
                                return Err(XmlError::DuplicateField(name));
                            }
                            fields.insert(name, value);
                        }
                    }
                }
                if depth == 1 {
                    root_done = true;
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(text_event) => {
                let value = text_event.unescape().map_err(map_error)?;
                match depth {
                    0 | 1 if !value.trim().is_empty() => return Err(malformed("text outside a field")),
                    2 => {
                        if let Some(field) = open.as_mut() {
                            field.1.push_str(&value);
                        }
                    }
                    _ => {}
                }
            }
            Event::CData(cdata) => {
                let value = std::str::from_utf8(cdata.as_ref()).map_err(|_| XmlError::NotUtf8)?;
                match depth {
                    2 => {
                        if let Some(field) = open.as_mut() {
                            field.1.push_str(value);
                        }
                    }
                    0 | 1 => return Err(malformed("CDATA outside a field")),
                    _ => {}
                }
            }
            Event::Empty(_) => return Err(malformed("unexpected empty element")),
            Event::Eof => break,
        }
    }
    if !root_done || depth != 0 {
        return Err(malformed("document ended early"));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_chinese_and_cdata_terminators() {
        let fields = [
            ("act_name", "新春红包 <活动> & \"引号\""),
            ("remark", "a]]>b]]>]]>c"),
            ("wishing", "恭喜发财，大吉大利！🧧"),
            ("empty", ""),
            ("total_amount", "100"),
        ];
        let xml = to_xml(fields).unwrap();
        let parsed = parse_xml(xml.as_bytes()).unwrap();
        assert_eq!(parsed.len(), fields.len());
        for (name, value) in fields {
            assert_eq!(parsed[name], value, "{name}");
        }
    }

    #[test]
    fn reads_plain_text_and_escapes() {
        let xml =
            "<?xml version=\"1.0\"?>\n<xml>\n  <a>1 &lt; 2 &amp;&#x4E2D;</a>\n  <b><![CDATA[x]]></b>\n  <c/>\n</xml>\n";
        let parsed = parse_xml(xml.as_bytes()).unwrap();
        assert_eq!(parsed["a"], "1 < 2 &中");
        assert_eq!(parsed["b"], "x");
        assert_eq!(parsed["c"], "");
    }

    #[test]
    fn skips_nested_containers() {
        let xml = "<xml><status>RECEIVED</status><hblist><hbinfo><openid>o1</openid></hbinfo></hblist></xml>";
        let parsed = parse_xml(xml.as_bytes()).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed["status"], "RECEIVED");
    }

    #[test]
    fn refuses_doctype_and_entities() {
        let xxe =
            "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><a>&e;</a></xml>";
        assert_eq!(parse_xml(xxe.as_bytes()), Err(XmlError::Doctype));
        // Entities are never expanded: a reference to one is refused like the DTD it needs.
        let undeclared = "<xml><a>&e;</a></xml>";
        assert_eq!(parse_xml(undeclared.as_bytes()), Err(XmlError::Doctype));
        let bare = "<xml><!ENTITY e \"x\"><a>1</a></xml>";
        assert_eq!(parse_xml(bare.as_bytes()), Err(XmlError::Doctype));
        // `<!DOCTYPE` as a value's text says nothing about a document that is cut short.
        let cut = "<xml><a><![CDATA[<!DOCTYPE x>]]></a><b>1";
        assert!(matches!(parse_xml(cut.as_bytes()), Err(XmlError::Malformed(_))));
    }

    #[test]
    fn refuses_bad_shapes() {
        for bad in [
            "",
            "<xml>",
            "<other><a>1</a></other>",
            "<xml><a>1</a></xml><xml></xml>",
            "<xml><a>1</b></xml>",
            "junk<xml></xml>",
        ] {
            assert!(parse_xml(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert_eq!(parse_xml(b"<xml><a>1</a><a>2</a></xml>"), Err(XmlError::DuplicateField("a".into())));
        assert_eq!(parse_xml(&[0xff, 0xfe]), Err(XmlError::NotUtf8));
        let huge = format!("<xml><a>{}</a></xml>", "x".repeat(MAX_XML_BYTES));
        assert_eq!(parse_xml(huge.as_bytes()), Err(XmlError::TooLarge));
    }

    #[test]
    fn refuses_unsendable_fields() {
        assert_eq!(to_xml([("a b", "x")]), Err(XmlError::BadFieldName("a b".into())));
        assert_eq!(to_xml([("a", "x\u{0}y")]), Err(XmlError::BadValue("a".into())));
    }

    proptest! {
        #[test]
        fn round_trip_any_sendable_values(
            fields in proptest::collection::btree_map("[a-z_][a-z0-9_]{0,11}", "\\PC*", 0..8)
        ) {
            let fields: BTreeMap<String, String> =
                fields.into_iter().filter(|(_, v)| v.chars().all(is_xml_char)).collect();
            let xml = to_xml(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
            prop_assert_eq!(parse_xml(xml.as_bytes()).unwrap(), fields);
        }

        #[test]
        fn parse_never_panics_on_strings(s in "\\PC*") {
            let _ = parse_xml(s.as_bytes());
        }

        #[test]
        fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_xml(&bytes);
        }

        #[test]
        fn parse_never_panics_on_xmlish(s in "(<xml>|</xml>|<a>|</a>|<!\\[CDATA\\[|\\]\\]>|&amp;|&#|<!DOCTYPE|x|中| )*") {
            let _ = parse_xml(s.as_bytes());
        }
    }
}
