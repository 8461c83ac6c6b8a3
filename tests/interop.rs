//! Two independent implementations of the OA safe-mode protocol — linli's (`linli::wechat::oa`)
//! and wechat-mock's (`wechat_mock::callback`) — must understand each other both ways, for any
//! message, key and appid.

use linli::wechat::oa::crypto::{signature, MsgCrypt};
use proptest::prelude::*;
use wechat_mock::callback::crypto::{decrypt_for, encrypt, AesKey};
use wechat_mock::callback::signature::msg_signature;

/// 43 characters of the base64 alphabet whose last one carries no stray bits, as WeChat makes them.
fn encoding_aes_key() -> impl Strategy<Value = String> {
    (proptest::collection::vec(0usize..64, 42), 0usize..4).prop_map(|(body, last)| {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut key: String = body.into_iter().map(|i| B64[i] as char).collect();
        key.push(B64[last * 16] as char);
        key
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn what_one_encrypts_the_other_decrypts(
        key in encoding_aes_key(),
        appid in "wx[0-9a-f]{16}",
        message in "\\PC{0,400}",
    ) {
        let ours = MsgCrypt::new(&key, &appid).unwrap();
        let theirs = AesKey::from_encoding_aes_key(&key).unwrap();
        // mock → linli (a push)
        let pushed = encrypt(&theirs, &appid, &message);
        prop_assert_eq!(ours.decrypt(&pushed).unwrap(), message.clone());
        // linli → mock (a reply)
        let replied = ours.encrypt(&message);
        prop_assert_eq!(decrypt_for(&theirs, &appid, &replied).unwrap(), message.clone());
        // Both sign alike.
        prop_assert_eq!(signature(&["token", "1715943329", "42", &replied]), msg_signature("token", "1715943329", "42", &replied));
        // Neither accepts the other's ciphertext for another app.
        prop_assert!(decrypt_for(&theirs, "wx_other_app", &replied).is_err());
        let foreign = MsgCrypt::new(&key, "wx_other_app").unwrap();
        prop_assert!(foreign.decrypt(&pushed).is_err());
    }
}
