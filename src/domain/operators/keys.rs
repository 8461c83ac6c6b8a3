//! Operators' API keys: issued (the secret shown once, only its hash stored), authenticated into
//! an [`Actor`], listed and revoked. Creating and revoking keys is audited.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::codes::ErrorCode;
use crate::db::operators::api_keys::{self, ApiKeyFilter, ApiKeyRow, NewApiKey};
use crate::db::{self, community::orgs, Db, Page, PageRequest};
use crate::domain::operators::access::{scope_of, Actor, Role};
use crate::domain::{operators::audit, required_text, DomainError, DomainResult};

/// A newly made key: the secret is shown once and only its hash is stored.
pub struct IssuedKey {
    pub secret: String,
    pub prefix: String,
    pub hash: String,
}

const KEY_PREFIX: &str = "lk_";

/// Makes a key: `lk_` and 64 hex digits of randomness (256 bits).
pub fn issue_key() -> IssuedKey {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    IssuedKey { prefix: secret[..KEY_PREFIX.len() + 8].to_owned(), hash: hash_key(&secret), secret }
}

/// A key's stored form. Keys carry 256 random bits, so a fast hash is enough: nobody can guess
/// their way through the key space, and lookups stay one index probe.
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The actor behind a key, or `None` when it is unknown, revoked or its org archived.
pub async fn authenticate(db: &Db, secret: &str, request_id: Option<String>) -> DomainResult<Option<Actor>> {
    // Reject obviously malformed keys without a query.
    if !secret.starts_with(KEY_PREFIX) || secret.len() != KEY_PREFIX.len() + 64 {
        return Ok(None);
    }
    let Some(key) = api_keys::find_active(db.reader(), &hash_key(secret)).await? else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&key.role) else {
        return Ok(None);
    };
    Ok(Some(Actor {
        key_id: Some(key.id),
        label: format!("key:{} ({})", key.prefix, key.name),
        org_id: key.org_id,
        org_path: key.org_path,
        role,
        request_id,
    }))
}

/// Creates a key for an org in the actor's subtree. Admins only.
pub async fn create_key(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    role: Role,
    name: &str,
) -> DomainResult<(ApiKeyRow, String)> {
    let name = required_text("name", name, 64)?;
    let mut tx = db.begin().await?;
    let org = orgs::get(&mut *tx, org_id).await?.filter(|o| actor.reaches(&o.path));
    let org = org.ok_or(DomainError::NotFound("org"))?;
    actor.require(Role::Admin)?;
    if org.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::OrgArchived, "the org is archived"));
    }
    let issued = issue_key();
    let row = api_keys::insert(
        &mut tx,
        &NewApiKey {
            org_id,
            role: role.as_str(),
            name: &name,
            prefix: &issued.prefix,
            key_hash: &issued.hash,
            created_by: actor.key_id,
        },
        db::now_ms(),
    )
    .await?;
    audit::record(&mut tx, actor, &org, "api_key.create", ("api_key", row.id), (None::<&ApiKeyRow>, Some(&row)))
        .await?;
    tx.commit().await.map_err(db::DbError::from)?;
    Ok((row, issued.secret))
}

pub async fn list_keys(
    db: &Db,
    actor: &Actor,
    org_id: Option<i64>,
    include_revoked: bool,
    page: PageRequest,
) -> DomainResult<Page<ApiKeyRow>> {
    let scope_path = scope_of(db, actor, org_id).await?;
    actor.require(Role::Admin)?;
    let filter = ApiKeyFilter { scope_path, org_id, include_revoked };
    Ok(api_keys::list(db.reader(), &filter, page).await?)
}

pub async fn revoke_key(db: &Db, actor: &Actor, key_id: i64) -> DomainResult<ApiKeyRow> {
    let mut tx = db.begin().await?;
    let key = api_keys::get(&mut *tx, key_id).await?.ok_or(DomainError::NotFound("api key"))?;
    let org = orgs::get(&mut *tx, key.org_id).await?.filter(|o| actor.reaches(&o.path));
    let org = org.ok_or(DomainError::NotFound("api key"))?;
    actor.require(Role::Admin)?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let row = api_keys::revoke(&mut tx, key_id, db::now_ms()).await?;
    audit::record(&mut tx, actor, &org, "api_key.revoke", ("api_key", key_id), (Some(&key), Some(&row))).await?;
    tx.commit().await.map_err(db::DbError::from)?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hashed() {
        let a = issue_key();
        let b = issue_key();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("lk_") && a.secret.len() == 67);
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(a.hash, hash_key(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.secret[3..]));
    }
}
