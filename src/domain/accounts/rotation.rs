//! `linli secrets rotate`: re-seals every secret of every app and merchant record under the first
//! key of `LINLI_SECRET_KEY`, in one transaction: all of them move, or none does. Run it with the
//! new key first and the old one after it (`new:…,old:…`) on every instance; once it has run, the
//! old key can be dropped.

use anyhow::Context;

use crate::db::accounts::{apps, merchants};
use crate::db::{Db, DbError};
use crate::domain::accounts::registry::{app_context, merchant_context};
use crate::sealing::SealingKeys;

/// What a rotation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rotated {
    /// Secrets re-sealed.
    pub secrets: usize,
    /// Of them, those that were under another key before.
    pub moved: usize,
}

fn reseal(
    keys: &SealingKeys,
    context: &str,
    sealed: Option<&str>,
    done: &mut Rotated,
) -> anyhow::Result<Option<String>> {
    let Some(sealed) = sealed else { return Ok(None) };
    let value = keys.open(context, sealed).with_context(|| format!("opening {context}"))?;
    done.secrets += 1;
    if SealingKeys::key_id_of(sealed) != Some(keys.current_id()) {
        done.moved += 1;
    }
    Ok(Some(keys.seal(context, value.expose())))
}

pub async fn rotate(db: &Db, keys: &SealingKeys) -> anyhow::Result<Rotated> {
    let mut done = Rotated::default();
    let mut tx = db.begin().await?;
    for app in apps::all(&mut *tx).await? {
        let ctx = |c: &str| app_context(&app.appid, c);
        let secret = reseal(keys, &ctx("secret"), Some(&app.secret_sealed), &mut done)?.unwrap_or_default();
        let token = reseal(keys, &ctx("token"), app.token_sealed.as_deref(), &mut done)?;
        let aes_key = reseal(keys, &ctx("aes_key"), app.aes_key_sealed.as_deref(), &mut done)?;
        apps::reseal(&mut tx, app.id, &secret, token.as_deref(), aes_key.as_deref()).await?;
    }
    for m in merchants::all(&mut *tx).await? {
        let ctx = |c: &str| merchant_context(&m.mch_id, c);
        let v2 = reseal(keys, &ctx("api_key_v2"), m.api_key_v2_sealed.as_deref(), &mut done)?;
        let v3 = reseal(keys, &ctx("api_v3_key"), m.api_v3_key_sealed.as_deref(), &mut done)?;
        let private = reseal(keys, &ctx("private_key"), m.private_key_sealed.as_deref(), &mut done)?;
        let client = reseal(keys, &ctx("client_cert"), m.client_cert_sealed.as_deref(), &mut done)?;
        let sealed = merchants::SealedKeys {
            api_key_v2: v2.as_deref(),
            api_v3_key: v3.as_deref(),
            private_key: private.as_deref(),
            client_cert: client.as_deref(),
        };
        merchants::reseal(&mut tx, m.id, sealed).await?;
    }
    tx.commit().await.map_err(DbError::from)?;
    Ok(done)
}
