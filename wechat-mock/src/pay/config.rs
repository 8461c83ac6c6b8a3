//! The merchants the mock's WeChat Pay knows, their keys, and the limits they enforce: the default
//! merchant ([`MCH_ID`], [`PayConfig::default`]) and a second one with keys of its own
//! ([`SECOND_MCH_ID`], [`PayConfig::second`]), for tests where several companies pay through
//! several merchants. All the keys here are public test keys (`testdata/`, see its README).

/// Merchant id (商户号) of the default merchant.
pub const MCH_ID: &str = "1900000109";
/// The default merchant's APIv2 key (32 characters), for MD5 / HMAC-SHA256 signatures.
pub const API_KEY_V2: &str = "LinliMockPayApiV2Key0123456789ab";
/// The default merchant's APIv3 key (32 bytes), the AES-256-GCM key of notifications.
pub const API_V3_KEY: &str = "LinliMockPayApiV3Key0123456789ab";
/// Serial number of the default merchant's API certificate (`serial_no` of v3 requests).
pub const MERCHANT_CERT_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
/// The default merchant's RSA private key (PKCS#8 PEM): a test key, published here so that tests
/// and linli can sign v3 requests as the merchant. Never use it for anything real.
pub const MERCHANT_PRIVATE_KEY_PEM: &str = include_str!("testdata/merchant_private_key.pem");
/// The public half of [`MERCHANT_PRIVATE_KEY_PEM`] (SPKI PEM): what WeChat holds from the merchant
/// API certificate and verifies v3 request signatures with.
pub const MERCHANT_PUBLIC_KEY_PEM: &str = include_str!("testdata/merchant_public_key.pem");
/// Id of the mock's "WeChat Pay public key" (微信支付公钥), sent as `Wechatpay-Serial`.
pub const WECHATPAY_PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0119000001092025010100000000000001";
/// The mock's WeChat Pay private key (PKCS#8 PEM), which signs its v3 answers and notifications.
pub const WECHATPAY_PRIVATE_KEY_PEM: &str = include_str!("testdata/wechatpay_private_key.pem");
/// The mock's WeChat Pay public key (SPKI PEM), for clients to verify answers and notifications.
pub const WECHATPAY_PUBLIC_KEY_PEM: &str = include_str!("testdata/wechatpay_public_key.pem");

/// Serial number (upper-case hex) of the mock's platform certificate (平台证书).
pub const PLATFORM_CERT_SERIAL: &str = "4B1C9D7E2F3A5B6C8D0E1F2A3B4C5D6E7F8091A2";
/// The mock's platform certificate (self-signed X.509 PEM, valid 2025-01-01 to 2125-01-01 UTC), what
/// `GET /v3/certificates` hands out sealed under the APIv3 key.
pub const PLATFORM_CERT_PEM: &str = include_str!("testdata/platform_certificate.pem");
/// The private key (PKCS#8 PEM) of [`PLATFORM_CERT_PEM`], which signs answers and notifications
/// when the mock plays a merchant with platform certificates.
pub const PLATFORM_PRIVATE_KEY_PEM: &str = include_str!("testdata/platform_private_key.pem");

