//! The daily fund-flow bill (资金账单) of a merchant's BASIC account, made from the journal of
//! balance movements its store keeps: `GET /v3/bill/fundflowbill` answers where to download it and
//! its SHA-1, `GET /v3/billdownload/file?token=…` serves the file. Both require a valid merchant
//! `Authorization` like every v3 call (else 401 `SIGN_ERROR`), which also says whose bill it is;
//! the first answer is signed, the file is not (WeChat does not sign downloads: the client checks
//! the hash).
//!
//! The file is WeChat's CSV (UTF-8, `\r\n`): the header [`FUND_FLOW_HEADER`], one line per movement
//! on that Beijing day [00:00, 24:00), oldest first, every field prefixed with a backtick, then
//! [`FUND_FLOW_SUMMARY_HEADER`] and one summary line. Amounts are yuan with two decimals, printed
//! from integer fen; 账户结余 is the balance right after the movement.
//!
//! Mock choices, where WeChat differs or is not documented:
//! - the bill of the current Beijing day is served "so far" (WeChat produces it the next morning
//!   and answers `STATEMENT_CREATING` until then), so tests need not wait for midnight; a later
//!   day is `NO_STATEMENT_EXIST`; a day without movements is a bill with no lines (WeChat's FAQ
//!   says it answers `NO_STATEMENT_EXIST` then; inject it with a `pay_err_code` fault if needed);
//! - only `account_type=BASIC` (the account red packets, enterprise payments and transfer bills are
//!   paid from in the mock) and no `tar_type` (no GZIP);
//! - the file is generated once, when `fundflowbill` is called, and kept under its token until a
//!   reset, so the downloaded bytes are those the hash was computed over;
//! - ASCII commas and line breaks inside a remark are replaced by `，` and spaces, as the format
//!   has no quoting;
//! - 资金变更提交申请人 is the merchant id; the test control `set_pay_balance_fen` appears as a
//!   收入 `充值` (raised) or 支出 `提现` (lowered) line without 业务凭证号.

use std::collections::HashMap;

use poem::{handler, http::StatusCode, web::Data, Body, IntoResponse, Request, Response};
use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};

use super::merchants::DEFAULT_MERCHANT;
use super::sign::nonce;
use super::store::{beijing_date, beijing_time, FundMovement, MovementKind, PayChannel};
use super::v3::{param_error, serve, v3_err, V3Error};
use crate::clock::beijing_day;
use crate::state::{MockState, MockWechat};

/// The bill application path.
pub const FUND_FLOW_BILL_PATH: &str = "/v3/bill/fundflowbill";
/// The download path of every bill file.
pub const BILL_DOWNLOAD_PATH: &str = "/v3/billdownload/file";
/// First line of a fund-flow bill.
pub const FUND_FLOW_HEADER: &str =
    "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),资金变更提交申请人,备注,业务凭证号";
/// Header of the summary at the end of a fund-flow bill.
pub const FUND_FLOW_SUMMARY_HEADER: &str = "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额";
/// The only account type the mock keeps a bill for.
pub const ACCOUNT_TYPE_BASIC: &str = "BASIC";

/// Why a fund-flow bill cannot be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillError {
    /// The date is not a `YYYY-MM-DD` calendar date (WeChat: 400 `PARAM_ERROR`).
    InvalidDate(String),
    /// The day has not begun yet in Beijing (WeChat: 400 `NO_STATEMENT_EXIST`, 账单文件不存在).
    NoStatementExist(String),
    /// No merchant has this id ([`MockWechat::fund_flow_bill_of`] only).
    UnknownMerchant(String),
}

impl std::fmt::Display for BillError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidDate(date) => write!(f, "bill_date {date:?} is not a YYYY-MM-DD date"),
            Self::NoStatementExist(date) => write!(f, "no bill for {date}: that day has not begun in Beijing"),
            Self::UnknownMerchant(mch_id) => write!(f, "no merchant {mch_id}"),
        }
    }
}

impl std::error::Error for BillError {}

impl From<BillError> for V3Error {
    fn from(error: BillError) -> Self {
        match error {
            BillError::InvalidDate(_) => param_error("bill_date格式错误，应为YYYY-MM-DD"),
            BillError::NoStatementExist(_) => v3_err(StatusCode::BAD_REQUEST, "NO_STATEMENT_EXIST", "账单文件不存在"),
            BillError::UnknownMerchant(_) => {
                v3_err(StatusCode::BAD_REQUEST, "MCH_NOT_EXISTS", super::merchants::V3_UNKNOWN_MERCHANT)
            }
        }
    }
}

