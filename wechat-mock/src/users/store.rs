//! The user ledger: people by unionid, an index from (app, openid) to person, each person's
//! unionid on every other Open Platform account an app is bound to, and each person's follow state
//! per official account. Pure bookkeeping; the clock and the HTTP layer live elsewhere.
//!
//! A person is keyed by their unionid on the default Open Platform account; their unionids on the
//! other accounts are aliases of it, accepted wherever a unionid names a person.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::ids::{is_plausible_phone_number, new_mobile_number, new_openid, new_unionid, new_unionid_on};
use super::{MockUser, OaFollow, SubscribeScene, UserError, UserInfo, UserOptions, UserRecord};
use crate::config::{AppKind, MockApp};

const DEFAULT_LANGUAGE: &str = "zh_CN";

#[derive(Debug, Clone)]
struct Person {
    openids: BTreeMap<String, String>,
    follows: BTreeMap<String, OaFollow>,
    remark: String,
    tagid_list: Vec<u64>,
    language: String,
    /// `purePhoneNumber` of the WeChat account.
    phone: String,
    /// Rated high-risk: mini-program logins are refused with `40226`.
    blocked: bool,
    /// Unionid per named Open Platform account (the default account's is the person's key).
    platform_unionids: BTreeMap<String, String>,
}

/// Every simulated user.
#[derive(Debug)]
pub(crate) struct UserStore {
    /// The registered apps in configuration order; the first of each kind is the "primary" one
    /// whose openid [`MockUser`] reports.
    apps: Vec<(String, AppKind)>,
    /// The named Open Platform account of each app bound to one (others: the default account).
    platform_of_app: HashMap<String, String>,
    /// Every named Open Platform account some app is bound to.
    platforms: BTreeSet<String>,
    people: BTreeMap<String, Person>,
    by_openid: HashMap<(String, String), String>,
    /// A person's key by their unionid on a named Open Platform account.
    by_platform_unionid: HashMap<String, String>,
}

impl UserStore {
    /// An empty ledger for these apps (in configuration order).
    pub(crate) fn new(apps: &[MockApp]) -> Self {
        let platform_of_app: HashMap<String, String> = apps
            .iter()
            .filter_map(|app| app.open_platform.clone().map(|platform| (app.appid.clone(), platform)))
            .collect();
        Self {
            apps: apps.iter().map(|app| (app.appid.clone(), app.kind)).collect(),
            platforms: platform_of_app.values().cloned().collect(),
            platform_of_app,
            people: BTreeMap::new(),
            by_openid: HashMap::new(),
            by_platform_unionid: HashMap::new(),
        }
    }

    /// Whether `unionid` is anyone's, on any Open Platform account.
    fn unionid_taken(&self, unionid: &str) -> bool {
        self.people.contains_key(unionid) || self.by_platform_unionid.contains_key(unionid)
    }

    /// The key of the person with this unionid on any Open Platform account.
    pub(crate) fn key_of(&self, unionid: &str) -> Option<&str> {
        match self.people.get_key_value(unionid) {
            Some((key, _)) => Some(key.as_str()),
            None => self.by_platform_unionid.get(unionid).map(String::as_str),
        }
    }

    fn person(&self, unionid: &str) -> Option<&Person> {
        self.people.get(self.key_of(unionid)?)
    }

    /// The unionid app `appid` sees for the person keyed `key`: the one of the Open Platform
    /// account the app is bound to.
    pub(crate) fn unionid_seen_by(&self, key: &str, appid: &str) -> Option<&str> {
        let (key, person) = self.people.get_key_value(key)?;
        match self.platform_of_app.get(appid) {
            None => Some(key.as_str()),
            Some(platform) => person.platform_unionids.get(platform).map(String::as_str),
        }
    }

    fn primary(&self, kind: AppKind) -> Option<&str> {
        self.apps.iter().find(|(_, k)| *k == kind).map(|(appid, _)| appid.as_str())
    }