/// Merchant id (商户号) of the second test merchant ([`PayConfig::second`]).
pub const SECOND_MCH_ID: &str = "1900000110";
/// The second merchant's APIv2 key (32 characters), unlike the default merchant's.
pub const SECOND_API_KEY_V2: &str = "LinliMockPay2ndV2Key9876543210cd";
/// The second merchant's APIv3 key (32 bytes), unlike the default merchant's.
pub const SECOND_API_V3_KEY: &str = "LinliMockPay2ndV3Key9876543210cd";
/// Serial number of the second merchant's API certificate.
pub const SECOND_MERCHANT_CERT_SERIAL: &str = "3A7F1C2E9B04D5E6F708192A3B4C5D6E7F8091B3";
/// The second merchant's RSA private key (PKCS#8 PEM): a public test key, like
/// [`MERCHANT_PRIVATE_KEY_PEM`]. Never use it for anything real.
pub const SECOND_MERCHANT_PRIVATE_KEY_PEM: &str = include_str!("testdata/second_merchant_private_key.pem");
/// The public half of [`SECOND_MERCHANT_PRIVATE_KEY_PEM`] (SPKI PEM).
pub const SECOND_MERCHANT_PUBLIC_KEY_PEM: &str = include_str!("testdata/second_merchant_public_key.pem");
/// Id of the second merchant's WeChat Pay public key, sent as `Wechatpay-Serial` in its answers.
pub const SECOND_WECHATPAY_PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0119000001102025010100000000000001";
/// The WeChat Pay private key (PKCS#8 PEM) that signs the second merchant's answers and
/// notifications (a public test key).
pub const SECOND_WECHATPAY_PRIVATE_KEY_PEM: &str = include_str!("testdata/second_wechatpay_private_key.pem");
/// The second merchant's WeChat Pay public key (SPKI PEM).
pub const SECOND_WECHATPAY_PUBLIC_KEY_PEM: &str = include_str!("testdata/second_wechatpay_public_key.pem");
/// Serial number of the second merchant's platform certificate.
pub const SECOND_PLATFORM_CERT_SERIAL: &str = "6D2E0A8F4B5C7D9E1F203A4B5C6D7E8F9012A3B4";
/// The second merchant's platform certificate (self-signed X.509 PEM, valid 2025-01-01 to
/// 2125-01-01 UTC).
pub const SECOND_PLATFORM_CERT_PEM: &str = include_str!("testdata/second_platform_certificate.pem");
/// The private key (PKCS#8 PEM) of [`SECOND_PLATFORM_CERT_PEM`] (a public test key).
pub const SECOND_PLATFORM_PRIVATE_KEY_PEM: &str = include_str!("testdata/second_platform_private_key.pem");

/// Which key the mock's WeChat Pay signs v3 answers and notifications with: what kind of merchant
/// it plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PaySigning {
    /// A merchant with the WeChat Pay public key (微信支付公钥) only, as every merchant since late
    /// 2024: answers and notifications carry `Wechatpay-Serial: PUB_KEY_ID_…`, and
    /// `GET /v3/certificates` answers 404 (no platform certificate).
    #[default]
    PublicKey,
    /// A merchant with platform certificates only: everything is signed with the newest valid
    /// platform certificate, whatever the request's `Wechatpay-Serial` says.
    PlatformCertificate,
    /// A merchant migrating from platform certificates to the public key: an answer is signed with
    /// the key the request's `Wechatpay-Serial` names (public key id or certificate serial), and
    /// with the newest platform certificate when it names none; notifications, which answer no
    /// request, are signed with the newest platform certificate.
    Migration,
}

impl PaySigning {
    /// `public_key`, `platform_certificate` or `migration`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "public_key" => Some(Self::PublicKey),
            "platform_certificate" => Some(Self::PlatformCertificate),
            "migration" => Some(Self::Migration),
            _ => None,
        }
    }

    /// The name [`Self::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublicKey => "public_key",
            Self::PlatformCertificate => "platform_certificate",
            Self::Migration => "migration",
        }
    }
}

/// One platform certificate of the merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformCertificate {
    /// `serial_no` (upper-case hex), the certificate's serial number.
    pub serial_no: String,
    /// The X.509 certificate (PEM).
    pub certificate_pem: String,
    /// Its private key (PKCS#8 PEM).
    pub private_key_pem: String,
    /// `effective_time`, Unix seconds.
    pub effective_at: i64,
    /// `expire_time`, Unix seconds: no longer listed nor used from then on (mock clock).
    pub expire_at: i64,
}

impl PlatformCertificate {
    /// The mock's own platform certificate ([`PLATFORM_CERT_PEM`]).
    pub fn mock_default() -> Self {
        Self {
            serial_no: PLATFORM_CERT_SERIAL.to_owned(),
            certificate_pem: PLATFORM_CERT_PEM.to_owned(),
            private_key_pem: PLATFORM_PRIVATE_KEY_PEM.to_owned(),
            effective_at: 1_735_689_600,
            expire_at: 4_891_363_200,
        }
    }