impl MovementKind {
    /// 业务名称 and 业务类型.
    fn business(self) -> (&'static str, &'static str) {
        let name = |channel| match channel {
            PayChannel::RedPacket => "现金红包",
            PayChannel::EnterprisePayment => "企业付款",
            PayChannel::TransferBill => "商家转账",
        };
        match self {
            Self::Payout(PayChannel::RedPacket) => ("现金红包", "企业红包"),
            Self::Payout(PayChannel::EnterprisePayment) => ("企业付款", "企业付款到零钱"),
            Self::Payout(PayChannel::TransferBill) => ("商家转账", "商家转账"),
            Self::Refund(channel) => (name(channel), "退款"),
            Self::Recharge => ("充值", "充值"),
            Self::Withdrawal => ("提现", "提现"),
        }
    }
}

/// The Beijing day (days since 1970-01-01) of a strict `YYYY-MM-DD` calendar date.
pub(crate) fn parse_bill_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = bytes.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year == 0 || !(1..=month_days).contains(&day) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Fen as yuan with exactly two decimals, never through a float.
fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A free-text field made safe for a format without quoting.
fn plain_field(text: &str) -> String {
    text.replace(',', "，").replace(['\r', '\n'], " ")
}

fn csv_line(fields: &[&str]) -> String {
    let mut line = fields.iter().map(|field| format!("`{field}")).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// The bill file of `movements` (one day's, oldest first).
fn render_fund_flow_bill<'a>(mch_id: &str, movements: impl IntoIterator<Item = &'a FundMovement>) -> String {
    let mut out = format!("{FUND_FLOW_HEADER}\r\n");
    let (mut income_count, mut income_fen, mut expense_count, mut expense_fen) = (0_u64, 0_i64, 0_u64, 0_i64);
    for m in movements {
        let (name, kind) = m.kind.business();
        let direction = if m.amount_fen >= 0 {
            income_count += 1;
            income_fen += m.amount_fen;
            "收入"
        } else {
            expense_count += 1;
            expense_fen -= m.amount_fen;
            "支出"
        };
        out.push_str(&csv_line(&[
            &beijing_time(m.at),
            &m.wechat_no,
            &m.flow_no,
            name,
            kind,
            direction,
            &yuan(m.amount_fen.abs()),
            &yuan(m.balance_after_fen),
            mch_id,
            &plain_field(&m.remark),
            &plain_field(&m.bill_no),
        ]));
    }
    out.push_str(FUND_FLOW_SUMMARY_HEADER);
    out.push_str("\r\n");
    out.push_str(&csv_line(&[
        &(income_count + expense_count).to_string(),
        &income_count.to_string(),
        &yuan(income_fen),
        &expense_count.to_string(),
        &yuan(expense_fen),
    ]));
    out
}

impl MockState {
    /// The fund-flow bill of merchant `merchant` for Beijing day `bill_date` as it stands now.
    fn fund_flow_file(&mut self, merchant: usize, bill_date: &str) -> Result<String, BillError> {
        let now_ms = self.clock.now_ms();
        let day = parse_bill_date(bill_date).ok_or_else(|| BillError::InvalidDate(bill_date.to_owned()))?;
        if day > beijing_day(now_ms) {
            return Err(BillError::NoStatementExist(bill_date.to_owned()));
        }
        // Refunds and cancellations that are due are booked before the day is read.
        let store = &mut self.pay[merchant];
        store.settle_red_packets(now_ms.div_euclid(1000));
        store.expire_transfer_bills(now_ms);
        let of_day = store.movements.iter().filter(|m| beijing_day(m.at.saturating_mul(1000)) == day);
        Ok(render_fund_flow_bill(&store.config.mch_id, of_day))
    }

    /// `fundflowbill` for merchant `merchant`: generates the file, keeps it under a fresh token of
    /// that merchant's, answers where and its hash.
    fn apply_fund_flow_bill(
        &mut self,
        merchant: usize,
        query: &HashMap<String, String>,
        base_url: &str,
    ) -> Result<Value, V3Error> {
        let bill_date = query.get("bill_date").map(String::as_str).unwrap_or_default();
        if bill_date.is_empty() {
            return Err(param_error("bill_date字段必填"));
        }
        match query.get("account_type").map(String::as_str) {
            None | Some(ACCOUNT_TYPE_BASIC) => {}
            Some(_) => return Err(param_error("account_type取值错误，模拟商户仅有BASIC账户")),
        }
        if query.contains_key("tar_type") {
            return Err(param_error("tar_type不支持（模拟商户只提供未压缩的账单）"));
        }
        let file = self.fund_flow_file(merchant, bill_date)?;
        let hash_value = hex::encode(Sha1::digest(file.as_bytes()));
        let token = nonce(40);
        self.pay[merchant].bill_files.insert(token.clone(), file);
        Ok(json!({
            "download_url": format!("{base_url}{BILL_DOWNLOAD_PATH}?token={token}"),
            "hash_type": "SHA1",
            "hash_value": hash_value,
        }))
    }
}