    /// The first registered mini-program, whose openid [`MockUser::mp_openid`] is.
    pub(crate) fn primary_mini_program(&self) -> Option<&str> {
        self.primary(AppKind::MiniProgram)
    }

    /// Refuses chosen ids that are empty or already taken.
    pub(crate) fn check_choices(&self, options: &UserOptions) -> Result<(), UserError> {
        if let Some(number) = &options.phone {
            if !is_plausible_phone_number(number) {
                return Err(UserError::InvalidPhoneNumber(number.clone()));
            }
        }
        if let Some(unionid) = &options.unionid {
            if unionid.is_empty() {
                return Err(UserError::EmptyId);
            }
            if self.unionid_taken(unionid) {
                return Err(UserError::UnionidTaken(unionid.clone()));
            }
        }
        for (kind, chosen) in
            [(AppKind::OfficialAccount, &options.oa_openid), (AppKind::MiniProgram, &options.mp_openid)]
        {
            let (Some(openid), Some(appid)) = (chosen, self.primary(kind)) else {
                continue;
            };
            if openid.is_empty() {
                return Err(UserError::EmptyId);
            }
            if self.by_openid.contains_key(&(appid.to_owned(), openid.clone())) {
                return Err(UserError::OpenidTaken { appid: appid.to_owned(), openid: openid.clone() });
            }
        }
        Ok(())
    }

    /// Adds a person; chosen ids must have passed [`Self::check_choices`], generated ones are
    /// minted until unused.
    pub(crate) fn insert(&mut self, options: &UserOptions, now: i64) -> MockUser {
        let unionid = match &options.unionid {
            Some(chosen) => chosen.clone(),
            None => loop {
                let candidate = new_unionid();
                if !self.unionid_taken(&candidate) {
                    break candidate;
                }
            },
        };
        let mut platform_unionids = BTreeMap::new();
        for platform in self.platforms.clone() {
            let other = loop {
                let candidate = new_unionid_on(&platform);
                if candidate != unionid && !self.unionid_taken(&candidate) {
                    break candidate;
                }
            };
            self.by_platform_unionid.insert(other.clone(), unionid.clone());
            platform_unionids.insert(platform, other);
        }
        let primary_oa = self.primary(AppKind::OfficialAccount).map(str::to_owned);
        let primary_mp = self.primary(AppKind::MiniProgram).map(str::to_owned);
        let mut openids = BTreeMap::new();
        let mut follows = BTreeMap::new();
        for (appid, kind) in self.apps.clone() {
            let chosen = if Some(&appid) == primary_oa.as_ref() {
                options.oa_openid.clone()
            } else if Some(&appid) == primary_mp.as_ref() {
                options.mp_openid.clone()
            } else {
                None
            };
            let openid = chosen.unwrap_or_else(|| loop {
                let candidate = new_openid(&appid);
                if !self.by_openid.contains_key(&(appid.clone(), candidate.clone())) {
                    break candidate;
                }
            });
            self.by_openid.insert((appid.clone(), openid.clone()), unionid.clone());
            if kind == AppKind::OfficialAccount {
                let follow = if options.subscribed && Some(&appid) == primary_oa.as_ref() {
                    initial_follow(options, now)
                } else {
                    OaFollow::never()
                };
                follows.insert(appid.clone(), follow);
            }
            openids.insert(appid, openid);
        }
        let user = MockUser {
            oa_openid: primary_oa.and_then(|appid| openids.get(&appid).cloned()).unwrap_or_default(),
            mp_openid: primary_mp.and_then(|appid| openids.get(&appid).cloned()).unwrap_or_default(),
            unionid: unionid.clone(),
        };
        self.people.insert(
            unionid,
            Person {
                openids,
                follows,
                remark: options.remark.clone(),
                tagid_list: options.tagid_list.clone(),
                language: options.language.clone().unwrap_or_else(|| DEFAULT_LANGUAGE.to_owned()),
                phone: options.phone.clone().unwrap_or_else(new_mobile_number),
                blocked: options.blocked,
                platform_unionids,
            },
        );
        user
    }

