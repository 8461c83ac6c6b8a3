//! The mock's TLS test PKI (`src/pay/testdata/tls/`, public; how it was made is in the README
//! there): the CA the HTTPS mock ([`crate::start_tls`]) chains its server certificate to, and the
//! merchant API certificate the v2 payout APIs require of the client, as WeChat does.
//!
//! A client of an HTTPS mock trusts [`CA_CERT_PEM`] (linli: `WECHATPAY_ROOT_CA_PATH`) and, for v2
//! payouts, presents [`MERCHANT_CLIENT_PEM`] (linli: `WECHATPAY_CLIENT_CERT_PATH`). Never use any
//! of this for anything real.

/// The mock CA (self-signed): the only issuer of client certificates the mock accepts, and the
/// issuer of its server certificate.
pub const CA_CERT_PEM: &str = include_str!("testdata/tls/ca.pem");
/// The HTTPS mock's server certificate, for `127.0.0.1` and `localhost`, signed by the mock CA.
pub const SERVER_CERT_PEM: &str = include_str!("testdata/tls/server.pem");
/// The private key (PKCS#8) of [`SERVER_CERT_PEM`].
pub const SERVER_KEY_PEM: &str = include_str!("testdata/tls/server.key");
/// The merchant API certificate (`CN=`[`super::MCH_ID`], signed by the mock CA) followed by its
/// PKCS#8 key: `apiclient_cert.pem` and `apiclient_key.pem` concatenated, as linli reads them.
pub const MERCHANT_CLIENT_PEM: &str = include_str!("testdata/tls/merchant_client.pem");
/// A certificate with the merchant's subject signed by another CA, followed by its key: what a
/// merchant presenting a certificate WeChat did not issue looks like.
pub const FOREIGN_CLIENT_PEM: &str = include_str!("testdata/tls/foreign_client.pem");
