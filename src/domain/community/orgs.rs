//! The org tree: platform → property company → community; merchants under a community or a
//! company. An org is archived rather than deleted, since campaigns, ledgers and the audit log
//! keep pointing at it; an archived org's keys stop working.

use crate::codes::ErrorCode;
use crate::db::community::orgs::{self as store, OrgFields, OrgFilter, OrgRow};
use crate::db::{self, Db, DbError, Page, PageRequest};
use crate::domain::operators::access::{scope_of, Actor, Role};
use crate::domain::{not_found_as, operators::audit, optional_text, required_text, DomainError, DomainResult};

pub use crate::db::community::orgs::OrgKind;

impl OrgKind {
    /// The kinds an org of this kind may hang under.
    pub fn allowed_parents(self) -> &'static [OrgKind] {
        match self {
            OrgKind::Platform => &[],
            OrgKind::Company => &[OrgKind::Platform],
            OrgKind::Community => &[OrgKind::Company],
            OrgKind::Merchant => &[OrgKind::Community, OrgKind::Company],
        }
    }
}

/// What an org is created with.
#[derive(Clone, Debug)]
pub struct NewOrg {
    pub parent_id: i64,
    pub kind: OrgKind,
    pub name: String,
    pub address: Option<String>,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
}

/// A partial edit: `None` keeps a field; `Some(None)` clears an optional one.
#[derive(Clone, Debug, Default)]
pub struct OrgPatch {
    pub name: Option<String>,
    pub address: Option<Option<String>>,
    pub contact_name: Option<Option<String>>,
    pub contact_phone: Option<Option<String>>,
}

fn validated(
    name: &str,
    address: Option<&str>,
    contact_name: Option<&str>,
    contact_phone: Option<&str>,
) -> DomainResult<OrgFields> {
    Ok(OrgFields {
        name: required_text("name", name, 64)?,
        address: optional_text("address", address, 200)?,
        contact_name: optional_text("contact_name", contact_name, 32)?,
        contact_phone: optional_text("contact_phone", contact_phone, 20)?,
    })
}

fn name_taken(name: &str) -> DomainError {
    DomainError::conflict(
        ErrorCode::OrgNameTaken,
        format!("an active org named {name:?} already exists under this parent"),
    )
}

/// Loads an org the actor reaches, or answers not found.
async fn load<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(ex: E, actor: &Actor, id: i64) -> DomainResult<OrgRow> {
    store::get(ex, id).await?.filter(|o| actor.reaches(&o.path)).ok_or(DomainError::NotFound("org"))
}

pub async fn create(db: &Db, actor: &Actor, new: NewOrg) -> DomainResult<OrgRow> {
    let fields =
        validated(&new.name, new.address.as_deref(), new.contact_name.as_deref(), new.contact_phone.as_deref())?;
    let mut tx = db.begin().await?;
    let parent = load(&mut *tx, actor, new.parent_id).await?;
    actor.require(Role::Admin)?;
    let parent_kind = parent.kind;
    if !new.kind.allowed_parents().contains(&parent_kind) {
        return Err(DomainError::invalid(
            ErrorCode::InvalidParent,
            format!("a {} cannot be placed under a {}", new.kind.as_str(), parent_kind.as_str()),
        ));
    }
    if parent.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::OrgArchived, "the parent org is archived"));
    }
    let org = match store::insert(&mut tx, &parent, new.kind, &fields, db::now_ms()).await {
        Err(DbError::UniqueViolation) => return Err(name_taken(&fields.name)),
        other => other?,
    };
    audit::record(&mut tx, actor, &org, "org.create", ("org", org.id), (None::<&OrgRow>, Some(&org))).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(org)
}

pub async fn get(db: &Db, actor: &Actor, id: i64) -> DomainResult<OrgRow> {
    load(db.reader(), actor, id).await
}

/// Lists orgs in the actor's subtree; `filter.scope_path` is set here.
pub async fn list(db: &Db, actor: &Actor, mut filter: OrgFilter, page: PageRequest) -> DomainResult<Page<OrgRow>> {
    if let Some(parent) = filter.parent_id {
        // Naming a parent outside the subtree is "not found", like any other id.
        scope_of(db, actor, Some(parent)).await?;
    }
    filter.scope_path = actor.org_path.clone();
    Ok(store::list(db.reader(), &filter, page).await?)
}

pub async fn update(db: &Db, actor: &Actor, id: i64, patch: OrgPatch) -> DomainResult<OrgRow> {
    let mut tx = db.begin().await?;
    let before = load(&mut *tx, actor, id).await?;
    actor.require(Role::Admin)?;
    if before.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::OrgArchived, "the org is archived"));
    }
    let merged = |p: Option<Option<String>>, cur: &Option<String>| p.unwrap_or_else(|| cur.clone());
    let address = merged(patch.address, &before.address);
    let contact_name = merged(patch.contact_name, &before.contact_name);
    let contact_phone = merged(patch.contact_phone, &before.contact_phone);
    let fields = validated(
        patch.name.as_deref().unwrap_or(&before.name),
        address.as_deref(),
        contact_name.as_deref(),
        contact_phone.as_deref(),
    )?;
    let after = match store::update(&mut tx, id, &fields, db::now_ms()).await {
        Err(DbError::UniqueViolation) => return Err(name_taken(&fields.name)),
        other => other?,
    };
    audit::record(&mut tx, actor, &after, "org.update", ("org", id), (Some(&before), Some(&after))).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

