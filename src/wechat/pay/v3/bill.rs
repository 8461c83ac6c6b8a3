//! The daily fund-flow bill (资金账单) of the basic account, for reconciling payouts: apply for it,
//! download it, check it, and parse it into integer-fen entries.
//!
//! * Apply: `GET /v3/bill/fundflowbill?bill_date=…&account_type=BASIC` through [`V3Client::execute`]
//!   (signed, answer verified) → `{download_url, hash_type, hash_value}`. `NO_STATEMENT_EXIST`
//!   (no fund flow that day) and `STATEMENT_CREATING` (not generated yet; WeChat's FAQ says the
//!   bill is generated from 09:00 the next day) are outcomes of their own.
//! * Download: `GET download_url`, signed like any v3 request, but WeChat sends **no** signature
//!   headers with the file (its FAQ: SDK auto-verification fails there). The file is trusted
//!   instead through the SHA-1 named by the verified apply answer. The URL is followed only to the
//!   scheme, host and port of the client's base URL, so our `Authorization` goes nowhere else.
//! * Parse: UTF-8 CSV, `\r\n` or `\n`, every data field prefixed with a backtick. The file is
//!   split by hand on `,` (WeChat does not quote fields, and none carries a comma in practice);
//!   every row must have as many fields as the header, so a stray comma is an error, not a shifted
//!   column. Columns are found by header name. The rows are cross-checked against the summary.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, USER_AGENT};
use reqwest::{Method, Url};
use serde::Deserialize;
use sha1::{Digest, Sha1};
use time::macros::{format_description, offset};
use time::{Date, PrimitiveDateTime};

use super::{unix_now, V3Answer, V3Client, V3Error};
use crate::wechat::pay::{nonce_str, transport_unknown};

const FUND_FLOW_BILL_PATH: &str = "/v3/bill/fundflowbill";
/// The account whose flow is reconciled: the basic account payouts are paid from.
pub const ACCOUNT_TYPE_BASIC: &str = "BASIC";
/// Verified error code: the account had no fund flow on that day, so there is no bill.
pub const CODE_NO_STATEMENT_EXIST: &str = "NO_STATEMENT_EXIST";
/// Verified error code: the bill is being generated; ask again later.
pub const CODE_STATEMENT_CREATING: &str = "STATEMENT_CREATING";
/// Largest bill file downloaded. A day of payouts is far smaller; this only bounds a broken peer.
pub const MAX_BILL_BYTES: usize = 64 * 1024 * 1024;
/// The only hash algorithm WeChat names for bills (compared case-insensitively).
pub const BILL_HASH_TYPE: &str = "SHA1";

/// The verified answer to an apply: where to fetch the file and what it must hash to.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct BillDownload {
    pub download_url: String,
    pub hash_type: String,
    pub hash_value: String,
}

/// What asking for a day's fund-flow bill came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FundFlowBillOutcome {
    /// Downloaded, hash-checked, parsed and consistent with its own summary.
    Ready(FundFlowBill),
    /// WeChat verifiably answered `NO_STATEMENT_EXIST`: per its FAQ the account had no fund flow
    /// that day. Asked too early (before the bill exists) it may also mean "not yet".
    NoStatement { message: String },
    /// WeChat verifiably answered `STATEMENT_CREATING`: ask again later (its FAQ: every half hour).
    Generating { message: String },
    /// Nothing usable; report it and try again later.
    Failed(FundFlowBillError),
}

/// Why a fund-flow bill could not be had. Messages carry no keys and no download token.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum FundFlowBillError {
    /// A verified error answer to the apply other than the two with outcomes of their own.
    #[error("WeChat Pay refused the bill request: HTTP {status} {code}: {message}")]
    Refused { status: u16, code: String, message: String },
    /// A transport failure, timeout or unverifiable answer (apply), or a transport failure
    /// (download): nothing can be said about the bill.
    #[error("bill request outcome unknown: {code}: {message}")]
    Unknown { code: String, message: String },
    #[error("the apply answer is not the expected JSON: {0}")]
    BadApplyAnswer(String),
    /// The download URL does not point at the API we sign for; we did not follow it.
    #[error("download URL is not on the API's origin (it points at {origin})")]
    ForeignDownloadUrl { origin: String },
    #[error("hash type {0:?} is not {BILL_HASH_TYPE}")]
    UnsupportedHashType(String),
    #[error("hash value {0:?} is not 40 hex digits")]
    BadHashValue(String),
    /// The download answered with something other than 200; its body is not signed, so its
    /// content is not reported.
    #[error("bill download answered HTTP {status}")]
    DownloadStatus { status: u16 },
    /// reqwest here does not decode compressed bodies, and the hash is over the plain file.
    #[error("bill download is {0}-encoded, which is not supported")]
    ContentEncoding(String),
    #[error("bill file larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("bill file SHA-1 is {actual}, the apply answer said {expected}")]
    HashMismatch { expected: String, actual: String },
    #[error("bill file is malformed: {0}")]
    Parse(#[from] BillParseError),
}

/// Income (收入) or expense (支出).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FundDirection {
    Income,
    Expense,
}

impl FundDirection {
    /// The bill's own word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Income => "收入",
            Self::Expense => "支出",
        }
    }
}

/// One row of the bill: one movement of money in the account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FundFlowEntry {
    /// 记账时间 as given, `YYYY-MM-DD HH:MM:SS` Beijing time.
    pub booked_at: String,
    /// `booked_at` as a Unix time (read at UTC+8).
    pub booked_at_unix: i64,
    /// 微信支付业务单号 (e.g. the transfer_bill_no of a transfer).
    pub wechat_no: String,
    /// 资金流水单号.
    pub flow_no: String,
    /// 业务名称.
    pub business_name: String,
    /// 业务类型.
    pub business_type: String,
    pub direction: FundDirection,
    /// 收支金额, never negative: the direction carries the sign.
    pub amount_fen: i64,
    /// 账户结余 after this movement; may be negative.
    pub balance_fen: i64,
    /// 资金变更提交申请人.
    pub applicant: String,
    /// 备注.
    pub remark: String,
    /// 业务凭证号: the merchant's own number (mch_billno, partner_trade_no, out_bill_no); may be empty.
    pub voucher_no: String,
}

/// The summary line of the bill, as stated by WeChat (and checked against the rows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FundFlowSummary {
    pub total_count: u64,
    pub income_count: u64,
    pub income_fen: i64,
    pub expense_count: u64,
    pub expense_fen: i64,
}

/// A parsed bill whose rows agree with its summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FundFlowBill {
    pub entries: Vec<FundFlowEntry>,
    pub summary: FundFlowSummary,
}

/// A summary figure, named by its column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SummaryField {
    TotalCount,
    IncomeCount,
    IncomeAmount,
    ExpenseCount,
    ExpenseAmount,
}

impl SummaryField {
    pub fn column(self) -> &'static str {
        match self {
            Self::TotalCount => SUM_TOTAL_COUNT,
            Self::IncomeCount => SUM_INCOME_COUNT,
            Self::IncomeAmount => SUM_INCOME_AMOUNT,
            Self::ExpenseCount => SUM_EXPENSE_COUNT,
            Self::ExpenseAmount => SUM_EXPENSE_AMOUNT,
        }
    }
}

impl std::fmt::Display for SummaryField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.column())
    }
}

/// Why a yuan string is not an amount.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("empty")]
    Empty,
    #[error("not a decimal number")]
    Garbage,
    #[error("more than 2 decimals")]
    TooManyDecimals,
    #[error("too large")]
    Overflow,
    #[error("negative")]
    Negative,
}