    /// The second merchant's platform certificate ([`SECOND_PLATFORM_CERT_PEM`]).
    pub fn second() -> Self {
        Self {
            serial_no: SECOND_PLATFORM_CERT_SERIAL.to_owned(),
            certificate_pem: SECOND_PLATFORM_CERT_PEM.to_owned(),
            private_key_pem: SECOND_PLATFORM_PRIVATE_KEY_PEM.to_owned(),
            ..Self::mock_default()
        }
    }
}

/// Limits WeChat Pay enforces; defaults are WeChat's documented defaults (protocols notes §4–5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayLimits {
    /// Smallest red packet without `scene_id`, fen (WeChat: 1 yuan).
    pub redpack_min_fen: i64,
    /// Largest red packet without `scene_id`, fen (WeChat: 200 yuan).
    pub redpack_max_fen: i64,
    /// Smallest red packet with a `scene_id`, fen (WeChat: 0.3 yuan is the floor of the product
    /// scenes; the mock uses 0.3 yuan).
    pub redpack_scene_min_fen: i64,
    /// Largest red packet with a `scene_id`, fen (WeChat: 4999 yuan per packet).
    pub redpack_scene_max_fen: i64,
    /// Red packets per user per (Beijing) day (WeChat default: 10) → `SENDNUM_LIMIT`.
    pub redpack_daily_count_per_user: u32,
    /// Red-packet fen per user per day (WeChat default: 1000 yuan) → `MONEY_LIMIT`.
    pub redpack_daily_fen_per_user: i64,
    /// Smallest v2 enterprise payment / v3 transfer, fen (WeChat: 0.1 yuan) → `AMOUNT_LIMIT` /
    /// `PARAM_ERROR`.
    pub transfer_min_fen: i64,
    /// Largest v2 enterprise payment, fen (WeChat since 2023: 500 yuan) → `AMOUNT_LIMIT`.
    pub transfer_max_fen: i64,
    /// v2 enterprise payments per user per day (WeChat default: 10) → `SENDNUM_LIMIT`.
    pub transfer_daily_count_per_user: u32,
    /// v2 enterprise payment fen per user per day (WeChat 2018+: 5000 yuan) → `MONEY_LIMIT`.
    pub transfer_daily_fen_per_user: i64,
    /// v3 transfers at or above this amount need `user_name` (WeChat: 2000 yuan).
    pub transfer_user_name_from_fen: i64,
}

impl Default for PayLimits {
    fn default() -> Self {
        Self {
            redpack_min_fen: 100,
            redpack_max_fen: 20_000,
            redpack_scene_min_fen: 30,
            redpack_scene_max_fen: 499_900,
            redpack_daily_count_per_user: 10,
            redpack_daily_fen_per_user: 100_000,
            transfer_min_fen: 10,
            transfer_max_fen: 50_000,
            transfer_daily_count_per_user: 10,
            transfer_daily_fen_per_user: 500_000,
            transfer_user_name_from_fen: 200_000,
        }
    }
}

/// One merchant of the mock's WeChat Pay: its id, its keys, WeChat Pay's keys for it, its balance
/// and limits. [`crate::MockConfig::pay`] is the default merchant, [`crate::MockConfig::merchants`]
/// the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayConfig {
    /// Merchant id (`mch_id` / `mchid`).
    pub mch_id: String,
    /// APIv2 key (32 characters).
    pub api_key_v2: String,
    /// APIv3 key (32 bytes).
    pub api_v3_key: String,
    /// Serial of the merchant API certificate, expected as `serial_no` in v3 `Authorization`.
    pub merchant_cert_serial: String,
    /// The merchant's RSA public key (SPKI PEM) that v3 request signatures are checked with.
    pub merchant_public_key_pem: String,
    /// `PUB_KEY_ID_…` of the mock's WeChat Pay key, sent as `Wechatpay-Serial`.
    pub wechatpay_public_key_id: String,
    /// The mock's WeChat Pay private key (PKCS#8 PEM) that signs answers and notifications.
    pub wechatpay_private_key_pem: String,
    /// Which key signs answers and notifications (changeable at run time:
    /// [`crate::MockWechat::set_pay_signing`]).
    pub signing: PaySigning,
    /// The merchant's platform certificates, listed by `GET /v3/certificates` unless `signing` is
    /// [`PaySigning::PublicKey`].
    pub platform_certificates: Vec<PlatformCertificate>,
    /// The merchant's available balance in fen at start (and after a reset).
    pub balance_fen: i64,
    /// Limits enforced.
    pub limits: PayLimits,
    /// Where v3 transfer notifications go when the request names no `notify_url`.
    pub notify_url: Option<String>,
}

