//! Who is acting: an operator (authenticated by an API key, see [`crate::domain::operators::keys`]) or the command
//! line, their role, and the org subtree they reach.
//!
//! A key is bound to one org; it reaches that org and every org below it, nothing else. Anything
//! outside is reported as not found, never as forbidden, so ids of other companies don't leak.

use crate::db::{community::orgs, Db};
use crate::domain::{DomainError, DomainResult};

/// What a key may do, in increasing power: stored with the key, decoded in db/.
pub use crate::db::operators::api_keys::Role;

/// The caller of a domain operation.
#[derive(Clone, Debug)]
pub struct Actor {
    /// The key used, or `None` for the command line.
    pub key_id: Option<i64>,
    /// How the audit log names the actor: `key:<prefix> (<name>)` or `cli`.
    pub label: String,
    pub org_id: i64,
    pub org_path: String,
    pub role: Role,
    pub request_id: Option<String>,
}

/// The platform org, created by the first migration.
pub const PLATFORM_ORG_ID: i64 = 1;

impl Actor {
    /// The command line: a platform admin, for bootstrap and break-glass work.
    pub fn cli() -> Actor {
        Actor {
            key_id: None,
            label: "cli".to_owned(),
            org_id: PLATFORM_ORG_ID,
            org_path: format!("/{PLATFORM_ORG_ID}/"),
            role: Role::Admin,
            request_id: None,
        }
    }

    /// Whether an org with this path is in the actor's subtree.
    pub fn reaches(&self, org_path: &str) -> bool {
        org_path.starts_with(&self.org_path)
    }

    /// Refuses unless the actor has at least `role`.
    pub fn require(&self, role: Role) -> DomainResult<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(DomainError::Forbidden(format!(
                "this action needs the {} role; the key has {}",
                role.as_str(),
                self.role.as_str()
            )))
        }
    }
}

/// The subtree a list reads: the actor's own, or that of `org_id` when it is inside it.
pub(crate) async fn scope_of(db: &Db, actor: &Actor, org_id: Option<i64>) -> DomainResult<String> {
    match org_id {
        None => Ok(actor.org_path.clone()),
        Some(id) => {
            let org = orgs::get(db.reader(), id).await?.filter(|o| actor.reaches(&o.path));
            Ok(org.ok_or(DomainError::NotFound("org"))?.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_is_a_path_prefix() {
        let mut actor = Actor::cli();
        actor.org_path = "/1/4/".into();
        assert!(actor.reaches("/1/4/"));
        assert!(actor.reaches("/1/4/9/"));
        assert!(!actor.reaches("/1/"));
        assert!(!actor.reaches("/1/44/"));
    }

    #[test]
    fn roles_are_ordered() {
        let mut actor = Actor::cli();
        actor.role = Role::Operator;
        assert!(actor.require(Role::Viewer).is_ok());
        assert!(actor.require(Role::Operator).is_ok());
        assert!(matches!(actor.require(Role::Admin), Err(DomainError::Forbidden(_))));
    }
}