/// What is wrong with a bill file. `line` is 1-based; values are shortened to 64 characters.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum BillParseError {
    #[error("larger than {MAX_BILL_BYTES} bytes")]
    TooLarge,
    #[error("not UTF-8")]
    NotUtf8,
    #[error("empty file")]
    Empty,
    #[error("line {line}: column {name} is missing")]
    MissingColumn { line: usize, name: &'static str },
    #[error("line {line}: column {name} appears twice")]
    DuplicateColumn { line: usize, name: &'static str },
    #[error("line {line}: {found} fields where the header has {expected}")]
    FieldCount { line: usize, expected: usize, found: usize },
    #[error("line {line}: {column} {value:?} is not an amount ({reason})")]
    BadAmount { line: usize, column: &'static str, value: String, reason: AmountError },
    #[error("line {line}: {column} {value:?} is not a count")]
    BadCount { line: usize, column: &'static str, value: String },
    #[error("line {line}: 记账时间 {value:?} is not YYYY-MM-DD HH:MM:SS")]
    BadTime { line: usize, value: String },
    #[error("line {line}: 收支类型 {value:?} is neither 收入 nor 支出")]
    BadDirection { line: usize, value: String },
    #[error("no summary header (资金流水总笔数,…) after the rows")]
    MissingSummary,
    #[error("the file ends after the summary header, without the summary line")]
    MissingSummaryLine,
    #[error("line {line}: data after the summary line")]
    TrailingData { line: usize },
    #[error("summary {field} says {stated}, the rows add up to {computed}")]
    SummaryMismatch { field: SummaryField, stated: i128, computed: i128 },
}

const COL_BOOKED_AT: &str = "记账时间";
const COL_WECHAT_NO: &str = "微信支付业务单号";
const COL_FLOW_NO: &str = "资金流水单号";
const COL_BUSINESS_NAME: &str = "业务名称";
const COL_BUSINESS_TYPE: &str = "业务类型";
const COL_DIRECTION: &str = "收支类型";
/// Header cells are compared without their unit: `收支金额(元)`, `收支金额（元）`.
const COL_AMOUNT: &str = "收支金额";
const COL_BALANCE: &str = "账户结余";
const COL_APPLICANT: &str = "资金变更提交申请人";
const COL_REMARK: &str = "备注";
const COL_VOUCHER_NO: &str = "业务凭证号";
const DETAIL_COLUMNS: [&str; 11] = [
    COL_BOOKED_AT,
    COL_WECHAT_NO,
    COL_FLOW_NO,
    COL_BUSINESS_NAME,
    COL_BUSINESS_TYPE,
    COL_DIRECTION,
    COL_AMOUNT,
    COL_BALANCE,
    COL_APPLICANT,
    COL_REMARK,
    COL_VOUCHER_NO,
];

const SUM_TOTAL_COUNT: &str = "资金流水总笔数";
const SUM_INCOME_COUNT: &str = "收入笔数";
const SUM_INCOME_AMOUNT: &str = "收入金额";
const SUM_EXPENSE_COUNT: &str = "支出笔数";
const SUM_EXPENSE_AMOUNT: &str = "支出金额";
const SUMMARY_COLUMNS: [&str; 5] =
    [SUM_TOTAL_COUNT, SUM_INCOME_COUNT, SUM_INCOME_AMOUNT, SUM_EXPENSE_COUNT, SUM_EXPENSE_AMOUNT];

/// Parses a yuan amount (`1.23`, `0.5`, `100`, `-1.00`) into fen with integer arithmetic only.
/// At most 2 decimals; no sign other than a leading `-`, no spaces, no exponent.
pub fn parse_yuan_to_fen(text: &str) -> Result<i64, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, decimals) = match unsigned.split_once('.') {
        Some((whole, decimals)) => (whole, Some(decimals)),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || decimals.is_some_and(|d| !all_digits(d)) {
        return Err(AmountError::Garbage);
    }
    let cents = match decimals.map(str::as_bytes) {
        None => 0,
        Some([d]) => i64::from(d - b'0') * 10,
        Some([d1, d2]) => i64::from(d1 - b'0') * 10 + i64::from(d2 - b'0'),
        Some(_) => return Err(AmountError::TooManyDecimals),
    };
    let yuan = whole.bytes().try_fold(0i64, |acc, b| acc.checked_mul(10)?.checked_add(i64::from(b - b'0')));
    let fen = yuan.and_then(|y| y.checked_mul(100)?.checked_add(cents)).ok_or(AmountError::Overflow)?;
    Ok(if negative { -fen } else { fen })
}

/// Checks that `hash_type` is SHA-1 and `hash_value` a SHA-1 in hex, before anything is fetched.
fn check_hash_spec(download: &BillDownload) -> Result<(), FundFlowBillError> {
    if !download.hash_type.eq_ignore_ascii_case(BILL_HASH_TYPE) {
        return Err(FundFlowBillError::UnsupportedHashType(shorten(&download.hash_type)));
    }
    let value = &download.hash_value;
    if value.len() != 40 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FundFlowBillError::BadHashValue(shorten(value)));
    }
    Ok(())
}

/// Checks a downloaded file against the apply answer's `hash_type` and `hash_value` (hex, any case).
pub fn check_bill_hash(download: &BillDownload, file: &[u8]) -> Result<(), FundFlowBillError> {
    check_hash_spec(download)?;
    let actual = hex::encode(Sha1::digest(file));
    if !actual.eq_ignore_ascii_case(&download.hash_value) {
        return Err(FundFlowBillError::HashMismatch { expected: download.hash_value.to_ascii_lowercase(), actual });
    }
    Ok(())
}

/// Accepts `download_url` only on the scheme, host and port of `base`, without user info: the
/// download request carries our `Authorization`.
pub fn check_download_url(base: &Url, download_url: &str) -> Result<Url, FundFlowBillError> {
    let mut url = Url::parse(download_url)
        .map_err(|_| FundFlowBillError::ForeignDownloadUrl { origin: "an unparsable URL".into() })?;
    let same_origin = url.scheme() == base.scheme()
        && url.host_str().is_some()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    if !same_origin || !url.username().is_empty() || url.password().is_some() {
        return Err(FundFlowBillError::ForeignDownloadUrl { origin: shorten(&url.origin().ascii_serialization()) });
    }
    url.set_fragment(None);
    Ok(url)
}

/// Sorts the verified answer to an apply: the download to make, or the outcome already reached.
pub fn classify_apply_answer(answer: V3Answer) -> Result<BillDownload, FundFlowBillOutcome> {
    let failed = |error| Err(FundFlowBillOutcome::Failed(error));
    match answer {
        V3Answer::Ok { body, .. } => match serde_json::from_slice::<BillDownload>(&body) {
            Ok(download) if download.download_url.is_empty() => {
                failed(FundFlowBillError::BadApplyAnswer("empty download_url".into()))
            }
            Ok(download) => Ok(download),
            Err(err) => failed(FundFlowBillError::BadApplyAnswer(err.to_string())),
        },
        V3Answer::Error { status, error } if (400..500).contains(&status) && error.code == CODE_NO_STATEMENT_EXIST => {
            Err(FundFlowBillOutcome::NoStatement { message: error.message })
        }
        V3Answer::Error { status, error } if (400..500).contains(&status) && error.code == CODE_STATEMENT_CREATING => {
            Err(FundFlowBillOutcome::Generating { message: error.message })
        }
        V3Answer::Error { status, error } => {
            failed(FundFlowBillError::Refused { status, code: error.code, message: error.message })
        }
        V3Answer::Unknown { code, message } => failed(FundFlowBillError::Unknown { code, message }),
    }
}