/// Archives an org. Refused for the platform, for the actor's own org (it would lock the actor
/// out), and while active orgs remain below it. Archiving twice answers the archived org.
pub async fn archive(db: &Db, actor: &Actor, id: i64) -> DomainResult<OrgRow> {
    let mut tx = db.begin().await?;
    let before = load(&mut *tx, actor, id).await?;
    actor.require(Role::Admin)?;
    if before.archived_at.is_some() {
        return Ok(before);
    }
    if before.kind == OrgKind::Platform {
        return Err(DomainError::invalid(ErrorCode::CannotArchive, "the platform cannot be archived"));
    }
    if before.id == actor.org_id {
        return Err(DomainError::invalid(ErrorCode::CannotArchive, "a key cannot archive its own org"));
    }
    let children = store::count_active_children(&mut tx, id).await?;
    if children > 0 {
        return Err(DomainError::conflict(
            ErrorCode::OrgHasChildren,
            format!("the org still has {children} active orgs below it; archive them first"),
        ));
    }
    let after = store::archive(&mut tx, id, db::now_ms()).await?;
    audit::record(&mut tx, actor, &after, "org.archive", ("org", id), (Some(&before), Some(&after))).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

/// Loads a community the actor reaches, for the modules that hang things under one.
pub(crate) async fn load_community<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
    ex: E,
    actor: &Actor,
    id: i64,
) -> DomainResult<OrgRow> {
    let org = load(ex, actor, id).await.map_err(not_found_as("community"))?;
    if org.kind != OrgKind::Community {
        return Err(DomainError::NotFound("community"));
    }
    Ok(org)
}

/// The property company an org belongs to: itself, or the org just under the platform on its path.
pub fn company_of(org: &OrgRow) -> Option<i64> {
    company_of_path(&org.path)
}

/// [`company_of`] for an org known by its path: the id just under the platform (none for the
/// platform itself).
pub fn company_of_path(path: &str) -> Option<i64> {
    path.split('/').filter(|s| !s.is_empty()).nth(1).and_then(|s| s.parse().ok())
}

/// The org that owns a campaign or task: in the actor's reach, a property company or a community,
/// not archived. Answers it with its company's id. `what` names the thing in the refusal.
pub(crate) async fn funding_owner(
    tx: &mut crate::db::Tx,
    actor: &crate::domain::operators::access::Actor,
    owner_org_id: i64,
    what: &str,
) -> crate::domain::DomainResult<(crate::db::community::orgs::OrgRow, i64)> {
    use crate::domain::DomainError;
    let owner = crate::db::community::orgs::get(&mut **tx, owner_org_id)
        .await?
        .filter(|o| actor.reaches(&o.path))
        .ok_or(DomainError::NotFound("org"))?;
    let company = company_of(&owner)
        .filter(|_| owner.kind == OrgKind::Company || owner.kind == OrgKind::Community)
        .ok_or_else(|| {
            DomainError::invalid(
                ErrorCode::InvalidOwner,
                format!("{what} are owned by a property company or a community"),
            )
        })?;
    if owner.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::OrgArchived, "the owner org is archived"));
    }
    Ok((owner, company))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_shape_is_enforced() {
        assert_eq!(OrgKind::Company.allowed_parents(), &[OrgKind::Platform]);
        assert_eq!(OrgKind::Community.allowed_parents(), &[OrgKind::Company]);
        assert!(OrgKind::Merchant.allowed_parents().contains(&OrgKind::Community));
        assert!(OrgKind::Merchant.allowed_parents().contains(&OrgKind::Company));
        assert!(OrgKind::Platform.allowed_parents().is_empty());
        for k in ["platform", "company", "community", "merchant"] {
            assert_eq!(OrgKind::parse(k).unwrap().as_str(), k);
        }
        assert!(OrgKind::parse("Company").is_none());
    }

    #[test]
    fn the_company_is_the_org_under_the_platform() {
        let org = |path: &str| OrgRow {
            id: 0,
            parent_id: None,
            kind: OrgKind::Merchant,
            name: String::new(),
            path: path.into(),
            address: None,
            contact_name: None,
            contact_phone: None,
            archived_at: None,
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(company_of(&org("/1/2/5/9/")), Some(2));
        assert_eq!(company_of(&org("/1/2/")), Some(2));
        assert_eq!(company_of(&org("/1/")), None);
    }
}
