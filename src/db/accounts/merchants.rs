//! `pay_merchants`: WeChat Pay merchants, each owned by an org.

use sqlx::{Any, Executor};

use crate::db::{subtree_pattern, DbResult, Page, PageRequest, Tx};

stored_enum! {
    /// Which API pays transfers: v3 transfer-bills, or the legacy v2 enterprise payment.
    pub enum TransferApi ("transfer API") {
        V3 = "v3",
        V2 = "v2",
    }
}

stored_enum! {
    /// Which keys WeChat Pay's answers and notifications are verified with.
    pub enum VerifyKeys ("verification keys") {
        PublicKey = "public_key",
        PlatformCertificates = "platform_certificates",
        Both = "both",
    }
}

/// A merchant as stored: the secrets sealed.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MerchantRow {
    pub id: i64,
    pub org_id: i64,
    pub mch_id: String,
    pub name: String,
    pub api_key_v2_sealed: Option<String>,
    pub api_v3_key_sealed: Option<String>,
    pub private_key_sealed: Option<String>,
    pub cert_serial: Option<String>,
    pub public_key_id: Option<String>,
    pub public_key_pem: Option<String>,
    pub verify_with: Option<VerifyKeys>,
    pub client_cert_sealed: Option<String>,
    pub notify_url: Option<String>,
    pub transfer_scene_id: String,
    pub transfer_api: TransferApi,
    pub rate_per_sec: i64,
    #[sqlx(try_from = "crate::db::Flag")]
    pub platform_fallback: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, org_id, mch_id, name, api_key_v2_sealed, api_v3_key_sealed, private_key_sealed, \
                       cert_serial, public_key_id, public_key_pem, verify_with, client_cert_sealed, notify_url, \
                       transfer_scene_id, transfer_api, rate_per_sec, platform_fallback, created_at, updated_at";

/// The sealed secrets of a merchant.
#[derive(Clone, Copy, Debug, Default)]
pub struct SealedKeys<'a> {
    pub api_key_v2: Option<&'a str>,
    pub api_v3_key: Option<&'a str>,
    pub private_key: Option<&'a str>,
    pub client_cert: Option<&'a str>,
}

/// What an insert or an update writes (the mch_id never changes).
pub struct MerchantFields<'a> {
    pub name: &'a str,
    pub sealed: SealedKeys<'a>,
    pub cert_serial: Option<&'a str>,
    pub public_key_id: Option<&'a str>,
    pub public_key_pem: Option<&'a str>,
    pub verify_with: Option<VerifyKeys>,
    pub notify_url: Option<&'a str>,
    pub transfer_scene_id: &'a str,
    pub transfer_api: TransferApi,
    pub rate_per_sec: i64,
    pub platform_fallback: bool,
}

pub async fn insert(tx: &mut Tx, org_id: i64, mch_id: &str, f: &MerchantFields<'_>, now: i64) -> DbResult<MerchantRow> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO pay_merchants (org_id, mch_id, name, api_key_v2_sealed, api_v3_key_sealed, private_key_sealed, \
         cert_serial, public_key_id, public_key_pem, verify_with, client_cert_sealed, notify_url, transfer_scene_id, \
         transfer_api, rate_per_sec, platform_fallback, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) RETURNING {COLUMNS}"
    ))
    .bind(org_id)
    .bind(mch_id)
    .bind(f.name)
    .bind(f.sealed.api_key_v2)
    .bind(f.sealed.api_v3_key)
    .bind(f.sealed.private_key)
    .bind(f.cert_serial)
    .bind(f.public_key_id)
    .bind(f.public_key_pem)
    .bind(f.verify_with)
    .bind(f.sealed.client_cert)
    .bind(f.notify_url)
    .bind(f.transfer_scene_id)
    .bind(f.transfer_api)
    .bind(f.rate_per_sec)
    .bind(i64::from(f.platform_fallback))
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn update(tx: &mut Tx, id: i64, f: &MerchantFields<'_>, now: i64) -> DbResult<MerchantRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE pay_merchants SET name = $1, api_key_v2_sealed = $2, api_v3_key_sealed = $3, private_key_sealed = $4, \
         cert_serial = $5, public_key_id = $6, public_key_pem = $7, verify_with = $8, client_cert_sealed = $9, \
         notify_url = $10, transfer_scene_id = $11, transfer_api = $12, rate_per_sec = $13, platform_fallback = $14, \
         updated_at = $15 WHERE id = $16 RETURNING {COLUMNS}"
    ))
    .bind(f.name)
    .bind(f.sealed.api_key_v2)
    .bind(f.sealed.api_v3_key)
    .bind(f.sealed.private_key)
    .bind(f.cert_serial)
    .bind(f.public_key_id)
    .bind(f.public_key_pem)
    .bind(f.verify_with)
    .bind(f.sealed.client_cert)
    .bind(f.notify_url)
    .bind(f.transfer_scene_id)
    .bind(f.transfer_api)
    .bind(f.rate_per_sec)
    .bind(i64::from(f.platform_fallback))
    .bind(now)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// Re-seals one merchant's secrets (rotation).
pub async fn reseal(tx: &mut Tx, id: i64, sealed: SealedKeys<'_>) -> DbResult<()> {
    sqlx::query(
        "UPDATE pay_merchants SET api_key_v2_sealed = $1, api_v3_key_sealed = $2, private_key_sealed = $3, \
         client_cert_sealed = $4 WHERE id = $5",
    )
    .bind(sealed.api_key_v2)
    .bind(sealed.api_v3_key)
    .bind(sealed.private_key)
    .bind(sealed.client_cert)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn delete(tx: &mut Tx, id: i64) -> DbResult<()> {
    sqlx::query("DELETE FROM pay_merchants WHERE id = $1").bind(id).execute(&mut **tx).await?;
    Ok(())
}

/// Payouts still open on a merchant: it cannot go while WeChat may still answer about them.
pub async fn open_payouts(tx: &mut Tx, mch_id: &str) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM payouts WHERE mch_id = $1 AND state IN ('pending', 'submitted', 'unknown', \
         'awaiting_confirmation')",
    )
    .bind(mch_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n)
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<MerchantRow>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM pay_merchants WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?)
}

/// Every merchant, for the registry and for rotation.
pub async fn all<'c, E: Executor<'c, Database = Any>>(ex: E) -> DbResult<Vec<MerchantRow>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM pay_merchants ORDER BY id")).fetch_all(ex).await?)
}

/// The merchants of the orgs under `path`, newest first.
pub async fn list(pool: &sqlx::AnyPool, path: &str, page: PageRequest) -> DbResult<Page<MerchantRow>> {
    let filter = "FROM pay_merchants m JOIN orgs o ON o.id = m.org_id WHERE o.path LIKE $1";
    let columns = COLUMNS.split(", ").map(|c| format!("m.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let items = sqlx::query_as(&format!("SELECT {columns} {filter} ORDER BY m.id DESC LIMIT $2 OFFSET $3"))
        .bind(subtree_pattern(path))
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(pool)
        .await?;
    let (total,): (i64,) =
        sqlx::query_as(&format!("SELECT COUNT(*) {filter}")).bind(subtree_pattern(path)).fetch_one(pool).await?;
    Ok(Page { items, total })
}