impl Default for PayConfig {
    /// The default merchant with the embedded test keys and 100 000 yuan of balance.
    fn default() -> Self {
        Self {
            mch_id: MCH_ID.to_owned(),
            api_key_v2: API_KEY_V2.to_owned(),
            api_v3_key: API_V3_KEY.to_owned(),
            merchant_cert_serial: MERCHANT_CERT_SERIAL.to_owned(),
            merchant_public_key_pem: MERCHANT_PUBLIC_KEY_PEM.to_owned(),
            wechatpay_public_key_id: WECHATPAY_PUBLIC_KEY_ID.to_owned(),
            wechatpay_private_key_pem: WECHATPAY_PRIVATE_KEY_PEM.to_owned(),
            signing: PaySigning::default(),
            platform_certificates: vec![PlatformCertificate::mock_default()],
            balance_fen: 10_000_000,
            limits: PayLimits::default(),
            notify_url: None,
        }
    }
}

impl PayConfig {
    /// The second test merchant, [`SECOND_MCH_ID`]: like the default one (balance, limits, signing
    /// with the WeChat Pay public key) but with keys of its own: APIv2 and APIv3 keys, merchant key
    /// pair and certificate serial, WeChat Pay public key and platform certificate.
    pub fn second() -> Self {
        Self {
            mch_id: SECOND_MCH_ID.to_owned(),
            api_key_v2: SECOND_API_KEY_V2.to_owned(),
            api_v3_key: SECOND_API_V3_KEY.to_owned(),
            merchant_cert_serial: SECOND_MERCHANT_CERT_SERIAL.to_owned(),
            merchant_public_key_pem: SECOND_MERCHANT_PUBLIC_KEY_PEM.to_owned(),
            wechatpay_public_key_id: SECOND_WECHATPAY_PUBLIC_KEY_ID.to_owned(),
            wechatpay_private_key_pem: SECOND_WECHATPAY_PRIVATE_KEY_PEM.to_owned(),
            platform_certificates: vec![PlatformCertificate::second()],
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_merchant_shares_no_key_with_the_default_one() {
        let (a, b) = (PayConfig::default(), PayConfig::second());
        assert_eq!(b.api_key_v2.len(), 32);
        assert_eq!(b.api_v3_key.len(), 32);
        for (x, y) in [
            (&a.mch_id, &b.mch_id),
            (&a.api_key_v2, &b.api_key_v2),
            (&a.api_v3_key, &b.api_v3_key),
            (&a.merchant_cert_serial, &b.merchant_cert_serial),
            (&a.merchant_public_key_pem, &b.merchant_public_key_pem),
            (&a.wechatpay_public_key_id, &b.wechatpay_public_key_id),
            (&a.wechatpay_private_key_pem, &b.wechatpay_private_key_pem),
            (&a.platform_certificates[0].serial_no, &b.platform_certificates[0].serial_no),
            (&a.platform_certificates[0].private_key_pem, &b.platform_certificates[0].private_key_pem),
        ] {
            assert_ne!(x, y);
        }
        // Each published pair is a pair.
        for (private, public) in [
            (SECOND_MERCHANT_PRIVATE_KEY_PEM, SECOND_MERCHANT_PUBLIC_KEY_PEM),
            (SECOND_WECHATPAY_PRIVATE_KEY_PEM, SECOND_WECHATPAY_PUBLIC_KEY_PEM),
        ] {
            let signature = super::super::sign::rsa_sign(&super::super::sign::private_key(private).unwrap(), "m");
            assert!(super::super::sign::rsa_verify(&super::super::sign::public_key(public).unwrap(), "m", &signature));
        }
    }
}