impl MockWechat {
    /// The fund-flow bill (资金账单) of the default merchant's BASIC account for Beijing day
    /// `bill_date` (`YYYY-MM-DD`), exactly as `GET /v3/bill/fundflowbill` would have it downloaded
    /// now: today's so far, a later day [`BillError::NoStatementExist`].
    pub fn fund_flow_bill(&self, bill_date: &str) -> Result<String, BillError> {
        self.lock().fund_flow_file(DEFAULT_MERCHANT, bill_date)
    }

    /// Like [`Self::fund_flow_bill`], for merchant `mch_id` ([`BillError::UnknownMerchant`] if no
    /// merchant has that id).
    pub fn fund_flow_bill_of(&self, mch_id: &str, bill_date: &str) -> Result<String, BillError> {
        let mut state = self.lock();
        let merchant = state.pay.find(mch_id).ok_or_else(|| BillError::UnknownMerchant(mch_id.to_owned()))?;
        state.fund_flow_file(merchant, bill_date)
    }

    /// Today's date in Beijing on the mock clock (`YYYY-MM-DD`), the `bill_date` of today's bill.
    pub fn beijing_today(&self) -> String {
        beijing_date(self.now_unix())
    }
}

fn query_of(req: &Request) -> HashMap<String, String> {
    req.params().unwrap_or_default()
}

/// `http://<Host>`: the mock serves plain HTTP, and the client reached it under that name.
fn base_url_of(req: &Request) -> String {
    let host = req
        .header("Host")
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(ToString::to_string))
        .or_else(|| req.local_addr().as_socket_addr().map(ToString::to_string))
        .unwrap_or_default();
    format!("http://{host}")
}

/// `GET /v3/bill/fundflowbill?bill_date=YYYY-MM-DD[&account_type=BASIC]`.
#[handler]
pub(crate) async fn fund_flow_bill(req: &Request, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let query = query_of(req);
    let base_url = base_url_of(req);
    serve(mock, req, body, move |state, m| state.apply_fund_flow_bill(m, &query, &base_url)).await
}

/// `GET /v3/billdownload/file?token=…`: the file as it was when the token was issued, to the
/// merchant it was issued to (another merchant's token is as unknown as a made-up one).
#[handler]
pub(crate) async fn download(req: &Request, body: Body, Data(mock): Data<&MockWechat>) -> Response {
    let bytes = body.into_vec().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let url =
        req.uri().path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_else(|| req.uri().path().to_owned());
    let token = query_of(req).remove("token").unwrap_or_default();
    let authorization = req.header("Authorization");
    let mut state = mock.lock();
    state.record_call(req.uri().path());
    let now = state.clock.now_ms().div_euclid(1000);
    let method = req.method().as_str();
    let verified = state
        .pay
        .v3_merchant(method, &url, authorization)
        .and_then(|(m, auth)| state.pay[m].verify_v3(now, method, &url, &auth, &text).map(|()| m));
    let merchant = match verified {
        Ok(merchant) => merchant,
        Err(error) => return state.signed_v3_response(authorization, error.status, &error.body),
    };
    match state.pay[merchant].bill_files.get(&token) {
        Some(file) => file.clone().with_content_type("text/plain; charset=utf-8").into_response(),
        None => {
            let error = param_error("token无效或已过期");
            state.signed_v3_response(authorization, error.status, &error.body)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::clock::beijing_day;

    #[test]
    fn bill_dates_are_strict_calendar_dates() {
        assert_eq!(parse_bill_date("1970-01-01"), Some(0));
        assert_eq!(parse_bill_date("2024-06-01"), Some(19_875));
        assert_eq!(parse_bill_date("2024-02-29"), Some(19_782));
        for bad in ["2023-02-29", "2024-13-01", "2024-00-10", "2024-06-31", "2024-6-01", "20240601", "2024/06/01", ""] {
            assert_eq!(parse_bill_date(bad), None, "{bad}");
        }
        assert_eq!(parse_bill_date("2100-02-29"), None, "not a leap year");
        assert!(parse_bill_date("2000-02-29").is_some(), "a leap year");
    }

    #[test]
    fn yuan_from_fen() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(123), "1.23");
        assert_eq!(yuan(10_000_000), "100000.00");
        assert_eq!(yuan(-150), "-1.50");
    }

    #[test]
    fn an_empty_day_still_has_headers_and_a_summary() {
        let text = render_fund_flow_bill("1900000109", []);
        assert_eq!(text, format!("{FUND_FLOW_HEADER}\r\n{FUND_FLOW_SUMMARY_HEADER}\r\n`0,`0,`0.00,`0,`0.00\r\n"));
    }

    proptest! {
        #[test]
        fn a_formatted_date_parses_back_to_its_beijing_day(secs in -2_000_000_000_i64..10_000_000_000) {
            prop_assert_eq!(parse_bill_date(&beijing_date(secs)), Some(beijing_day(secs * 1000)));
        }
    }
}