    /// The key (default-account unionid) of the person `appid` knows as `openid`.
    pub(crate) fn unionid_of(&self, appid: &str, openid: &str) -> Option<&str> {
        self.by_openid.get(&(appid.to_owned(), openid.to_owned())).map(String::as_str)
    }

    /// The openid of person `unionid` under `appid`.
    pub(crate) fn openid_of(&self, unionid: &str, appid: &str) -> Option<&str> {
        self.person(unionid)?.openids.get(appid).map(String::as_str)
    }

    /// The person's `purePhoneNumber`.
    pub(crate) fn phone_number(&self, unionid: &str) -> Option<&str> {
        self.person(unionid).map(|person| person.phone.as_str())
    }

    /// Whether the person is rated high-risk (unknown people are not).
    pub(crate) fn is_blocked(&self, unionid: &str) -> bool {
        self.person(unionid).is_some_and(|person| person.blocked)
    }

    /// Sets the high-risk flag; `false` for an unknown person.
    pub(crate) fn set_blocked(&mut self, unionid: &str, blocked: bool) -> bool {
        let Some(key) = self.key_of(unionid).map(str::to_owned) else {
            return false;
        };
        match self.people.get_mut(&key) {
            Some(person) => {
                person.blocked = blocked;
                true
            }
            None => false,
        }
    }

    fn person_mut(&mut self, appid: &str, openid: &str) -> Option<&mut Person> {
        let unionid = self.unionid_of(appid, openid)?.to_owned();
        self.people.get_mut(&unionid)
    }

    pub(crate) fn record(&self, unionid: &str) -> Option<UserRecord> {
        let key = self.key_of(unionid)?;
        let person = self.people.get(key)?;
        Some(UserRecord {
            unionid: key.to_owned(),
            open_platform_unionids: person.platform_unionids.clone(),
            openids: person.openids.clone(),
            follows: person.follows.clone(),
            remark: person.remark.clone(),
            tagid_list: person.tagid_list.clone(),
            language: person.language.clone(),
            phone: person.phone.clone(),
            blocked: person.blocked,
        })
    }

    pub(crate) fn records(&self) -> Vec<UserRecord> {
        self.people.keys().filter_map(|unionid| self.record(unionid)).collect()
    }

    /// Sets the follow state; only official accounts have one.
    pub(crate) fn set_follow(&mut self, oa_appid: &str, openid: &str, follow: OaFollow) -> bool {
        let Some(person) = self.person_mut(oa_appid, openid) else {
            return false;
        };
        match person.follows.get_mut(oa_appid) {
            Some(state) => {
                *state = follow;
                true
            }
            None => false,
        }
    }

    pub(crate) fn unfollow(&mut self, oa_appid: &str, openid: &str) -> bool {
        let Some(person) = self.person_mut(oa_appid, openid) else {
            return false;
        };
        match person.follows.get_mut(oa_appid) {
            Some(state) => {
                state.subscribed = false;
                true
            }
            None => false,
        }
    }

