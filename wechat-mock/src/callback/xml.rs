//! WeChat's flat XML: `<xml>` with one element per field, strings in CDATA. Reading keeps the
//! direct children of the root as name → text and refuses DTDs (no entity tricks); writing emits
//! one field per line, as WeChat's pushes look on the wire.

use std::collections::BTreeMap;
use std::fmt::{self, Display, Write as _};

use quick_xml::events::Event;
use quick_xml::Reader;

/// Why a body is not one of WeChat's flat XML documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlError {
    /// Not well-formed XML, or no root element.
    Malformed(String),
    /// The document declares a DTD, which WeChat's XML never does (and which invites XXE).
    DoctypeNotAllowed,
}

impl Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed XML: {why}"),
            Self::DoctypeNotAllowed => f.write_str("XML with a DOCTYPE is refused"),
        }
    }
}

impl std::error::Error for XmlError {}

/// The direct children of the root element, by name, with their text (CDATA and plain text
/// concatenated). Text of deeper elements is ignored; a repeated name keeps its first value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlFields {
    /// Name of the root element (`xml` in everything WeChat sends).
    pub root: String,
    fields: BTreeMap<String, String>,
}

impl XmlFields {
    /// The text of field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// Whether field `name` is present (possibly empty).
    pub fn contains(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    /// All fields, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Parses a flat XML document.
pub fn parse_fields(xml: &str) -> Result<XmlFields, XmlError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let malformed = |e: &dyn Display| XmlError::Malformed(e.to_string());
    let mut root: Option<String> = None;
    let mut fields = BTreeMap::new();
    let mut depth = 0usize;
    let mut current: Option<(String, String)> = None;
    loop {
        let event = reader.read_event().map_err(|e| malformed(&e))?;
        match event {
            Event::DocType(_) => return Err(XmlError::DoctypeNotAllowed),
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                depth += 1;
                match depth {
                    1 => root = Some(name),
                    2 => current = Some((name, String::new())),
                    _ => {}
                }
            }
            Event::Empty(empty) => {
                let name = String::from_utf8_lossy(empty.name().as_ref()).into_owned();
                match depth {
                    0 => root = Some(name),
                    1 => {
                        fields.entry(name).or_insert_with(String::new);
                    }
                    _ => {}
                }
            }
            Event::End(_) => {
                if depth == 2 {
                    if let Some((name, text)) = current.take() {
                        fields.entry(name).or_insert(text);
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(text) if depth == 2 => {
                let text = text.unescape().map_err(|e| malformed(&e))?;
                if let Some((_, value)) = current.as_mut() {
                    value.push_str(&text);
                }
            }
            Event::CData(cdata) if depth == 2 => {
                let bytes = cdata.into_inner();
                let text = std::str::from_utf8(&bytes).map_err(|e| malformed(&e))?;
                if let Some((_, value)) = current.as_mut() {
                    value.push_str(text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match root {
        Some(root) if depth == 0 => Ok(XmlFields { root, fields }),
        Some(_) => Err(XmlError::Malformed("unclosed element".into())),
        None => Err(XmlError::Malformed("no root element".into())),
    }
}

/// Writes `<xml>` documents field by field.
#[derive(Debug, Clone)]
pub struct XmlWriter {
    out: String,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    /// Starts a document with the `<xml>` root.
    pub fn new() -> Self {
        Self {
            // WeChat's own pushes: `<xml><A>…</A>\n<B>…</B>\n</xml>`.
            out: String::from("<xml>"),
        }
    }

    /// A string field, in CDATA.
    pub fn text(mut self, name: &str, value: &str) -> Self {
        let _ = writeln!(self.out, "<{name}><![CDATA[{}]]></{name}>", escape_cdata(value));
        self
    }

    /// A numeric field, as plain text.
    pub fn number(mut self, name: &str, value: impl Display) -> Self {
        let _ = writeln!(self.out, "<{name}>{value}</{name}>");
        self
    }

    /// Closes the root and returns the document.
    pub fn finish(mut self) -> String {
        self.out.push_str("</xml>");
        self.out
    }
}

/// CDATA cannot contain `]]>`: end the section before `>` and start a new one.
fn escape_cdata(value: &str) -> String {
    value.replace("]]>", "]]]]><![CDATA[>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_cdata_text_and_empty_fields() {
        let fields = parse_fields(
            "<xml><ToUserName><![CDATA[gh_1]]></ToUserName>\n<CreateTime> 17 </CreateTime>\
             <EventKey><![CDATA[]]></EventKey><Empty/><Nested><Inner>x</Inner></Nested>\
             <Amp>a &amp; b</Amp></xml>",
        )
        .unwrap();
        assert_eq!(fields.root, "xml");
        assert_eq!(fields.get("ToUserName"), Some("gh_1"));
        assert_eq!(fields.get("CreateTime"), Some("17"));
        assert_eq!(fields.get("EventKey"), Some(""));
        assert_eq!(fields.get("Empty"), Some(""));
        assert_eq!(fields.get("Nested"), Some(""));
        assert_eq!(fields.get("Amp"), Some("a & b"));
        assert!(!fields.contains("Inner"));
    }

    #[test]
    fn refuses_doctype_and_garbage() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><A>&e;</A></xml>"#;
        assert_eq!(parse_fields(xxe), Err(XmlError::DoctypeNotAllowed));
        assert!(parse_fields("success").is_err());
        assert!(parse_fields("").is_err());
        assert!(parse_fields("<xml><A>").is_err());
        assert!(parse_fields("{\"json\":true}").is_err());
    }

    proptest! {
        #[test]
        fn written_text_reads_back(value in "\\PC{0,80}", extra in "(\\]\\]>){0,3}") {
            let value = format!("{value}{extra}");
            let xml = XmlWriter::new().text("Content", &value).number("MsgId", 42u64).finish();
            let fields = parse_fields(&xml).unwrap();
            prop_assert_eq!(fields.get("Content"), Some(value.as_str()));
            prop_assert_eq!(fields.get("MsgId"), Some("42"));
        }
    }
}
