//! What WeChat accepts as a subscribe message's `data`: `{"<keyword>": {"value": "…"}, …}`, not
//! empty, for a template with declared keywords exactly those, and each value non-empty and
//! meeting the rule of its keyword's kind (the letters before its number, e.g. `thing` in
//! `thing1`). Lengths count characters, a Chinese character being one:
//!
//! | kind | rule |
//! | --- | --- |
//! | `thing` | at most 20 characters |
//! | `number` | at most 32, digits with an optional decimal part |
//! | `letter` | at most 32 ASCII letters |
//! | `symbol` | at most 5 symbols |
//! | `character_string` | at most 32 ASCII digits, letters and symbols |
//! | `time` / `date` | digits and `年月日:-/~.` with a time of day (`:`) / a date (`年`, `-` or `/`) |
//! | `amount` | an optional currency sign, at most 10 integer digits, an optional decimal part and `元` |
//! | `phone_number` | at most 17 digits and `+-() ` |
//! | `car_number` | at most 8, letters and digits between a first and last character |
//! | `name` | at most 10 characters with Chinese ones, else at most 20 letters and symbols |
//! | `phrase` | at most 5 Chinese characters |
//! | `enum` | anything (the allowed values live in WeChat's template library) |

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The values by keyword, or the hint WeChat gives for the first problem.
pub(crate) fn check_data(data: &Value, keywords: &[String]) -> Result<BTreeMap<String, String>, String> {
    let empty = Map::new();
    let fields = data.as_object().unwrap_or(&empty);
    if let Some(missing) = keywords.iter().find(|key| !fields.contains_key(key.as_str())) {
        return Err(format!("data.{missing}.value is empty"));
    }
    if fields.is_empty() {
        return Err("data is empty".to_owned());
    }
    let mut values = BTreeMap::new();
    for (key, field) in fields {
        let value = match field.get("value") {
            None | Some(Value::Null) => return Err(format!("data.{key}.value is empty")),
            Some(Value::String(value)) if value.is_empty() => return Err(format!("data.{key}.value is empty")),
            Some(Value::String(value)) => value,
            Some(_) => return Err(format!("data.{key}.value invalid")),
        };
        let declared = keywords.is_empty() || keywords.contains(key);
        let fits = declared && keyword_kind(key).is_some_and(|kind| value_fits(kind, value));
        if !fits {
            return Err(format!("data.{key}.value invalid"));
        }
        values.insert(key.clone(), value.clone());
    }
    Ok(values)
}

/// The kind of keyword `key` (`thing` for `thing1`): a known kind followed by at least one digit.
pub(crate) fn keyword_kind(key: &str) -> Option<&str> {
    let kind = key.trim_end_matches(|c: char| c.is_ascii_digit());
    let known = [
        "thing",
        "number",
        "letter",
        "symbol",
        "character_string",
        "time",
        "date",
        "amount",
        "phone_number",
        "car_number",
        "name",
        "phrase",
        "enum",
    ];
    (kind.len() < key.len() && known.contains(&kind)).then_some(kind)
}

fn is_chinese(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

fn is_symbol(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace()
}

/// Digits with an optional decimal part: `12`, `0.5`.
fn is_decimal(value: &str) -> bool {
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    match value.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(value),
    }
}

