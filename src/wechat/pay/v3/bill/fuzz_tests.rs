//! Property tests of the fund-flow bill parser over generated bills (any column order, either
//! unit spelling, CRLF or LF, BOM, blank lines) and structured mutations of them: each fault must
//! give its own [`BillParseError`] at the right line, and a valid bill must read back.

use proptest::prelude::*;
use time::macros::offset;
use time::{Date, Month, PrimitiveDateTime, Time};

use super::*;
use crate::wechat::fuzz::{self, byte_mutations, mutate};

fn entry() -> impl Strategy<Value = FundFlowEntry> {
    // Field text as WeChat writes it: no comma, no line break, never the summary's first column name.
    let text = || "[A-Za-z0-9 _.:-]{0,12}|[\u{4e00}-\u{9fa5}]{1,8}";
    (
        (2000i32..2100, 1u8..=12, 1u8..=28, 0u8..24, 0u8..60, 0u8..60),
        ("[0-9]{10,32}", "[0-9]{10,32}", text(), text()),
        any::<bool>(),
        (0i64..100_000_000_000, -100_000_000_000i64..100_000_000_000),
        (text(), text(), "[A-Za-z0-9]{0,32}"),
    )
        .prop_map(
            |(
                (y, mo, d, h, mi, s),
                (wechat_no, flow_no, business_name, business_type),
                income,
                (amount_fen, balance_fen),
                (applicant, remark, voucher_no),
            )| {
                let local = PrimitiveDateTime::new(
                    Date::from_calendar_date(y, Month::try_from(mo).unwrap(), d).unwrap(),
                    Time::from_hms(h, mi, s).unwrap(),
                );
                FundFlowEntry {
                    booked_at: format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
                    booked_at_unix: local.assume_offset(offset!(+8)).unix_timestamp(),
                    wechat_no,
                    flow_no,
                    business_name,
                    business_type,
                    direction: if income { FundDirection::Income } else { FundDirection::Expense },
                    amount_fen,
                    balance_fen,
                    applicant,
                    remark,
                    voucher_no,
                }
            },
        )
}

fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.unsigned_abs() / 100, fen.unsigned_abs() % 100)
}

/// A bill file, line by line, with what it must parse to.
#[derive(Clone, Debug)]
struct File {
    lines: Vec<String>,
    eol: &'static str,
    bom: bool,
    /// Index in `lines` of the header, first row, summary header and summary line.
    rows: std::ops::Range<usize>,
    summary_header: usize,
    bill: FundFlowBill,
    /// Column order: `order[i]` is the DETAIL_COLUMNS index written at position i.
    order: Vec<usize>,
}

impl File {
    fn bytes(&self) -> Vec<u8> {
        let mut out = if self.bom { "\u{feff}".to_owned() } else { String::new() };
        for line in &self.lines {
            out.push_str(line);
            out.push_str(self.eol);
        }
        out.into_bytes()
    }

    /// 1-based line number of `lines[i]`.
    fn line_no(&self, i: usize) -> usize {
        i + 1
    }
}

fn cells(entry: &FundFlowEntry) -> [String; 11] {
    [
        entry.booked_at.clone(),
        entry.wechat_no.clone(),
        entry.flow_no.clone(),
        entry.business_name.clone(),
        entry.business_type.clone(),
        entry.direction.as_str().to_owned(),
        yuan(entry.amount_fen),
        yuan(entry.balance_fen),
        entry.applicant.clone(),
        entry.remark.clone(),
        entry.voucher_no.clone(),
    ]
}

