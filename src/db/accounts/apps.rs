//! `wechat_apps`: official accounts and mini-programs, each owned by an org.

use sqlx::{Any, Executor};

use crate::db::{subtree_pattern, DbResult, Page, PageRequest, Tx};

pub use crate::db::community::residents::AppKind;

stored_enum! {
    /// How an official account's pushes are protected (WeChat's 消息加解密方式).
    pub enum MessageMode ("message mode") {
        /// 明文模式.
        Plain = "plain",
        /// 兼容模式.
        Compat = "compat",
        /// 安全模式.
        Safe = "safe",
    }
}

/// An app as stored: the secrets sealed.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AppRow {
    pub id: i64,
    pub org_id: i64,
    pub kind: AppKind,
    pub appid: String,
    pub name: String,
    pub secret_sealed: String,
    pub token_sealed: Option<String>,
    pub aes_key_sealed: Option<String>,
    pub message_mode: Option<MessageMode>,
    pub task_template_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, org_id, kind, appid, name, secret_sealed, token_sealed, aes_key_sealed, message_mode, \
                       task_template_id, created_at, updated_at";

/// What an insert or an update writes (the appid and kind never change).
pub struct AppFields<'a> {
    pub name: &'a str,
    pub secret_sealed: &'a str,
    pub token_sealed: Option<&'a str>,
    pub aes_key_sealed: Option<&'a str>,
    pub message_mode: Option<MessageMode>,
    pub task_template_id: Option<&'a str>,
}

pub async fn insert(
    tx: &mut Tx,
    org_id: i64,
    kind: AppKind,
    appid: &str,
    f: &AppFields<'_>,
    now: i64,
) -> DbResult<AppRow> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO wechat_apps (org_id, kind, appid, name, secret_sealed, token_sealed, aes_key_sealed, \
         message_mode, task_template_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {COLUMNS}"
    ))
    .bind(org_id)
    .bind(kind)
    .bind(appid)
    .bind(f.name)
    .bind(f.secret_sealed)
    .bind(f.token_sealed)
    .bind(f.aes_key_sealed)
    .bind(f.message_mode)
    .bind(f.task_template_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn update(tx: &mut Tx, id: i64, f: &AppFields<'_>, now: i64) -> DbResult<AppRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE wechat_apps SET name = $1, secret_sealed = $2, token_sealed = $3, aes_key_sealed = $4, \
         message_mode = $5, task_template_id = $6, updated_at = $7 WHERE id = $8 RETURNING {COLUMNS}"
    ))
    .bind(f.name)
    .bind(f.secret_sealed)
    .bind(f.token_sealed)
    .bind(f.aes_key_sealed)
    .bind(f.message_mode)
    .bind(f.task_template_id)
    .bind(now)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// Re-seals one app's secrets (rotation): the values change, nothing else does.
pub async fn reseal(
    tx: &mut Tx,
    id: i64,
    secret_sealed: &str,
    token_sealed: Option<&str>,
    aes_key_sealed: Option<&str>,
) -> DbResult<()> {
    sqlx::query("UPDATE wechat_apps SET secret_sealed = $1, token_sealed = $2, aes_key_sealed = $3 WHERE id = $4")
        .bind(secret_sealed)
        .bind(token_sealed)
        .bind(aes_key_sealed)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn delete(tx: &mut Tx, id: i64) -> DbResult<()> {
    sqlx::query("DELETE FROM wechat_apps WHERE id = $1").bind(id).execute(&mut **tx).await?;
    Ok(())
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<AppRow>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM wechat_apps WHERE id = $1")).bind(id).fetch_optional(ex).await?)
}

/// Every app, for the registry and for rotation.
pub async fn all<'c, E: Executor<'c, Database = Any>>(ex: E) -> DbResult<Vec<AppRow>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM wechat_apps ORDER BY id")).fetch_all(ex).await?)
}

/// The apps of the orgs under `path` (optionally of one kind), newest first.
pub async fn list(
    pool: &sqlx::AnyPool,
    path: &str,
    kind: Option<AppKind>,
    page: PageRequest,
) -> DbResult<Page<AppRow>> {
    let filter =
        "FROM wechat_apps a JOIN orgs o ON o.id = a.org_id WHERE o.path LIKE $1 AND ($2 IS NULL OR a.kind = $2)";
    let columns = COLUMNS.split(", ").map(|c| format!("a.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let items = sqlx::query_as(&format!("SELECT {columns} {filter} ORDER BY a.id DESC LIMIT $3 OFFSET $4"))
        .bind(subtree_pattern(path))
        .bind(kind)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(pool)
        .await?;
    let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) {filter}"))
        .bind(subtree_pattern(path))
        .bind(kind)
        .fetch_one(pool)
        .await?;
    Ok(Page { items, total })
}