/// Whether a non-empty `value` meets WeChat's rule for keywords of `kind` (see the module table).
fn value_fits(kind: &str, value: &str) -> bool {
    let len = value.chars().count();
    let date_time_chars = || value.chars().all(|c| c.is_ascii_digit() || ":-/ ~.年月日".contains(c));
    match kind {
        "thing" => len <= 20,
        "number" => len <= 32 && is_decimal(value),
        "letter" => len <= 32 && value.chars().all(|c| c.is_ascii_alphabetic()),
        "symbol" => len <= 5 && value.chars().all(is_symbol),
        "character_string" => len <= 32 && value.chars().all(|c| c.is_ascii_graphic()),
        "time" => date_time_chars() && value.contains(':'),
        "date" => date_time_chars() && value.contains(['年', '-', '/']),
        "amount" => {
            let value = value.strip_suffix('元').unwrap_or(value);
            let number = match value.chars().next() {
                Some(sign) if !sign.is_ascii_digit() && is_symbol(sign) => &value[sign.len_utf8()..],
                _ => value,
            };
            let whole = number.split_once('.').map_or(number, |(whole, _)| whole);
            is_decimal(number) && whole.len() <= 10
        }
        "phone_number" => len <= 17 && value.chars().all(|c| c.is_ascii_digit() || "+-() ".contains(c)),
        "car_number" => {
            let inner: Vec<char> = value.chars().skip(1).take(len.saturating_sub(2)).collect();
            len <= 8 && inner.iter().all(char::is_ascii_alphanumeric)
        }
        "name" if value.chars().any(is_chinese) => len <= 10 && !value.chars().any(|c| c.is_ascii_digit()),
        "name" => len <= 20 && value.chars().all(|c| c.is_ascii_alphabetic() || c == ' ' || is_symbol(c)),
        "phrase" => len <= 5 && value.chars().all(is_chinese),
        "enum" => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keywords_are_a_kind_and_a_number() {
        assert_eq!(keyword_kind("thing1"), Some("thing"));
        assert_eq!(keyword_kind("character_string10"), Some("character_string"));
        assert_eq!(keyword_kind("number01"), Some("number"));
        assert_eq!(keyword_kind("thing"), None);
        assert_eq!(keyword_kind("thing1.DATA"), None);
        assert_eq!(keyword_kind("keyword1"), None);
    }

    #[test]
    fn values_follow_wechats_rules() {
        let fits = |key: &str, value: &str| value_fits(keyword_kind(key).unwrap(), value);
        assert!(fits("thing1", "邀请3位邻居完成绑定可得50积分奖励!"));
        assert!(!fits("thing1", "【开车族必囤】狂卖50万双!老北京空气棉布鞋"));
        assert!(fits("number2", "339208499") && fits("number2", "3.5"));
        assert!(!fits("number2", "3 人") && !fits("number2", "1.") && !fits("number2", &"9".repeat(33)));
        assert!(fits("amount3", "¥214.00") && fits("amount3", "30") && fits("amount3", "12.5元"));
        assert!(!fits("amount3", "¥12345678901") && !fits("amount3", "约30元") && !fits("amount3", "¥"));
        assert!(
            fits("time4", "2019年10月1日 15:01")
                && fits("time4", "2023-08-21 22:48:54")
                && fits("time4", "15:01~16:00")
        );
        assert!(!fits("time4", "2019年10月1日") && !fits("time4", "明天 15:01"));
        assert!(fits("date5", "2019年10月1日") && fits("date5", "2021-06-01 11:22:41") && !fits("date5", "15:01"));
        assert!(fits("phrase6", "配送中") && !fits("phrase6", "已经配送完成") && !fits("phrase6", "ok"));
        assert!(fits("character_string7", "20250910171633530938") && fits("character_string7", "T-42_a"));
        assert!(
            !fits("character_string7", "单号42")
                && !fits("character_string7", "a b")
                && !fits("character_string7", &"x".repeat(33))
        );
        assert!(fits("letter8", "abc") && !fits("letter8", "ab1"));
        assert!(fits("symbol9", "+-") && !fits("symbol9", "a"));
        assert!(fits("phone_number10", "+86-0766-66888866") && !fits("phone_number10", "tel 123"));
        assert!(fits("car_number11", "粤A8Z888挂") && !fits("car_number11", "粤A-8Z88"));
        assert!(fits("name12", "张三") && fits("name12", "Li Lei") && !fits("name12", "张三1"));
        assert!(fits("enum13", "anything"));
    }

    #[test]
    fn data_is_checked_field_by_field() {
        let ok = check_data(&json!({"thing1": {"value": "邀请邻居"}, "number2": {"value": "3"}}), &[]).unwrap();
        assert_eq!(ok["thing1"], "邀请邻居");
        assert_eq!(check_data(&Value::Null, &[]), Err("data is empty".into()));
        assert_eq!(check_data(&json!({}), &[]), Err("data is empty".into()));
        assert_eq!(check_data(&json!({"thing1": {"value": ""}}), &[]), Err("data.thing1.value is empty".into()));
        assert_eq!(check_data(&json!({"thing1": {}}), &[]), Err("data.thing1.value is empty".into()));
        assert_eq!(check_data(&json!({"thing1": {"value": 3}}), &[]), Err("data.thing1.value invalid".into()));
        assert_eq!(check_data(&json!({"thing1": "x"}), &[]), Err("data.thing1.value is empty".into()));
        assert_eq!(
            check_data(&json!({"thing1.DATA": {"value": "x"}}), &[]),
            Err("data.thing1.DATA.value invalid".into())
        );
        let keywords = vec!["thing1".to_owned(), "time2".to_owned()];
        assert_eq!(check_data(&json!({"thing1": {"value": "x"}}), &keywords), Err("data.time2.value is empty".into()));
        let extra = json!({"thing1": {"value": "x"}, "time2": {"value": "15:01"}, "thing3": {"value": "y"}});
        assert_eq!(check_data(&extra, &keywords), Err("data.thing3.value invalid".into()));
    }
}