/// Splits one line into fields, each without its leading backtick.
fn split_fields(line: &str) -> Vec<&str> {
    line.split(',').map(|field| field.strip_prefix('`').unwrap_or(field)).collect()
}

/// A header cell as compared: trimmed, without a `(元)` or `（元）` unit (all amounts are yuan).
fn normalize_header(cell: &str) -> &str {
    let cell = cell.trim();
    cell.strip_suffix("(元)").or_else(|| cell.strip_suffix("（元）")).unwrap_or(cell).trim_end()
}

/// Where each of `names` is in `header`; each must be there exactly once.
fn locate<const N: usize>(
    line: usize,
    header: &[&str],
    names: [&'static str; N],
) -> Result<[usize; N], BillParseError> {
    let header: Vec<&str> = header.iter().map(|cell| normalize_header(cell)).collect();
    let mut found = [0; N];
    for (slot, name) in found.iter_mut().zip(names) {
        let mut positions = header.iter().enumerate().filter(|(_, cell)| **cell == name).map(|(i, _)| i);
        *slot = positions.next().ok_or(BillParseError::MissingColumn { line, name })?;
        if positions.next().is_some() {
            return Err(BillParseError::DuplicateColumn { line, name });
        }
    }
    Ok(found)
}

/// At most 64 characters of an untrusted value, for error messages.
fn shorten(value: &str) -> String {
    value.chars().take(64).collect()
}

fn amount(line: usize, column: &'static str, value: &str) -> Result<i64, BillParseError> {
    parse_yuan_to_fen(value).map_err(|reason| BillParseError::BadAmount { line, column, value: shorten(value), reason })
}

fn non_negative_amount(line: usize, column: &'static str, value: &str) -> Result<i64, BillParseError> {
    let fen = amount(line, column, value)?;
    if fen < 0 {
        return Err(BillParseError::BadAmount { line, column, value: shorten(value), reason: AmountError::Negative });
    }
    Ok(fen)
}

fn count(line: usize, column: &'static str, value: &str) -> Result<u64, BillParseError> {
    let bad = || BillParseError::BadCount { line, column, value: shorten(value) };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    value.parse().map_err(|_| bad())
}

/// Reads `YYYY-MM-DD HH:MM:SS` as Beijing time (UTC+8, no daylight saving).
fn beijing_unix(line: usize, value: &str) -> Result<i64, BillParseError> {
    PrimitiveDateTime::parse(value, format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
        .map(|local| local.assume_offset(offset!(+8)).unix_timestamp())
        .map_err(|_| BillParseError::BadTime { line, value: shorten(value) })
}

fn parse_entry(line: usize, fields: &[&str], at: &[usize; 11]) -> Result<FundFlowEntry, BillParseError> {
    let [booked_at, wechat_no, flow_no, business_name, business_type, direction, amount_at, balance, applicant, remark, voucher_no] =
        *at;
    let direction = match fields[direction] {
        "收入" => FundDirection::Income,
        "支出" => FundDirection::Expense,
        other => return Err(BillParseError::BadDirection { line, value: shorten(other) }),
    };
    Ok(FundFlowEntry {
        booked_at: fields[booked_at].to_owned(),
        booked_at_unix: beijing_unix(line, fields[booked_at])?,
        wechat_no: fields[wechat_no].to_owned(),
        flow_no: fields[flow_no].to_owned(),
        business_name: fields[business_name].to_owned(),
        business_type: fields[business_type].to_owned(),
        direction,
        amount_fen: non_negative_amount(line, COL_AMOUNT, fields[amount_at])?,
        balance_fen: amount(line, COL_BALANCE, fields[balance])?,
        applicant: fields[applicant].to_owned(),
        remark: fields[remark].to_owned(),
        voucher_no: fields[voucher_no].to_owned(),
    })
}

fn parse_summary(line: usize, fields: &[&str], at: &[usize; 5]) -> Result<FundFlowSummary, BillParseError> {
    let [total, income_count, income, expense_count, expense] = *at;
    Ok(FundFlowSummary {
        total_count: count(line, SUM_TOTAL_COUNT, fields[total])?,
        income_count: count(line, SUM_INCOME_COUNT, fields[income_count])?,
        income_fen: non_negative_amount(line, SUM_INCOME_AMOUNT, fields[income])?,
        expense_count: count(line, SUM_EXPENSE_COUNT, fields[expense_count])?,
        expense_fen: non_negative_amount(line, SUM_EXPENSE_AMOUNT, fields[expense])?,
    })
}

/// Checks the summary against the rows, figure by figure.
fn cross_check(entries: &[FundFlowEntry], summary: &FundFlowSummary) -> Result<(), BillParseError> {
    let (mut income_count, mut income_fen, mut expense_count, mut expense_fen) = (0i128, 0i128, 0i128, 0i128);
    for entry in entries {
        match entry.direction {
            FundDirection::Income => {
                income_count += 1;
                income_fen += i128::from(entry.amount_fen);
            }
            FundDirection::Expense => {
                expense_count += 1;
                expense_fen += i128::from(entry.amount_fen);
            }
        }
    }
    let figures = [
        (SummaryField::TotalCount, i128::from(summary.total_count), entries.len() as i128),
        (SummaryField::IncomeCount, i128::from(summary.income_count), income_count),
        (SummaryField::IncomeAmount, i128::from(summary.income_fen), income_fen),
        (SummaryField::ExpenseCount, i128::from(summary.expense_count), expense_count),
        (SummaryField::ExpenseAmount, i128::from(summary.expense_fen), expense_fen),
    ];
    for (field, stated, computed) in figures {
        if stated != computed {
            return Err(BillParseError::SummaryMismatch { field, stated, computed });
        }
    }
    Ok(())
}

/// Parses a fund-flow bill file (at most [`MAX_BILL_BYTES`]) and checks it against its own
/// summary. Blank lines are skipped;
/// a UTF-8 byte-order mark is allowed. A file cut inside the summary's last amount (`1.00` → `1.0`)
/// still reads the same; only the hash check catches that.
pub fn parse_fund_flow_bill(file: &[u8]) -> Result<FundFlowBill, BillParseError> {
    // The download is capped too; checking here keeps the parser bounded whoever calls it.
    if file.len() > MAX_BILL_BYTES {
        return Err(BillParseError::TooLarge);
    }
    let text = std::str::from_utf8(file).map_err(|_| BillParseError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(index, line)| (index + 1, line.strip_suffix('\r').unwrap_or(line)))
        .filter(|(_, line)| !line.trim().is_empty());

    let (header_line, header) = lines.next().ok_or(BillParseError::Empty)?;
    let header = split_fields(header);
    let columns = locate(header_line, &header, DETAIL_COLUMNS)?;

    let mut entries = Vec::new();
    let summary_columns = loop {
        let (line, text) = lines.next().ok_or(BillParseError::MissingSummary)?;
        let fields = split_fields(text);
        // A row whose remark were exactly 资金流水总笔数 would land here and fail to locate the
        // other summary columns: an error, never a misread.
        if fields.iter().any(|field| normalize_header(field) == SUM_TOTAL_COUNT) {
            break locate(line, &fields, SUMMARY_COLUMNS).map(|at| (at, fields.len()))?;
        }
        if fields.len() != header.len() {
            return Err(BillParseError::FieldCount { line, expected: header.len(), found: fields.len() });
        }
        entries.push(parse_entry(line, &fields, &columns)?);
    };

    let (line, text) = lines.next().ok_or(BillParseError::MissingSummaryLine)?;
    let fields = split_fields(text);
    let (at, expected) = summary_columns;
    if fields.len() != expected {
        return Err(BillParseError::FieldCount { line, expected, found: fields.len() });
    }
    let summary = parse_summary(line, &fields, &at)?;
    if let Some((line, _)) = lines.next() {
        return Err(BillParseError::TrailingData { line });
    }
    cross_check(&entries, &summary)?;
    Ok(FundFlowBill { entries, summary })
}

/// Logs a failure (the cause, never the download token) and wraps it.
fn failed(bill_date: Date, error: FundFlowBillError) -> FundFlowBillOutcome {
    tracing::warn!(%bill_date, %error, "fund-flow bill not obtained");
    FundFlowBillOutcome::Failed(error)
}

impl V3Client {
    /// Applies for, downloads, checks and parses the fund-flow bill of the basic account for
    /// `bill_date` (a Beijing calendar day; WeChat keeps three months). `Err` only when a request
    /// could not be built or signed; every answer, good or bad, is an outcome.
    pub async fn fund_flow_bill(&self, bill_date: Date) -> Result<FundFlowBillOutcome, V3Error> {
        if !(1..=9999).contains(&bill_date.year()) {
            return Err(V3Error::InvalidRequest("bill_date year out of range".into()));
        }
        let path = format!(
            "{FUND_FLOW_BILL_PATH}?bill_date={:04}-{:02}-{:02}&account_type={ACCOUNT_TYPE_BASIC}",
            bill_date.year(),
            u8::from(bill_date.month()),
            bill_date.day()
        );
        let answer = self.execute(Method::GET, &path, None, None).await?;
        let download = match classify_apply_answer(answer) {
            Ok(download) => download,
            Err(FundFlowBillOutcome::Failed(error)) => return Ok(failed(bill_date, error)),
            Err(outcome) => return Ok(outcome),
        };
        // Both checks come before the download: an unverifiable file is not worth fetching, and
        // a foreign URL must not receive our Authorization.
        let checked =
            check_hash_spec(&download).and_then(|()| check_download_url(&self.base_url, &download.download_url));
        let url = match checked {
            Ok(url) => url,
            Err(error) => return Ok(failed(bill_date, error)),
        };
        let authorization = self.authorization_for_get(&url).await?;
        let bill = self.get_unsigned_answer(url, authorization, MAX_BILL_BYTES).await.and_then(|file| {
            check_bill_hash(&download, &file)?;
            parse_fund_flow_bill(&file).map_err(FundFlowBillError::from)
        });
        Ok(match bill {
            Ok(bill) => FundFlowBillOutcome::Ready(bill),
            Err(error) => failed(bill_date, error),
        })
    }

    /// The `Authorization` of a body-less GET of `url`, over its path and query as sent.
    async fn authorization_for_get(&self, url: &Url) -> Result<HeaderValue, V3Error> {
        let canonical = match url.query() {
            Some(query) => format!("{}?{}", url.path(), query),
            None => url.path().to_owned(),
        };
        let signer = Arc::clone(&self.signer);
        let (timestamp, nonce) = (unix_now(), nonce_str());
        let authorization = tokio::task::spawn_blocking(move || {
            signer.authorization(Method::GET.as_str(), &canonical, timestamp, &nonce, b"")
        })
        .await
        .map_err(|_| V3Error::SigningTask)??;
        HeaderValue::from_str(&authorization).map_err(|_| V3Error::InvalidRequest("authorization header".into()))
    }

    /// A signed GET whose answer is **not** verified: only for the bill file, which WeChat sends
    /// unsigned and which the caller checks by hash. Only a plain 200 body of at most `max_bytes`
    /// is returned. Errors drop the URL, whose query holds the download token.
    async fn get_unsigned_answer(
        &self,
        url: Url,
        authorization: HeaderValue,
        max_bytes: usize,
    ) -> Result<Vec<u8>, FundFlowBillError> {
        let unknown = |err: reqwest::Error| {
            let (code, message) = transport_unknown(&err.without_url());
            FundFlowBillError::Unknown { code, message }
        };
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        // The hash is over the plain file and reqwest is built without decompression.
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        headers.insert(USER_AGENT, HeaderValue::from_static("linli"));
        let mut response = self.http.get(url).headers(headers).send().await.map_err(unknown)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FundFlowBillError::DownloadStatus { status });
        }
        if let Some(encoding) = response.headers().get(CONTENT_ENCODING) {
            let encoding = encoding.to_str().unwrap_or("?").trim();
            if !encoding.eq_ignore_ascii_case("identity") {
                return Err(FundFlowBillError::ContentEncoding(shorten(encoding)));
            }
        }
        let too_large = FundFlowBillError::TooLarge { limit: max_bytes };
        if response.content_length().is_some_and(|length| length > max_bytes as u64) {
            return Err(too_large);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unknown)? {
            if body.len() + chunk.len() > max_bytes {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use proptest::prelude::*;
    use rsa::pkcs1v15::VerifyingKey;
    use sha2::Sha256;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::super::test_support::*;
    use super::super::{ApiError, V3Config, AUTH_SCHEME};
    use super::*;
    use crate::wechat::pay::crypto::{self, test_keys::*};
    use crate::wechat::pay::CODE_BAD_SIGNATURE;

    const HEADER: &str = "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),资金变更提交申请人,备注,业务凭证号";
    const ROW_INCOME: &str = "`2025-03-01 09:15:02,`4200002345202503011234567890,`1900000001202503010000000001,`充值,`充值,`收入,`100,`100.00,`system,`,`";
    const ROW_EXPENSE_1: &str = "`2025-03-01 10:20:30,`1330000114850082502080052860000,`1900000001202503010000000002,`商家转账,`商家转账,`支出,`0.5,`99.50,`1900000001API,`奖励,`B1";
    const ROW_EXPENSE_2: &str = "`2025-03-01 23:59:59,`1330000114850082502080052860001,`1900000001202503010000000003,`商家转账,`商家转账,`支出,`99.52,`-0.02,`1900000001API,`新春活动奖励,`B2";
    const SUMMARY_HEADER: &str = "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额";
    const SUMMARY: &str = "`3,`1,`100.00,`2,`100.02";

    fn lines(lines: &[&str], eol: &str) -> String {
        lines.iter().map(|line| format!("{line}{eol}")).collect()
    }

    /// Two payouts and a top-up, CRLF line ends, ASCII parentheses.
    fn sample() -> String {
        lines(&[HEADER, ROW_INCOME, ROW_EXPENSE_1, ROW_EXPENSE_2, SUMMARY_HEADER, SUMMARY], "\r\n")
    }

    /// The sample with the first `from` replaced by `to` (which must change it).
    fn sample_with(from: &str, to: &str) -> Result<FundFlowBill, BillParseError> {
        let file = sample();
        assert!(file.contains(from), "{from}");
        parse_fund_flow_bill(file.replacen(from, to, 1).as_bytes())
    }

    fn sha1_hex(bytes: &[u8]) -> String {
        hex::encode(Sha1::digest(bytes))
    }

    fn assert_sample_entries(bill: &FundFlowBill) {
        assert_eq!(bill.entries.len(), 3);
        let income = &bill.entries[0];
        assert_eq!(income.booked_at, "2025-03-01 09:15:02");
        // `date -u -d '2025-03-01 01:15:02' +%s`
        assert_eq!(income.booked_at_unix, 1_740_791_702);
        assert_eq!(income.wechat_no, "4200002345202503011234567890");
        assert_eq!(income.flow_no, "1900000001202503010000000001");
        assert_eq!(income.business_name, "充值");
        assert_eq!(income.business_type, "充值");
        assert_eq!(income.direction, FundDirection::Income);
        assert_eq!(income.amount_fen, 10_000);
        assert_eq!(income.balance_fen, 10_000);
        assert_eq!(income.applicant, "system");
        assert_eq!(income.remark, "");
        assert_eq!(income.voucher_no, "");
        let payout = &bill.entries[1];
        assert_eq!(payout.direction, FundDirection::Expense);
        assert_eq!(payout.wechat_no, "1330000114850082502080052860000");
        assert_eq!(payout.amount_fen, 50);
        assert_eq!(payout.balance_fen, 9_950);
        assert_eq!(payout.remark, "奖励");
        assert_eq!(payout.voucher_no, "B1");
        let last = &bill.entries[2];
        assert_eq!(last.amount_fen, 9_952);
        assert_eq!(last.balance_fen, -2);
        // `date -u -d '2025-03-01 15:59:59' +%s`: the end of the Beijing day.
        assert_eq!(last.booked_at_unix, 1_740_844_799);
        assert_eq!(last.voucher_no, "B2");
        assert_eq!(
            bill.summary,
            FundFlowSummary {
                total_count: 3,
                income_count: 1,
                income_fen: 10_000,
                expense_count: 2,
                expense_fen: 10_002
            }
        );
    }

    #[test]
    fn parses_a_sample_bill() {
        assert_sample_entries(&parse_fund_flow_bill(sample().as_bytes()).unwrap());
    }

    /// Full-width parentheses, columns in another order, LF line ends, a byte-order mark, blank
    /// lines and no final line end: the same bill.
    #[test]
    fn parses_the_full_width_variant_by_column_name() {
        let reorder = |line: &str| {
            let fields: Vec<&str> = line.split(',').collect();
            [10, 9, 0, 7, 6, 5, 4, 3, 2, 1, 8].map(|i| fields[i]).join(",")
        };
        let header = reorder(HEADER).replace("(元)", "（元）");
        assert!(header.starts_with("业务凭证号,备注,记账时间,账户结余（元）,收支金额（元）"), "{header}");
        let file = format!(
            "\u{feff}{}\n\n{}\n{}\n{}\n{SUMMARY_HEADER}\n{SUMMARY}",
            header,
            reorder(ROW_INCOME),
            reorder(ROW_EXPENSE_1),
            reorder(ROW_EXPENSE_2)
        );
        assert_sample_entries(&parse_fund_flow_bill(file.as_bytes()).unwrap());
        // The summary columns are found by name too.
        let summary_reordered = format!(
            "{}{}\n`100.02,`2,`100.00,`1,`3\n",
            lines(&[HEADER, ROW_INCOME, ROW_EXPENSE_1, ROW_EXPENSE_2], "\n"),
            "支出金额(元),支出笔数,收入金额（元）,收入笔数,资金流水总笔数"
        );
        assert_sample_entries(&parse_fund_flow_bill(summary_reordered.as_bytes()).unwrap());
    }

    #[test]
    fn an_empty_day_is_valid() {
        let bill =
            parse_fund_flow_bill(lines(&[HEADER, SUMMARY_HEADER, "`0,`0,`0.00,`0,`0.00"], "\r\n").as_bytes()).unwrap();
        assert!(bill.entries.is_empty());
        assert_eq!(bill.summary.total_count, 0);
        assert_eq!(bill.summary.expense_fen, 0);
    }

    #[test]
    fn amounts_parse_to_fen_without_floats() {
        for (text, fen) in [
            ("1.23", 123),
            ("0.5", 50),
            ("100", 10_000),
            ("0", 0),
            ("0.00", 0),
            ("-1.00", -100),
            ("-0.01", -1),
            ("007.10", 710),
            ("0.07", 7),
            // Binary floating point gets these wrong: 0.29 * 100 = 28.999…, 1.15 * 100 = 114.999…
            ("0.29", 29),
            ("1.15", 115),
            ("92233720368547758.07", i64::MAX),
            ("-92233720368547758.07", -i64::MAX),
        ] {
            assert_eq!(parse_yuan_to_fen(text), Ok(fen), "{text}");
        }
        for (text, error) in [
            ("", AmountError::Empty),
            ("1.234", AmountError::TooManyDecimals),
            ("1.230", AmountError::TooManyDecimals),
            ("1.", AmountError::Garbage),
            (".5", AmountError::Garbage),
            ("-", AmountError::Garbage),
            ("--1", AmountError::Garbage),
            ("+1", AmountError::Garbage),
            (" 1", AmountError::Garbage),
            ("1 ", AmountError::Garbage),
            ("1,000.00", AmountError::Garbage),
            ("1e3", AmountError::Garbage),
            ("abc", AmountError::Garbage),
            ("1.2.3", AmountError::Garbage),
            ("１.00", AmountError::Garbage),
            ("`1.00", AmountError::Garbage),
            ("92233720368547758.08", AmountError::Overflow),
            ("99999999999999999999999", AmountError::Overflow),
        ] {
            assert_eq!(parse_yuan_to_fen(text), Err(error), "{text}");
        }
    }

    #[test]
    fn malformed_rows_are_named() {
        let bad_amount = |value: &str, reason| BillParseError::BadAmount {
            line: 3,
            column: COL_AMOUNT,
            value: value.into(),
            reason,
        };
        assert_eq!(sample_with("`0.5,", "`0.5x,"), Err(bad_amount("0.5x", AmountError::Garbage)));
        assert_eq!(sample_with("`0.5,", "`0.500,"), Err(bad_amount("0.500", AmountError::TooManyDecimals)));
        assert_eq!(sample_with("`0.5,", "`,"), Err(bad_amount("", AmountError::Empty)));
        assert_eq!(sample_with("`0.5,", "`-0.5,"), Err(bad_amount("-0.5", AmountError::Negative)));
        assert_eq!(
            sample_with("`0.5,", "`99999999999999999999,"),
            Err(bad_amount("99999999999999999999", AmountError::Overflow))
        );
        assert_eq!(
            sample_with("`99.50,", "`99.5.0,"),
            Err(BillParseError::BadAmount {
                line: 3,
                column: COL_BALANCE,
                value: "99.5.0".into(),
                reason: AmountError::Garbage
            })
        );
        assert_eq!(
            sample_with("`支出,`0.5", "`退款,`0.5"),
            Err(BillParseError::BadDirection { line: 3, value: "退款".into() })
        );
        assert_eq!(
            sample_with("`2025-03-01 10:20:30", "`2025-02-30 10:20:30"),
            Err(BillParseError::BadTime { line: 3, value: "2025-02-30 10:20:30".into() })
        );
        assert_eq!(
            sample_with("`2025-03-01 10:20:30", "`2025/03/01 10:20:30"),
            Err(BillParseError::BadTime { line: 3, value: "2025/03/01 10:20:30".into() })
        );
        // A comma inside a field shifts nothing: the row is refused.
        assert_eq!(
            sample_with("`奖励,", "`奖励,额外,"),
            Err(BillParseError::FieldCount { line: 3, expected: 11, found: 12 })
        );
        assert_eq!(
            sample_with("`奖励,`B1", "`奖励"),
            Err(BillParseError::FieldCount { line: 3, expected: 11, found: 10 })
        );
        assert_eq!(parse_fund_flow_bill(b"\xff\xfe"), Err(BillParseError::NotUtf8));
        assert_eq!(parse_fund_flow_bill(b""), Err(BillParseError::Empty));
        assert_eq!(parse_fund_flow_bill(b"\r\n\n"), Err(BillParseError::Empty));
    }

    #[test]
    fn missing_or_duplicate_columns_are_named() {
        let without_voucher = |line: &str| line.rsplit_once(',').unwrap().0.to_owned();
        let file = lines(
            &[
                &without_voucher(HEADER),
                &without_voucher(ROW_INCOME),
                &without_voucher(ROW_EXPENSE_1),
                &without_voucher(ROW_EXPENSE_2),
                SUMMARY_HEADER,
                SUMMARY,
            ],
            "\n",
        );
        assert_eq!(
            parse_fund_flow_bill(file.as_bytes()),
            Err(BillParseError::MissingColumn { line: 1, name: COL_VOUCHER_NO })
        );
        assert_eq!(
            sample_with("收支金额(元)", "收支金额(分)"),
            Err(BillParseError::MissingColumn { line: 1, name: COL_AMOUNT })
        );
        assert_eq!(
            sample_with("业务凭证号", "备注"),
            Err(BillParseError::DuplicateColumn { line: 1, name: COL_REMARK })
        );
        // No header at all: the first row is read as one and lacks the columns.
        let headless = lines(&[ROW_INCOME, SUMMARY_HEADER, SUMMARY], "\n");
        assert_eq!(
            parse_fund_flow_bill(headless.as_bytes()),
            Err(BillParseError::MissingColumn { line: 1, name: COL_BOOKED_AT })
        );
        assert_eq!(
            sample_with("收入笔数", "收入数"),
            Err(BillParseError::MissingColumn { line: 5, name: SUM_INCOME_COUNT })
        );
    }

    #[test]
    fn the_summary_must_match_the_rows() {
        for (summary, field, stated, computed) in [
            ("`4,`1,`100.00,`2,`100.02", SummaryField::TotalCount, 4, 3),
            ("`3,`2,`100.00,`2,`100.02", SummaryField::IncomeCount, 2, 1),
            ("`3,`1,`100.01,`2,`100.02", SummaryField::IncomeAmount, 10_001, 10_000),
            ("`3,`1,`100.00,`1,`100.02", SummaryField::ExpenseCount, 1, 2),
            ("`3,`1,`100.00,`2,`100.2", SummaryField::ExpenseAmount, 10_020, 10_002),
        ] {
            assert_eq!(
                sample_with(SUMMARY, summary),
                Err(BillParseError::SummaryMismatch { field, stated, computed }),
                "{summary}"
            );
        }
        let error = sample_with(SUMMARY, "`3,`1,`100.00,`2,`100.03").unwrap_err();
        assert_eq!(error.to_string(), "summary 支出金额 says 10003, the rows add up to 10002");
        assert_eq!(
            sample_with(SUMMARY, "`3,`1,`100.00,`2"),
            Err(BillParseError::FieldCount { line: 6, expected: 5, found: 4 })
        );
        assert_eq!(
            sample_with(SUMMARY, "`3,`one,`100.00,`2,`100.02"),
            Err(BillParseError::BadCount { line: 6, column: SUM_INCOME_COUNT, value: "one".into() })
        );
        assert_eq!(
            sample_with(SUMMARY, "`3,`1,`100.00,`2,`-100.02"),
            Err(BillParseError::BadAmount {
                line: 6,
                column: SUM_EXPENSE_AMOUNT,
                value: "-100.02".into(),
                reason: AmountError::Negative
            })
        );
    }

    #[test]
    fn truncated_files_and_missing_summaries_are_refused() {
        let no_summary = lines(&[HEADER, ROW_INCOME, ROW_EXPENSE_1, ROW_EXPENSE_2], "\r\n");
        assert_eq!(parse_fund_flow_bill(no_summary.as_bytes()), Err(BillParseError::MissingSummary));
        let no_summary_line = lines(&[HEADER, ROW_INCOME, ROW_EXPENSE_1, ROW_EXPENSE_2, SUMMARY_HEADER], "\r\n");
        assert_eq!(parse_fund_flow_bill(no_summary_line.as_bytes()), Err(BillParseError::MissingSummaryLine));
        assert_eq!(
            parse_fund_flow_bill(format!("{}`x\r\n", sample()).as_bytes()),
            Err(BillParseError::TrailingData { line: 7 })
        );
        // Cut anywhere before the summary line, the file is refused (a cut inside the summary's
        // last amount can read the same, `100.02` → `100.0` aside; the hash check covers that).
        let file = sample();
        let summary_at = file.find(SUMMARY).unwrap();
        for cut in (0..summary_at).filter(|&cut| file.is_char_boundary(cut)) {
            assert!(parse_fund_flow_bill(&file.as_bytes()[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_fund_flow_bill(&file.as_bytes()[..file.len() - 4]).is_err());
    }

    #[test]
    fn the_hash_is_sha1_hex_in_any_case() {
        // FIPS 180 "abc" vector.
        let abc = "a9993e364706816aba3e25717850c26c9cd0d89d";
        let download = |hash_type: &str, hash_value: &str| BillDownload {
            download_url: "https://api.mch.weixin.qq.com/v3/billdownload/file?token=t".into(),
            hash_type: hash_type.into(),
            hash_value: hash_value.into(),
        };
        assert_eq!(check_bill_hash(&download("SHA1", abc), b"abc"), Ok(()));
        assert_eq!(check_bill_hash(&download("sha1", &abc.to_uppercase()), b"abc"), Ok(()));
        assert_eq!(
            check_bill_hash(&download("SHA1", abc), b"abd"),
            Err(FundFlowBillError::HashMismatch { expected: abc.into(), actual: sha1_hex(b"abd") })
        );
        assert_eq!(
            check_bill_hash(&download("SHA256", abc), b"abc"),
            Err(FundFlowBillError::UnsupportedHashType("SHA256".into()))
        );
        assert_eq!(
            check_bill_hash(&download("SHA1", &abc[1..]), b"abc"),
            Err(FundFlowBillError::BadHashValue(abc[1..].into()))
        );
        let not_hex = format!("{}g", &abc[1..]);
        assert_eq!(check_bill_hash(&download("SHA1", &not_hex), b"abc"), Err(FundFlowBillError::BadHashValue(not_hex)));
    }

    #[test]
    fn download_urls_must_stay_on_the_api_origin() {
        let base = Url::parse("https://api.mch.weixin.qq.com").unwrap();
        for good in [
            "https://api.mch.weixin.qq.com/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO",
            "https://API.mch.weixin.qq.com:443/v3/billdownload/file?token=t#fragment",
        ] {
            let url = check_download_url(&base, good).unwrap();
            assert_eq!(url.host_str(), Some("api.mch.weixin.qq.com"));
            assert_eq!(url.fragment(), None);
        }
        for bad in [
            "http://api.mch.weixin.qq.com/v3/billdownload/file?token=t",
            "https://api.mch.weixin.qq.com:8443/v3/billdownload/file?token=t",
            "https://api2.mch.weixin.qq.com/v3/billdownload/file?token=t",
            "https://api.mch.weixin.qq.com.evil.example/v3/billdownload/file",
            "https://evil.example/?https://api.mch.weixin.qq.com/",
            "https://user:pass@api.mch.weixin.qq.com/v3/billdownload/file",
            "https://user@api.mch.weixin.qq.com/v3/billdownload/file",
            "/v3/billdownload/file?token=t",
            "file:///etc/passwd",
            "not a url",
            "",
        ] {
            assert!(
                matches!(check_download_url(&base, bad), Err(FundFlowBillError::ForeignDownloadUrl { .. })),
                "{bad}"
            );
        }
        let error = check_download_url(&base, "https://evil.example/steal?token=secret").unwrap_err();
        assert_eq!(error.to_string(), "download URL is not on the API's origin (it points at https://evil.example)");
        // A base with a path prefix and an explicit port: the origin is what counts.
        let mock = Url::parse("http://127.0.0.1:9/prefix").unwrap();
        assert!(check_download_url(&mock, "http://127.0.0.1:9/v3/billdownload/file?token=t").is_ok());
        assert!(check_download_url(&mock, "http://127.0.0.1:10/v3/billdownload/file?token=t").is_err());
        assert!(check_download_url(&mock, "http://localhost:9/v3/billdownload/file?token=t").is_err());
    }

    #[test]
    fn apply_answers_are_sorted() {
        let ok = |body: &str| V3Answer::Ok { status: 200, body: body.as_bytes().to_vec() };
        let error =
            |status, code: &str| V3Answer::Error { status, error: ApiError { code: code.into(), message: "m".into() } };
        let download = classify_apply_answer(ok(
            r#"{"download_url":"https://api.mch.weixin.qq.com/v3/billdownload/file?token=t","hash_type":"SHA1","hash_value":"79bb0f45fc4c42234a918000b2668d689e2bde04"}"#,
        ))
        .unwrap();
        assert_eq!(download.hash_value, "79bb0f45fc4c42234a918000b2668d689e2bde04");
        for body in ["{}", "not json", r#"{"download_url":"","hash_type":"SHA1","hash_value":"x"}"#] {
            assert!(
                matches!(
                    classify_apply_answer(ok(body)),
                    Err(FundFlowBillOutcome::Failed(FundFlowBillError::BadApplyAnswer(_)))
                ),
                "{body}"
            );
        }
        assert_eq!(
            classify_apply_answer(error(400, CODE_NO_STATEMENT_EXIST)),
            Err(FundFlowBillOutcome::NoStatement { message: "m".into() })
        );
        assert_eq!(
            classify_apply_answer(error(400, CODE_STATEMENT_CREATING)),
            Err(FundFlowBillOutcome::Generating { message: "m".into() })
        );
        for (status, code) in [(500, CODE_NO_STATEMENT_EXIST), (400, "PARAM_ERROR"), (401, "SIGN_ERROR")] {
            assert_eq!(
                classify_apply_answer(error(status, code)),
                Err(FundFlowBillOutcome::Failed(FundFlowBillError::Refused {
                    status,
                    code: code.into(),
                    message: "m".into()
                }))
            );
        }
        let unknown = V3Answer::Unknown { code: CODE_BAD_SIGNATURE.into(), message: "m".into() };
        assert!(matches!(
            classify_apply_answer(unknown),
            Err(FundFlowBillOutcome::Failed(FundFlowBillError::Unknown { .. }))
        ));
    }

    /// What the test server saw of one request.
    #[derive(Debug)]
    struct Seen {
        target: String,
        /// The Authorization verified with the merchant public key over `GET\ntarget\n…`.
        signed: bool,
    }

    type Route = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

    /// Checks one request's Authorization over `GET\n{target}\n{timestamp}\n{nonce}\n\n`.
    fn authorization_verifies(head: &str, target: &str) -> bool {
        let Some(auth) = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("authorization").then(|| value.trim().to_owned())
        }) else {
            return false;
        };
        let field = |name: &str| {
            let start = auth.find(&format!("{name}=\""))? + name.len() + 2;
            auth[start..].split('"').next().map(str::to_owned)
        };
        let (Some(timestamp), Some(nonce), Some(signature)) =
            (field("timestamp"), field("nonce_str"), field("signature"))
        else {
            return false;
        };
        let message = format!("GET\n{target}\n{timestamp}\n{nonce}\n\n");
        let verifier = VerifyingKey::<Sha256>::new(crypto::load_public_key_pem(MERCHANT_PUB).unwrap());
        auth.starts_with(AUTH_SCHEME) && crypto::verify_sha256_rsa(&verifier, message.as_bytes(), &signature).is_ok()
    }

    /// Plays WeChat Pay on `listener`, one request per connection: records each request and
    /// answers `route(target)`.
    fn serve(listener: TcpListener, route: Route) -> (Arc<Mutex<Vec<Seen>>>, tokio::task::JoinHandle<()>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let server = tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8(request).unwrap();
                let target = head.split(' ').nth(1).unwrap().to_owned();
                let signed = authorization_verifies(&head, &target);
                let answer = route(&target);
                record.lock().unwrap().push(Seen { target, signed });
                socket.write_all(&answer).await.unwrap();
                socket.shutdown().await.ok();
            }
        });
        (seen, server)
    }

    fn answer(status: u16, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut answer =
            format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n", body.len())
                .into_bytes();
        answer.extend_from_slice(body);
        answer
    }

    /// A JSON answer signed with the test WeChat Pay key, as `execute` expects.
    fn signed_answer(status: u16, body: &str) -> Vec<u8> {
        let h = wechat_headers(body.as_bytes(), unix_now());
        let headers = format!(
            "Content-Type: application/json\r\nWechatpay-Timestamp: {}\r\nWechatpay-Nonce: {}\r\nWechatpay-Signature: {}\r\nWechatpay-Serial: {}\r\nRequest-ID: R1\r\n",
            h.timestamp, h.nonce, h.signature, h.serial
        );
        answer(status, &headers, body.as_bytes())
    }

    fn apply_ok(download_url: &str, hash_value: &str) -> Vec<u8> {
        let body = serde_json::json!({"download_url": download_url, "hash_type": "SHA1", "hash_value": hash_value});
        signed_answer(200, &body.to_string())
    }

    const APPLY_TARGET: &str = "/prefix/v3/bill/fundflowbill?bill_date=2025-03-01&account_type=BASIC";
    const DOWNLOAD_TARGET: &str = "/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2";

    /// Runs `fund_flow_bill` for 2025-03-01 against a server answering the apply with
    /// `apply(port)` and anything else with `download`.
    async fn run(
        apply: impl Fn(u16) -> Vec<u8>,
        download: Vec<u8>,
    ) -> (Result<FundFlowBillOutcome, V3Error>, Vec<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let apply = apply(port);
        let route: Route =
            Arc::new(move |target| if target == APPLY_TARGET { apply.clone() } else { download.clone() });
        let (seen, server) = serve(listener, route);
        let client = V3Client::new(V3Config {
            base_url: format!("http://127.0.0.1:{port}/prefix"),
            signer: signer(),
            keys: keys(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            root_ca_pem: None,
        })
        .unwrap();
        let outcome = client.fund_flow_bill(time::macros::date!(2025 - 03 - 01)).await;
        server.abort();
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        (outcome, seen)
    }

    fn download_url(port: u16) -> String {
        format!("http://127.0.0.1:{port}{DOWNLOAD_TARGET}")
    }

    #[tokio::test]
    async fn applies_downloads_and_parses() {
        let file = sample();
        let hash = sha1_hex(file.as_bytes()).to_uppercase();
        let download = answer(200, "Content-Type: application/octet-stream\r\n", file.as_bytes());
        let (outcome, seen) = run(|port| apply_ok(&download_url(port), &hash), download).await;
        match outcome.unwrap() {
            FundFlowBillOutcome::Ready(bill) => assert_sample_entries(&bill),
            other => panic!("{other:?}"),
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].target, APPLY_TARGET);
        assert_eq!(seen[1].target, DOWNLOAD_TARGET);
        assert!(seen.iter().all(|s| s.signed), "{seen:?}");
    }

    #[tokio::test]
    async fn no_statement_is_its_own_outcome() {
        let body = r#"{"code":"NO_STATEMENT_EXIST","message":"请求的账单文件不存在"}"#;
        let (outcome, seen) = run(|_| signed_answer(400, body), Vec::new()).await;
        assert_eq!(outcome.unwrap(), FundFlowBillOutcome::NoStatement { message: "请求的账单文件不存在".into() });
        assert_eq!(seen.len(), 1);
        let creating = r#"{"code":"STATEMENT_CREATING","message":"账单生成中"}"#;
        let (outcome, _) = run(|_| signed_answer(400, creating), Vec::new()).await;
        assert_eq!(outcome.unwrap(), FundFlowBillOutcome::Generating { message: "账单生成中".into() });
    }

    #[tokio::test]
    async fn a_hash_mismatch_is_refused() {
        let file = sample();
        let hash = sha1_hex(file.as_bytes());
        let altered = file.replacen("`0.5,", "`0.6,", 1);
        let download = answer(200, "", altered.as_bytes());
        let (outcome, seen) = run(|port| apply_ok(&download_url(port), &hash), download).await;
        assert_eq!(
            outcome.unwrap(),
            FundFlowBillOutcome::Failed(FundFlowBillError::HashMismatch {
                expected: hash.clone(),
                actual: sha1_hex(altered.as_bytes())
            })
        );
        assert_eq!(seen.len(), 2);
    }

    #[tokio::test]
    async fn a_foreign_download_url_is_not_followed() {
        let file = sample();
        let hash = sha1_hex(file.as_bytes());
        let foreign = |port: u16| format!("http://127.0.0.1:{}{DOWNLOAD_TARGET}", port.wrapping_add(1));
        let (outcome, seen) = run(|port| apply_ok(&foreign(port), &hash), answer(200, "", file.as_bytes())).await;
        assert!(matches!(outcome.unwrap(), FundFlowBillOutcome::Failed(FundFlowBillError::ForeignDownloadUrl { .. })),);
        assert_eq!(seen.len(), 1, "{seen:?}");
    }

    #[tokio::test]
    async fn download_failures_are_typed() {
        let file = sample();
        let hash = sha1_hex(file.as_bytes());
        let apply = |port: u16| apply_ok(&download_url(port), &hash);
        let failed = |outcome: Result<FundFlowBillOutcome, V3Error>| match outcome.unwrap() {
            FundFlowBillOutcome::Failed(error) => error,
            other => panic!("{other:?}"),
        };

        let (outcome, _) = run(apply, answer(404, "", br#"{"code":"NOT_FOUND","message":"x"}"#)).await;
        assert_eq!(failed(outcome), FundFlowBillError::DownloadStatus { status: 404 });

        let (outcome, _) = run(apply, answer(200, "Content-Encoding: gzip\r\n", file.as_bytes())).await;
        assert_eq!(failed(outcome), FundFlowBillError::ContentEncoding("gzip".into()));

        // The hash matches but the file does not add up: a parse error, not a mismatch.
        let wrong = file.replacen(SUMMARY, "`3,`1,`100.00,`2,`100.03", 1);
        let wrong_hash = sha1_hex(wrong.as_bytes());
        let (outcome, _) =
            run(|port| apply_ok(&download_url(port), &wrong_hash), answer(200, "", wrong.as_bytes())).await;
        assert!(matches!(
            failed(outcome),
            FundFlowBillError::Parse(BillParseError::SummaryMismatch { field: SummaryField::ExpenseAmount, .. })
        ));

        // An apply answer without WeChat's signature is not trusted, so nothing is downloaded.
        let unsigned = |port: u16| {
            let body = serde_json::json!({"download_url": download_url(port), "hash_type": "SHA1", "hash_value": hash});
            answer(200, "Content-Type: application/json\r\n", body.to_string().as_bytes())
        };
        let (outcome, seen) = run(unsigned, Vec::new()).await;
        assert!(matches!(failed(outcome), FundFlowBillError::Unknown { code, .. } if code == CODE_BAD_SIGNATURE));
        assert_eq!(seen.len(), 1);

        let md5 = |port: u16| {
            let body = serde_json::json!({"download_url": download_url(port), "hash_type": "MD5", "hash_value": hash});
            signed_answer(200, &body.to_string())
        };
        let (outcome, seen) = run(md5, Vec::new()).await;
        assert_eq!(failed(outcome), FundFlowBillError::UnsupportedHashType("MD5".into()));
        assert_eq!(seen.len(), 1);
    }

    #[tokio::test]
    async fn downloads_are_capped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let route: Route = Arc::new(|target| {
            if target.contains("chunked") {
                // No Content-Length: the cap must hold while streaming.
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n".to_vec()
            } else {
                answer(200, "", b"0123456789abcdef")
            }
        });
        let (_seen, server) = serve(listener, route);
        let client = V3Client::new(V3Config {
            base_url: format!("http://127.0.0.1:{port}"),
            signer: signer(),
            keys: keys(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            root_ca_pem: None,
        })
        .unwrap();
        for path in ["/length", "/chunked"] {
            let url = Url::parse(&format!("http://127.0.0.1:{port}{path}")).unwrap();
            let auth = client.authorization_for_get(&url).await.unwrap();
            assert_eq!(
                client.get_unsigned_answer(url.clone(), auth.clone(), 15).await,
                Err(FundFlowBillError::TooLarge { limit: 15 }),
                "{path}"
            );
            assert_eq!(client.get_unsigned_answer(url, auth, 16).await.unwrap(), b"0123456789abcdef", "{path}");
        }
        server.abort();
    }

    #[tokio::test]
    async fn unreachable_server_is_a_reported_failure() {
        let outcome = client().fund_flow_bill(time::macros::date!(2025 - 03 - 01)).await.unwrap();
        assert!(matches!(outcome, FundFlowBillOutcome::Failed(FundFlowBillError::Unknown { .. })), "{outcome:?}");
    }

    proptest! {
        #[test]
        fn amounts_round_trip(fen in -i64::MAX..=i64::MAX) {
            let (sign, abs) = (if fen < 0 { "-" } else { "" }, fen.unsigned_abs());
            prop_assert_eq!(parse_yuan_to_fen(&format!("{sign}{}.{:02}", abs / 100, abs % 100)), Ok(fen));
            if abs % 100 == 0 {
                prop_assert_eq!(parse_yuan_to_fen(&format!("{sign}{}", abs / 100)), Ok(fen));
            }
            if abs % 10 == 0 {
                prop_assert_eq!(parse_yuan_to_fen(&format!("{sign}{}.{}", abs / 100, abs % 100 / 10)), Ok(fen));
            }
        }

        #[test]
        fn amount_parsing_never_panics(text in "\\PC{0,30}|[-0-9.]{0,30}") {
            let _ = parse_yuan_to_fen(&text);
        }

        #[test]
        fn bill_parsing_never_panics(file in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_fund_flow_bill(&file);
        }

        /// Any line of the sample replaced by a line of bill-like pieces: an error or a bill, never a panic.
        #[test]
        fn bill_parsing_never_panics_on_near_misses(
            at in 0usize..6,
            pieces in proptest::collection::vec(
                prop_oneof![Just("`".to_owned()), Just(",".to_owned()), Just("收入".to_owned()), Just("支出".to_owned()), Just("资金流水总笔数".to_owned()), "[-0-9. :]{0,6}"],
                0..30,
            ),
        ) {
            let mut all: Vec<String> = sample().split("\r\n").map(str::to_owned).collect();
            all[at] = pieces.concat();
            let _ = parse_fund_flow_bill(all.join("\r\n").as_bytes());
        }
    }
}
