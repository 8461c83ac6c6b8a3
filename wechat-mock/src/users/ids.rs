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

/// A fresh unionid (one Open Platform account in the mock).
pub(crate) fn new_unionid() -> String {
    new_id("open-platform")
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
}
