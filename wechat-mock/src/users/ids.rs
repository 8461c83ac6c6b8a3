//! WeChat-looking ids. Openids and unionids are 28 characters of the URL-safe base64 alphabet
//! starting with `o`; openids of one app share their first characters (so do unionids of one Open
//! Platform account), the rest is random.

use rand::Rng;
use sha1::{Digest, Sha1};

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Length of openids and unionids.
pub(crate) const ID_LEN: usize = 28;
/// Characters after the leading `o` that stay the same within one app.
const PREFIX_LEN: usize = 5;

/// A fresh openid for `appid`.
pub(crate) fn new_openid(appid: &str) -> String {
    new_id(&format!("app:{appid}"))
}

/// A fresh unionid on the default Open Platform account.
pub(crate) fn new_unionid() -> String {
    new_id("open-platform")
}

/// A fresh unionid on the Open Platform account named `platform`.
pub(crate) fn new_unionid_on(platform: &str) -> String {
    new_id(&format!("open-platform:{platform}"))
}

/// A random mainland China mobile number as WeChat's `purePhoneNumber` shows it: eleven digits,
/// `1`, then `3`–`9`, then nine more.
pub(crate) fn new_mobile_number() -> String {
    let mut rng = rand::thread_rng();
    let mut number = String::with_capacity(11);
    number.push('1');
    number.push(char::from(b'0' + rng.gen_range(3..=9u8)));
    for _ in 0..9 {
        number.push(char::from(b'0' + rng.gen_range(0..=9u8)));
    }
    number
}

/// Whether `number` could be a `purePhoneNumber`: 5 to 20 ASCII digits.
pub(crate) fn is_plausible_phone_number(number: &str) -> bool {
    (5..=20).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit())
}

fn new_id(namespace: &str) -> String {
    let digest = Sha1::digest(namespace.as_bytes());
    let mut id = String::with_capacity(ID_LEN);
    id.push('o');
    id.extend(digest.iter().take(PREFIX_LEN).map(|b| char::from(ID_ALPHABET[usize::from(b % 64)])));
    let mut rng = rand::thread_rng();
    while id.len() < ID_LEN {
        id.push(char::from(ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_wechat_ids() {
        let a = new_openid("wx_a");
        let b = new_openid("wx_a");
        let c = new_openid("wx_b");
        for id in [&a, &b, &c, &new_unionid()] {
            assert_eq!(id.len(), ID_LEN);
            assert!(id.starts_with('o'));
            assert!(id.bytes().all(|ch| ID_ALPHABET.contains(&ch)));
        }
        assert_ne!(a, b);
        assert_eq!(a[..6], b[..6], "one app, one prefix");
        assert_ne!(a[..6], c[..6], "another app, another prefix");
    }

    #[test]
    fn mobile_numbers_are_mainland_ones() {
        for _ in 0..200 {
            let number = new_mobile_number();
            assert_eq!(number.len(), 11, "{number}");
            assert!(number.starts_with('1'), "{number}");
            assert!((b'3'..=b'9').contains(&number.as_bytes()[1]), "{number}");
            assert!(is_plausible_phone_number(&number));
        }
        assert!(!is_plausible_phone_number(""));
        assert!(!is_plausible_phone_number("+86 13800138000"));
    }
}
