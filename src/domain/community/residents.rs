//! Residents: one person, keyed by WeChat unionid where known, with an identity (openid) per app.

use rand::Rng;

use crate::db::community::residents::{self as store, IdentityRow, ResidentRow};
use crate::db::{DbError, Tx};
use crate::domain::DomainResult;

pub use crate::db::community::residents::AppKind;

/// Whether the resident follows the official account now, from their WeChat identities: the one
/// rule every follower audience (coupons, red packets, tasks) applies.
/// Whether the resident follows the official account `appid` now (any official account when
/// none is named: a deployment without one anywhere).
pub fn follows_account(identities: &[IdentityRow], appid: Option<&str>) -> bool {
    identities.iter().any(|i| i.app_kind == AppKind::Oa && i.subscribed && appid.is_none_or(|a| a == i.appid))
}

/// Invite codes avoid letters and digits people confuse (0/O, 1/I/L).
const INVITE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

fn new_invite_code() -> String {
    let mut rng = rand::thread_rng();
    (0..8).map(|_| INVITE_ALPHABET[rng.gen_range(0..INVITE_ALPHABET.len())] as char).collect()
}

/// The prefix of an invitation scene (`inv_<invite code>`), as carried by parametric QR codes and
/// mini-program links.
pub const INVITE_SCENE_PREFIX: &str = "inv_";

/// The invite code an invitation scene carries, if it is one.
pub fn invite_code_of_scene(scene: &str) -> Option<&str> {
    let code = scene.strip_prefix(INVITE_SCENE_PREFIX)?;
    let ok = code.len() == 8 && code.bytes().all(|b| INVITE_ALPHABET.contains(&b));
    ok.then_some(code)
}

/// A resident found (or made) for an identity.
#[derive(Clone, Debug)]
pub struct Found {
    pub resident: ResidentRow,
    pub identity: IdentityRow,
    /// The resident did not exist before this call.
    pub created: bool,
}

/// Finds the resident behind `(appid, openid)`, or creates one: attached to the person with the
/// same unionid when WeChat gave one, otherwise new. Safe under concurrency: the unique keys on
/// identities and unionids decide, and a loser adopts the winner's rows.
pub async fn find_or_create(
    tx: &mut Tx,
    kind: AppKind,
    appid: &str,
    openid: &str,
    unionid: Option<&str>,
    now: i64,
) -> DomainResult<Found> {
    if let Some(identity) = store::identity(&mut **tx, appid, openid).await? {
        let resident = store::get(&mut **tx, identity.resident_id).await?.ok_or(DbError::ForeignKeyViolation)?;
        if let (Some(u), None) = (unionid, resident.unionid.as_deref()) {
            // Learnt later (e.g. the OA was bound to the Open Platform after this resident came):
            // keep it unless another resident already has it.
            if store::by_unionid(tx, u).await?.is_none() {
                store::set_unionid(tx, resident.id, u, now).await?;
            }
        }
        let resident = store::get(&mut **tx, identity.resident_id).await?.ok_or(DbError::ForeignKeyViolation)?;
        return Ok(Found { resident, identity, created: false });
    }
    let (resident, created) = match unionid {
        Some(u) => match store::by_unionid(tx, u).await? {
            Some(r) => (r, false),
            None => insert_resident(tx, Some(u), now).await?,
        },
        None => insert_resident(tx, None, now).await?,
    };
    match store::insert_identity(tx, resident.id, kind, appid, openid, now).await? {
        Some(identity) => Ok(Found { resident, identity, created }),
        None => {
            // Another request made this identity meanwhile: use its resident.
            let identity = store::identity(&mut **tx, appid, openid).await?.ok_or(DbError::ForeignKeyViolation)?;
            if created {
                sqlx::query("DELETE FROM residents WHERE id = $1")
                    .bind(resident.id)
                    .execute(&mut **tx)
                    .await
                    .map_err(DbError::from)?;
            }
            let resident = store::get(&mut **tx, identity.resident_id).await?.ok_or(DbError::ForeignKeyViolation)?;
            Ok(Found { resident, identity, created: false })
        }
    }
}

/// A new resident, or the one that took the unionid meanwhile (`false`).
async fn insert_resident(tx: &mut Tx, unionid: Option<&str>, now: i64) -> DomainResult<(ResidentRow, bool)> {
    for _ in 0..5 {
        if let Some(r) = store::insert(tx, unionid, &new_invite_code(), now).await? {
            return Ok((r, true));
        }
        // Either the unionid arrived meanwhile (adopt that resident) or, rarely, the random
        // invite code collided (draw another).
        if let Some(u) = unionid {
            if let Some(r) = store::by_unionid(tx, u).await? {
                return Ok((r, false));
            }
        }
    }
    Err(DbError::UniqueViolation.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_scenes_round_trip() {
        let code = new_invite_code();
        assert_eq!(code.len(), 8);
        let scene = format!("{INVITE_SCENE_PREFIX}{code}");
        assert_eq!(invite_code_of_scene(&scene), Some(code.as_str()));
        assert_eq!(invite_code_of_scene("inv_short"), None);
        assert_eq!(invite_code_of_scene("inv_ABCDEFG0"), None);
        assert_eq!(invite_code_of_scene("ABCDEFGH"), None);
    }
}