fn file() -> impl Strategy<Value = File> {
    (
        proptest::collection::vec(entry(), 0..8),
        Just((0..11).collect::<Vec<usize>>()).prop_shuffle(),
        proptest::sample::select(&["(元)", "（元）", ""][..]),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(any::<bool>(), 10),
    )
        .prop_map(|(entries, order, unit, crlf, bom, blanks)| {
            let header: Vec<String> = order
                .iter()
                .map(|&c| {
                    let name = DETAIL_COLUMNS[c];
                    if name == COL_AMOUNT || name == COL_BALANCE {
                        format!("{name}{unit}")
                    } else {
                        name.to_owned()
                    }
                })
                .collect();
            let mut lines = vec![header.join(",")];
            for entry in &entries {
                let cells = cells(entry);
                lines.push(order.iter().map(|&c| format!("`{}", cells[c])).collect::<Vec<_>>().join(","));
            }
            let rows = 1..lines.len();
            let (mut income_count, mut income_fen, mut expense_count, mut expense_fen) = (0, 0, 0, 0);
            for e in &entries {
                match e.direction {
                    FundDirection::Income => {
                        income_count += 1;
                        income_fen += e.amount_fen;
                    }
                    FundDirection::Expense => {
                        expense_count += 1;
                        expense_fen += e.amount_fen;
                    }
                }
            }
            let summary = FundFlowSummary {
                total_count: entries.len() as u64,
                income_count,
                income_fen,
                expense_count,
                expense_fen,
            };
            let summary_header = lines.len();
            lines.push(SUMMARY_COLUMNS.join(","));
            lines.push(format!(
                "`{},`{},`{},`{},`{}",
                summary.total_count,
                summary.income_count,
                yuan(income_fen),
                summary.expense_count,
                yuan(expense_fen)
            ));
            let mut file = File {
                lines,
                eol: if crlf { "\r\n" } else { "\n" },
                bom,
                rows,
                summary_header,
                bill: FundFlowBill { entries, summary },
                order,
            };
            // Blank lines are skipped; insert some (from the end, so indexes before stay right).
            for at in (1..file.lines.len()).rev() {
                if blanks[at % blanks.len()] && at % 3 == 0 {
                    file.lines.insert(at, "  ".to_owned());
                    if at <= file.summary_header {
                        file.summary_header += 1;
                    }
                    if at <= file.rows.start {
                        file.rows.start += 1;
                    }
                    if at <= file.rows.end {
                        file.rows.end += 1;
                    }
                }
            }
            file
        })
}

fn parse(file: &File) -> Result<FundFlowBill, BillParseError> {
    parse_fund_flow_bill(&file.bytes())
}

/// A line of `file.lines` holding a row (blank lines excluded).
fn row_index(file: &File, pick: &prop::sample::Index) -> Option<usize> {
    let rows: Vec<usize> = file.rows.clone().filter(|&i| !file.lines[i].trim().is_empty()).collect();
    (!rows.is_empty()).then(|| rows[pick.index(rows.len())])
}

/// Replaces the cell of DETAIL_COLUMNS[column] on line `i`.
fn set_cell(file: &mut File, i: usize, column: usize, value: &str) {
    let at = file.order.iter().position(|&c| c == column).unwrap();
    let mut cells: Vec<String> = file.lines[i].split(',').map(str::to_owned).collect();
    cells[at] = format!("`{value}");
    file.lines[i] = cells.join(",");
}