    /// The `user/info` body for `openid` of official account `appid`, or `None` if unknown;
    /// `bound`: whether apps see unionids at all.
    pub(crate) fn user_info(&self, appid: &str, openid: &str, bound: bool) -> Option<UserInfo> {
        let unionid = self.unionid_of(appid, openid)?;
        let person = self.people.get(unionid)?;
        let follow = person.follows.get(appid)?;
        if !follow.subscribed {
            return Some(UserInfo {
                subscribe: 0,
                openid: openid.to_owned(),
                language: None,
                subscribe_time: None,
                unionid: None,
                remark: None,
                groupid: None,
                tagid_list: None,
                subscribe_scene: None,
                qr_scene: None,
                qr_scene_str: None,
            });
        }
        Some(UserInfo {
            subscribe: 1,
            openid: openid.to_owned(),
            language: Some(person.language.clone()),
            subscribe_time: Some(follow.subscribe_time),
            unionid: if bound { self.unionid_seen_by(unionid, appid).map(str::to_owned) } else { None },
            remark: Some(person.remark.clone()),
            groupid: Some(0),
            tagid_list: Some(person.tagid_list.clone()),
            subscribe_scene: Some(follow.subscribe_scene),
            qr_scene: Some(follow.qr_scene),
            qr_scene_str: Some(follow.qr_scene_str.clone()),
        })
    }
}

