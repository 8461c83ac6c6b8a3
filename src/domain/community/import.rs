//! Bulk imports of rooms and rosters: the rows as sent (JSON or CSV), and the report that says
//! what became of each. A bad row is rejected with its reason and the rest go in; importing the
//! same rows again changes nothing.

use std::collections::HashMap;

use crate::codes::ErrorCode;
use crate::domain::{DomainError, DomainResult};

/// One row of an import, before validation. `line` is the row's number in what was sent: its
/// 1-based index in a JSON array, or its line in a CSV file (the header is line 1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawRow {
    pub line: usize,
    pub building: Option<String>,
    pub unit: Option<String>,
    pub number: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub role: Option<String>,
}

/// A row that was not imported, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRow {
    pub line: usize,
    pub reason: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub received: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejected: Vec<RejectedRow>,
}

impl ImportReport {
    pub fn reject(&mut self, line: usize, reason: impl Into<String>) {
        self.rejected.push(RejectedRow { line, reason: reason.into() });
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Column {
    Building,
    Unit,
    Number,
    Name,
    Phone,
    Role,
}

/// Header names operators use, in English and in the Chinese of the usual spreadsheets.
fn column_of(header: &str) -> Option<Column> {
    let h = header.trim().to_lowercase();
    Some(match h.as_str() {
        "building" | "楼栋" | "楼号" | "楼宇" => Column::Building,
        "unit" | "单元" => Column::Unit,
        "number" | "room" | "room_number" | "房号" | "房间号" | "门牌号" => Column::Number,
        "name" | "姓名" => Column::Name,
        "phone" | "mobile" | "手机" | "手机号" | "电话" | "联系电话" => Column::Phone,
        "role" | "身份" | "关系" => Column::Role,
        _ => return None,
    })
}

/// Parses a CSV file with a header row into raw rows. A file that cannot be read as a table at
/// all (no header, or a required column missing) is refused whole; a row that cannot be read is
/// rejected alone.
pub fn parse_csv(text: &str, required: &[&str], max_rows: usize) -> DomainResult<(Vec<RawRow>, Vec<RejectedRow>)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| DomainError::invalid(ErrorCode::InvalidCsv, format!("cannot read the CSV header: {e}")))?
        .clone();
    let columns: Vec<Option<Column>> = headers.iter().map(column_of).collect();
    let present: HashMap<Column, usize> = columns.iter().enumerate().filter_map(|(i, c)| c.map(|c| (c, i))).collect();
    for name in required {
        let col = column_of(name).expect("required columns are known names");
        if !present.contains_key(&col) {
            return Err(DomainError::invalid(
                ErrorCode::InvalidCsv,
                format!(
                    "the CSV header has no {name:?} column (found: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }

    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    // The csv reader does not count the blank lines it skips, so line numbers come from byte
    // offsets, counted forward as records arrive in order.
    let mut counted_to = 0usize;
    let mut line_at = 1usize;
    let mut line_of = |byte: u64| {
        let mut byte = (byte as usize).min(text.len());
        // A record's position can be the start of the blank lines skipped before it.
        while matches!(text.as_bytes().get(byte), Some(b'\n' | b'\r')) {
            byte += 1;
        }
        if byte > counted_to {
            line_at += text.as_bytes()[counted_to..byte].iter().filter(|&&b| b == b'\n').count();
            counted_to = byte;
        }
        line_at
    };
    for (index, record) in reader.records().enumerate() {
        if rows.len() + rejected.len() >= max_rows {
            return Err(too_many_rows(max_rows));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| line_of(p.byte())).unwrap_or(index + 2);
                rejected.push(RejectedRow { line, reason: format!("unreadable row: {e}") });
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        let line = record.position().map(|p| line_of(p.byte())).unwrap_or(index + 2);
        let get = |c: Column| present.get(&c).and_then(|&i| record.get(i)).map(str::to_owned);
        rows.push(RawRow {
            line,
            building: get(Column::Building),
            unit: get(Column::Unit),
            number: get(Column::Number),
            name: get(Column::Name),
            phone: get(Column::Phone),
            role: get(Column::Role),
        });
    }
    Ok((rows, rejected))
}

pub fn too_many_rows(max_rows: usize) -> DomainError {
    DomainError::invalid(ErrorCode::TooManyRows, format!("an import may carry at most {max_rows} rows; split the file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_keep_their_line_numbers_and_chinese_headers_work() {
        let text = "\u{feff}楼栋,单元,房号\n1,1,101\n\n2, ,202\n";
        let (rows, rejected) = parse_csv(text, &["building", "number"], 100).unwrap();
        assert!(rejected.is_empty());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].number.as_deref(), Some("101"));
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[1].unit.as_deref(), Some(""));
    }

    #[test]
    fn a_missing_required_column_refuses_the_file() {
        let err = parse_csv("building,unit\n1,1\n", &["building", "number"], 100).unwrap_err();
        assert!(err.to_string().contains("number"), "{err}");
    }

    #[test]
    fn short_rows_read_as_missing_fields_and_the_row_cap_holds() {
        let (rows, _) = parse_csv("name,phone,building,unit,number\nAn\n", &["name"], 10).unwrap();
        assert_eq!(rows[0].name.as_deref(), Some("An"));
        assert_eq!(rows[0].phone, None);
        let many = format!("building,number\n{}", "1,1\n".repeat(11));
        assert!(matches!(
            parse_csv(&many, &["building"], 10),
            Err(DomainError::Invalid { code: ErrorCode::TooManyRows, .. })
        ));
    }
}