proptest! {
    #![proptest_config(fuzz::config(192))]

    /// A bill in any column order and line style reads back row for row, with its summary.
    #[test]
    fn valid_bills_read_back(file in file()) {
        prop_assert_eq!(parse_fund_flow_bill(&file.bytes()), Ok(file.bill.clone()));
    }

    /// Each fault in a row or the summary is named, with its line.
    #[test]
    fn faults_are_named_at_their_line(
        mut file in file(),
        pick in any::<prop::sample::Index>(),
        bad_amount in "[0-9]{1,3}\\.[0-9]{3,5}|[0-9]{0,3}[a-z+, ][0-9]{0,3}|-[0-9]{1,3}\\.[0-9]{2}|[1-9][0-9]{19,21}|",
        bad_time in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}|2025-02-30 00:00:00|2025-01-01 24:00:00|[0-9:]{0,19}",
        bad_direction in "[A-Za-z]{0,4}|收|出入",
        how in 0u8..8,
    ) {
        let row = row_index(&file, &pick);
        match (how, row) {
            (0, Some(i)) => {
                let line = file.line_no(i);
                let expected = file.order.len();
                file.lines[i].push_str(",`extra");
                prop_assert_eq!(parse(&file), Err(BillParseError::FieldCount { line, expected, found: expected + 1 }));
            }
            (1, Some(i)) => {
                prop_assume!(!bad_amount.contains(','));
                let line = file.line_no(i);
                set_cell(&mut file, i, 6, &bad_amount);
                prop_assert!(matches!(parse(&file), Err(BillParseError::BadAmount { line: l, column: COL_AMOUNT, .. }) if l == line), "{:?}", parse(&file));
            }
            (2, Some(i)) => {
                let line = file.line_no(i);
                set_cell(&mut file, i, 0, &bad_time);
                prop_assert!(matches!(parse(&file), Err(BillParseError::BadTime { line: l, .. }) if l == line), "{:?}", parse(&file));
            }
            (3, Some(i)) => {
                let line = file.line_no(i);
                set_cell(&mut file, i, 5, &bad_direction);
                prop_assert!(matches!(parse(&file), Err(BillParseError::BadDirection { line: l, .. }) if l == line), "{:?}", parse(&file));
            }
            (4, Some(i)) => {
                // A row lost: the summary no longer matches, starting with the count.
                file.lines.remove(i);
                prop_assert!(matches!(parse(&file), Err(BillParseError::SummaryMismatch { field: SummaryField::TotalCount, .. })), "{:?}", parse(&file));
            }
            (5, _) => {
                file.lines.truncate(file.summary_header + 1);
                prop_assert_eq!(parse(&file), Err(BillParseError::MissingSummaryLine));
                file.lines.truncate(file.summary_header);
                prop_assert_eq!(parse(&file), Err(BillParseError::MissingSummary));
            }
            (6, _) => {
                let line = file.lines.len() + 1;
                file.lines.push("`1,`2".to_owned());
                prop_assert_eq!(parse(&file), Err(BillParseError::TrailingData { line }));
            }
            (7, _) => {
                // A column missing from the header, or named twice.
                let at = pick.index(file.order.len());
                let name = DETAIL_COLUMNS[file.order[at]];
                let mut header: Vec<String> = file.lines[0].split(',').map(str::to_owned).collect();
                if bad_direction.len() % 2 == 0 {
                    header[at] = "其他".to_owned();
                    file.lines[0] = header.join(",");
                    prop_assert_eq!(parse(&file), Err(BillParseError::MissingColumn { line: 1, name }));
                } else {
                    let other = (at + 1) % header.len();
                    header[other] = header[at].clone();
                    file.lines[0] = header.join(",");
                    let twice = DETAIL_COLUMNS.iter().find(|&&n| normalize_header(&header[at]) == n).copied().unwrap();
                    // The first column the parser looks for that is now missing or doubled.
                    let r = parse(&file);
                    prop_assert!(
                        r == Err(BillParseError::DuplicateColumn { line: 1, name: twice })
                            || matches!(r, Err(BillParseError::MissingColumn { line: 1, .. })),
                        "{:?}", r
                    );
                }
            }
            _ => {
                // No rows to damage: the empty day still reads back.
                prop_assert_eq!(parse(&file), Ok(file.bill.clone()));
            }
        }
    }

    /// Random damage: never a panic, and an accepted bill always agrees with its own summary.
    #[test]
    fn damaged_bills_never_panic(
        file in file(),
        mutations in byte_mutations(&["`", ",", "\n", "\r\n", "收入", "支出", "资金流水总笔数", "-", ".", "\u{feff}"], 4),
    ) {
        let bytes = mutate(&file.bytes(), &mutations);
        if let Ok(bill) = parse_fund_flow_bill(&bytes) {
            let income: Vec<_> = bill.entries.iter().filter(|e| e.direction == FundDirection::Income).collect();
            prop_assert_eq!(bill.summary.total_count, bill.entries.len() as u64);
            prop_assert_eq!(bill.summary.income_count, income.len() as u64);
            prop_assert_eq!(i128::from(bill.summary.income_fen), income.iter().map(|e| i128::from(e.amount_fen)).sum::<i128>());
            prop_assert!(bill.entries.iter().all(|e| e.amount_fen >= 0));
        }
    }
}

/// Regression: a file larger than any download is refused by its size before it is split.
#[test]
fn oversized_bill_is_refused_by_size() {
    let file = vec![b'a'; MAX_BILL_BYTES + 1];
    assert_eq!(parse_fund_flow_bill(&file), Err(BillParseError::TooLarge));
    assert_eq!(parse_fund_flow_bill(&[0xff, 0xfe]), Err(BillParseError::NotUtf8));
    assert_eq!(parse_fund_flow_bill(b"\r\n  \n"), Err(BillParseError::Empty));
}