fn initial_follow(options: &UserOptions, now: i64) -> OaFollow {
    let at = options.subscribe_time.unwrap_or(now);
    let mut follow = match &options.qr_scene_str {
        Some(scene) => OaFollow::via_qr(scene, at),
        None => OaFollow::via(SubscribeScene::Search, at),
    };
    if let Some(scene) = options.subscribe_scene {
        follow.subscribe_scene = scene;
    }
    follow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> UserStore {
        UserStore::new(&[
            MockApp::official_account("wx_oa", "s"),
            MockApp::mini_program("wx_mp", "s"),
            MockApp::official_account("wx_oa2", "s"),
        ])
    }

    #[test]
    fn a_unionid_per_open_platform_account() {
        let mut users = UserStore::new(&[
            MockApp::official_account("wx_oa", "s"),
            MockApp::mini_program("wx_mp", "s"),
            MockApp::mini_program("wx_mp_b", "s").bound_to("b"),
            MockApp::official_account("wx_oa_b", "s").bound_to("b"),
            MockApp::mini_program("wx_mp_c", "s").bound_to("c"),
        ]);
        let user = users.insert(&UserOptions::default(), 0);
        let key = user.unionid.as_str();
        let [oa, mp, mp_b, oa_b, mp_c] = ["wx_oa", "wx_mp", "wx_mp_b", "wx_oa_b", "wx_mp_c"]
            .map(|appid| users.unionid_seen_by(key, appid).unwrap().to_owned());
        assert_eq!((oa.as_str(), mp.as_str()), (key, key));
        assert_eq!(mp_b, oa_b, "one account, one unionid");
        assert_ne!(mp_b, key, "another account, another unionid");
        assert_ne!(mp_c, key);
        assert_ne!(mp_c, mp_b);
        // Every unionid names the person.
        let b = mp_b.clone();
        assert_eq!(users.key_of(&b), Some(key));
        let record = users.record(&b).unwrap();
        assert_eq!(record.unionid, key);
        assert_eq!(record.open_platform_unionids.get("b"), Some(&b));
        assert_eq!(record.open_platform_unionids.len(), 2);
        assert_eq!(users.openid_of(&b, "wx_mp"), Some(user.mp_openid.as_str()));
        assert!(users.set_blocked(&b, true) && users.is_blocked(key));
        // Nobody else may take it.
        let taken = UserOptions { unionid: Some(b.clone()), ..UserOptions::default() };
        assert_eq!(users.check_choices(&taken), Err(UserError::UnionidTaken(b)));
        // Another person, other unionids everywhere.
        let other = users.insert(&UserOptions::default(), 0);
        assert_ne!(users.unionid_seen_by(&other.unionid, "wx_mp_b").unwrap(), mp_b);
    }

    #[test]
    fn one_unionid_and_an_openid_per_app() {
        let mut users = store();
        let user = users.insert(&UserOptions::default(), 100);
        let record = users.record(&user.unionid).unwrap();
        assert_eq!(record.openids.len(), 3);
        assert_eq!(record.openids["wx_oa"], user.oa_openid);
        assert_eq!(record.openids["wx_mp"], user.mp_openid);
        assert_ne!(record.openids["wx_oa2"], user.oa_openid);
        assert_eq!(record.follows.len(), 2, "only official accounts are followed");
        assert_eq!(users.unionid_of("wx_mp", &user.mp_openid), Some(user.unionid.as_str()));
        assert_eq!(users.unionid_of("wx_oa", &user.mp_openid), None);
    }

    #[test]
    fn chosen_ids_must_be_free_and_non_empty() {
        let mut users = store();
        let options = UserOptions {
            unionid: Some("u1".into()),
            oa_openid: Some("o_any_string".into()),
            ..UserOptions::default()
        };
        users.check_choices(&options).unwrap();
        let user = users.insert(&options, 0);
        assert_eq!(user.oa_openid, "o_any_string");
        assert_eq!(users.check_choices(&options), Err(UserError::UnionidTaken("u1".into())));
        let same_openid = UserOptions { oa_openid: Some("o_any_string".into()), ..UserOptions::default() };
        assert!(matches!(users.check_choices(&same_openid), Err(UserError::OpenidTaken { .. })));
        let empty = UserOptions { mp_openid: Some(String::new()), ..UserOptions::default() };
        assert_eq!(users.check_choices(&empty), Err(UserError::EmptyId));
        let phone = UserOptions { phone: Some("+86 138".into()), ..UserOptions::default() };
        assert_eq!(users.check_choices(&phone), Err(UserError::InvalidPhoneNumber("+86 138".into())));
    }

    #[test]
    fn phone_numbers_and_the_high_risk_flag() {
        let mut users = store();
        let chosen = UserOptions { phone: Some("13800138000".into()), blocked: true, ..UserOptions::default() };
        users.check_choices(&chosen).unwrap();
        let a = users.insert(&chosen, 0);
        let b = users.insert(&UserOptions::default(), 0);
        assert_eq!(users.phone_number(&a.unionid), Some("13800138000"));
        assert_eq!(users.phone_number(&b.unionid).map(str::len), Some(11));
        assert!(users.is_blocked(&a.unionid) && !users.is_blocked(&b.unionid));
        assert!(users.set_blocked(&a.unionid, false));
        assert!(!users.is_blocked(&a.unionid));
        assert!(!users.set_blocked("o_nobody", true));
        assert!(!users.is_blocked("o_nobody"));
        assert_eq!(users.openid_of(&b.unionid, "wx_mp"), Some(b.mp_openid.as_str()));
        assert_eq!(users.primary_mini_program(), Some("wx_mp"));
        assert!(users.record(&a.unionid).unwrap().phone == "13800138000");
    }

    #[test]
    fn follow_state_changes() {
        let mut users = store();
        let user = users.insert(&UserOptions::default(), 0);
        let info = users.user_info("wx_oa", &user.oa_openid, true).unwrap();
        assert_eq!(info.subscribe, 0);
        assert!(users.set_follow("wx_oa", &user.oa_openid, OaFollow::via_qr("42", 500)));
        let info = users.user_info("wx_oa", &user.oa_openid, true).unwrap();
        assert_eq!(info.subscribe, 1);
        assert_eq!(info.qr_scene, Some(42));
        assert_eq!(info.qr_scene_str.as_deref(), Some(""));
        assert_eq!(info.subscribe_time, Some(500));
        assert_eq!(info.unionid.as_deref(), Some(user.unionid.as_str()));
        assert!(users.unfollow("wx_oa", &user.oa_openid));
        assert_eq!(users.user_info("wx_oa", &user.oa_openid, true).unwrap().subscribe, 0);
        // The mini-program's openid has no follow state, an unknown openid none at all.
        assert!(!users.set_follow("wx_mp", &user.mp_openid, OaFollow::via(SubscribeScene::Search, 1)));
        assert!(!users.unfollow("wx_oa", "o_nobody"));
        assert!(users.user_info("wx_oa", "o_nobody", true).is_none());
    }
}
