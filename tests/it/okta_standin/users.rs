//! The Users API calls an alert's live context makes (README §e, spec tags User, UserFactor,
//! RoleAssignmentAUser, UserResources): `GET /api/v1/users/{id}` (getUser),
//! `/api/v1/users/{userId}/factors` (listFactors), `/api/v1/users/{userId}/roles`
//! (listAssignedRolesForUser, scope `okta.roles.read`) and `/api/v1/users/{id}/groups`
//! (listUserGroups), over the users a test seeds ([`UserSeed`]). `{id}` is the user's id or login,
//! as getUser takes it; an unknown user is 404 E0000007.
//!
//! Buckets (README §b [RLOLD]): `GET /api/v1/users/{idOrLogin}` 2,000 a minute, the rest 1,200.
//! Tests can make the whole Users API slow ([`OktaStandIn::delay_users`]) or down
//! ([`OktaStandIn::fail_users`]).
//!
//! getUser also takes `me`: the admin an SSWS token acts as. For an OAuth service app, which
//! acts as no user, it answers 404 E0000007 (the spec lists 404 for getUser; neither the spec
//! nor shared/okta says what Okta answers there, and a client must treat both 400 and 404 as
//! "no user"). The responder's writes on users are in [`super::user_actions`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::HeaderMap;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use factorwatch::okta::samples::SampleUser;
use serde_json::{Value, json};

use super::api::{Family, Operation};
use super::audit;
use super::auth::Principal;
use super::logs::injected;
use super::spec::Spec;
use super::{Answer, OktaStandIn, Shared, decode_pairs, okta_id};

const USERS_READ: &str = "okta.users.read";
const ROLES_READ: &str = "okta.roles.read";
/// The user type every seeded user has (the org's default type).
const DEFAULT_USER_TYPE: &str = "oty1defaultusertype0";

const GET_USER: Operation = Operation {
    id: "getUser",
    template: "/api/v1/users/{id}",
    method: "GET",
    scope: USERS_READ,
    family: Family::Users,
    unlisted: &[],
};
const LIST_FACTORS: Operation = Operation {
    id: "listFactors",
    template: "/api/v1/users/{userId}/factors",
    method: "GET",
    scope: USERS_READ,
    family: Family::UserResources,
    unlisted: &[],
};
const LIST_ROLES: Operation = Operation {
    id: "listAssignedRolesForUser",
    template: "/api/v1/users/{userId}/roles",
    method: "GET",
    scope: ROLES_READ,
    family: Family::UserResources,
    unlisted: &[],
};
const LIST_GROUPS: Operation = Operation {
    id: "listUserGroups",
    template: "/api/v1/users/{id}/groups",
    method: "GET",
    scope: USERS_READ,
    family: Family::UserResources,
    unlisted: &[],
};

/// A user of the org, as a test seeds it.
#[derive(Debug, Clone)]
pub struct UserSeed {
    /// Who (id, login, name).
    pub user: SampleUser,
    /// Okta's `UserStatus`: `ACTIVE`, `SUSPENDED`, `LOCKED_OUT`, ...
    pub status: String,
    /// The factors enrolled.
    pub factors: Vec<FactorSeed>,
    /// The admin role types assigned to the user (`SUPER_ADMIN`, `HELP_DESK_ADMIN`, ...).
    pub roles: Vec<String>,
    /// The names of its groups, in order.
    pub groups: Vec<String>,
    /// Its active Okta sessions (what clearUserSessions ends).
    pub sessions: u32,
}

impl UserSeed {
    /// An `ACTIVE` user with no factor, role or group.
    pub fn active(user: &SampleUser) -> Self {
        UserSeed {
            user: user.clone(),
            status: "ACTIVE".to_owned(),
            factors: Vec::new(),
            roles: Vec::new(),
            groups: Vec::new(),
            sessions: 1,
        }
    }
}

/// One enrolled factor of a seeded user.
#[derive(Debug, Clone)]
pub struct FactorSeed {
    /// `factorType`: `push`, `sms`, `webauthn`, `token:software:totp`, ...
    pub factor_type: String,
    /// `provider`: `OKTA`, `GOOGLE`, `FIDO`, ...
    pub provider: String,
    /// `status`: `ACTIVE`, `PENDING_ACTIVATION`, ...
    pub status: String,
}

impl FactorSeed {
    /// An `ACTIVE` factor.
    pub fn active(factor_type: &str, provider: &str) -> Self {
        FactorSeed {
            factor_type: factor_type.to_owned(),
            provider: provider.to_owned(),
            status: "ACTIVE".to_owned(),
        }
    }
}

/// A seeded user with the ids the org gave its factors, roles and groups, and what the
/// responder's writes change: `seed.status`, `seed.sessions`, the risk.
pub(super) struct StoredUser {
    pub(super) seed: UserSeed,
    created: String,
    factor_ids: Vec<String>,
    role_ids: Vec<String>,
    group_ids: Vec<String>,
    /// The risk level and reason an admin set (`NONE` while `None`).
    pub(super) risk: Option<(String, String)>,
    /// Whether a clearUserSessions revoked its OAuth tokens too.
    pub(super) oauth_tokens_revoked: bool,
}

impl StoredUser {
    fn new(seed: UserSeed) -> Self {
        let ids = |prefix: &str, n: usize| (0..n).map(|_| okta_id(prefix)).collect();
        StoredUser {
            created: audit::now(),
            factor_ids: ids("ufs", seed.factors.len()),
            role_ids: ids("irb", seed.roles.len()),
            group_ids: ids("00g", seed.groups.len()),
            seed,
            risk: None,
            oauth_tokens_revoked: false,
        }
    }
}

/// The Users API's faults: every answer after `delay`; `down` answers that status instead.
#[derive(Default)]
pub(super) struct Faults {
    delay: Duration,
    down: Option<u16>,
}

impl OktaStandIn {
    /// Adds a user to the org (replacing one with the same id).
    pub fn add_user(&self, seed: UserSeed) {
        let stored = StoredUser::new(seed);
        let mut state = self.shared.lock();
        state.users.insert(stored.seed.user.id.clone(), stored);
    }

    /// Every answer of the Users API comes after `delay` (`Duration::ZERO` to stop).
    pub fn delay_users(&self, delay: Duration) {
        self.shared.lock().user_faults.delay = delay;
    }

    /// Every answer of the Users API has `status` (503: down) until `None`, with Okta's body
    /// for it (as [`OktaStandIn::fail_next`]).
    pub fn fail_users(&self, status: Option<u16>) {
        self.shared.lock().user_faults.down = status;
    }

    /// The requests to the Users API so far (paths below `/api/v1/users`).
    pub fn user_requests(&self) -> Vec<super::Recorded> {
        let requests = self.requests();
        requests
            .into_iter()
            .filter(|r| r.path.starts_with("/api/v1/users"))
            .collect()
    }
}

/// Adds the Users API routes to `router` (axum names each path segment once, whatever the
/// spec's template calls it).
pub(super) fn routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router
        .route("/api/v1/users/{id}", get(read_user))
        .route("/api/v1/users/{id}/factors", get(list_factors))
        .route("/api/v1/users/{id}/roles", get(list_roles))
        .route("/api/v1/users/{id}/groups", get(list_groups))
}

async fn read_user(
    state: State<Arc<Shared>>,
    id: Path<String>,
    uri: Uri,
    h: HeaderMap,
) -> Response {
    serve(&state, &GET_USER, &id, &uri, &h, user_view).await
}

async fn list_factors(
    state: State<Arc<Shared>>,
    id: Path<String>,
    uri: Uri,
    h: HeaderMap,
) -> Response {
    serve(&state, &LIST_FACTORS, &id, &uri, &h, factors_view).await
}

async fn list_roles(
    state: State<Arc<Shared>>,
    id: Path<String>,
    uri: Uri,
    h: HeaderMap,
) -> Response {
    serve(&state, &LIST_ROLES, &id, &uri, &h, roles_view).await
}

async fn list_groups(
    state: State<Arc<Shared>>,
    id: Path<String>,
    uri: Uri,
    h: HeaderMap,
) -> Response {
    serve(&state, &LIST_GROUPS, &id, &uri, &h, groups_view).await
}

/// Records the request, waits out the delay, takes the quota, answers the injected failure or
/// authorizes, then answers `view` of the user, checks the answer against the spec and records
/// it.
async fn serve(
    shared: &Shared,
    operation: &Operation,
    id: &str,
    uri: &Uri,
    headers: &HeaderMap,
    view: impl FnOnce(&str, &StoredUser) -> Value,
) -> Response {
    let index = shared.record(operation.method, uri, Vec::new(), headers);
    check_parameters(shared, operation, uri);
    let (delay, down) = {
        let state = shared.lock();
        (state.user_faults.delay, state.user_faults.down)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let quota = operation.take_quota(shared);
    let answer = match (quota.allowed, down) {
        (true, Some(status)) => injected(status),
        _ => match operation.authorize(shared, headers, uri.path(), quota) {
            Err(answer) => answer,
            Ok(caller) => {
                let mut state = shared.lock();
                let id = match (id, &caller.principal) {
                    ("me", Principal::Admin { user, .. }) => {
                        // Okta always knows the token's admin: seeded on first use if the test
                        // did not add it.
                        state
                            .users
                            .entry(user.id.clone())
                            .or_insert_with(|| StoredUser::new(UserSeed::active(user)));
                        user.id.as_str()
                    }
                    _ => id,
                };
                match find(&state.users, id) {
                    Some(user) => Answer::json(StatusCode::OK, view(&shared.org_url, user)),
                    None => not_found(id),
                }
            }
        },
    };
    operation.finish(shared, index, answer, quota)
}

/// The user `id` names: its id or its login (getUser takes either).
pub(super) fn find<'a>(
    users: &'a std::collections::HashMap<String, StoredUser>,
    id: &str,
) -> Option<&'a StoredUser> {
    users.get(id).or_else(|| {
        users
            .values()
            .find(|u| u.seed.user.login.eq_ignore_ascii_case(id))
    })
}

/// Records a query parameter the operation does not list.
fn check_parameters(shared: &Shared, operation: &Operation, uri: &Uri) {
    let listed = Spec::get().query_parameters(operation.template, "get");
    for (name, _) in decode_pairs(uri.query().unwrap_or_default()) {
        if !listed.iter().any(|p| p.name == name) {
            shared.violation(format!("{} has no parameter {name}", operation.id));
        }
    }
}

/// 404 E0000007, Okta's answer for a user it does not know.
pub(super) fn not_found(id: &str) -> Answer {
    Answer::okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {id} (User)"),
    )
}

pub(super) fn user_href(org_url: &str, user: &StoredUser) -> String {
    format!("{org_url}/api/v1/users/{}", user.seed.user.id)
}

/// A `User` as getUser answers it.
fn user_view(org_url: &str, user: &StoredUser) -> Value {
    let seed = &user.seed;
    let (first, last) = seed
        .user
        .display_name
        .split_once(' ')
        .unwrap_or((seed.user.display_name.as_str(), ""));
    json!({
        "id": seed.user.id,
        "status": seed.status,
        "created": user.created,
        "activated": user.created,
        "statusChanged": user.created,
        "lastLogin": user.created,
        "lastUpdated": user.created,
        "passwordChanged": user.created,
        "type": {"id": DEFAULT_USER_TYPE},
        "profile": {
            "firstName": first,
            "lastName": last,
            "email": seed.user.login,
            "login": seed.user.login,
        },
        "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
        "_links": {"self": {"href": user_href(org_url, user)}},
    })
}

/// The `UserFactor`s of listFactors, each with the profile of its type.
fn factors_view(org_url: &str, user: &StoredUser) -> Value {
    let href = user_href(org_url, user);
    let factors = user.seed.factors.iter().zip(&user.factor_ids);
    Value::Array(
        factors
            .map(|(factor, id)| {
                json!({
                    "id": id,
                    "factorType": factor.factor_type,
                    "provider": factor.provider,
                    "vendorName": factor.provider,
                    "status": factor.status,
                    "created": user.created,
                    "lastUpdated": user.created,
                    "profile": factor_profile(&factor.factor_type, &user.seed.user),
                    "_links": {
                        "self": {"href": format!("{href}/factors/{id}"), "hints": {"allow": ["GET", "DELETE"]}},
                        "user": {"href": href, "hints": {"allow": ["GET"]}},
                    },
                })
            })
            .collect(),
    )
}

/// The profile of a factor of `factor_type`, shaped as the spec's profile of that type.
fn factor_profile(factor_type: &str, user: &SampleUser) -> Value {
    match factor_type {
        "sms" | "call" => json!({"phoneNumber": "+15554151337"}),
        "email" => json!({"email": user.login}),
        "push" => json!({
            "credentialId": user.login, "deviceType": "SmartPhone_IPhone", "name": "My Phone",
            "platform": "IOS", "version": "9.0",
        }),
        "webauthn" => {
            json!({"authenticatorName": "MacBook Touch ID", "credentialId": okta_id("AHo")})
        }
        "question" => json!({
            "question": "favorite_art_piece", "questionText": "What is your favorite piece of art?",
        }),
        _ => json!({"credentialId": user.login}),
    }
}

/// The role assignments of listAssignedRolesForUser (standard roles, assigned to the user).
fn roles_view(org_url: &str, user: &StoredUser) -> Value {
    let roles = user.seed.roles.iter().zip(&user.role_ids);
    Value::Array(
        roles
            .map(|(role, id)| {
                json!({
                    "id": id,
                    "label": role_label(role),
                    "type": role,
                    "status": "ACTIVE",
                    "created": user.created,
                    "lastUpdated": user.created,
                    "assignmentType": "USER",
                    "_links": {"assignee": {"href": user_href(org_url, user)}},
                })
            })
            .collect(),
    )
}

/// Okta's label of a standard role type.
fn role_label(role: &str) -> String {
    let words: Vec<String> = role
        .trim_end_matches("_ADMIN")
        .split('_')
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("{} Administrator", words.join(" "))
}

/// The `Group`s of listUserGroups (Okta groups, no paging: the spec lists no parameter).
fn groups_view(org_url: &str, user: &StoredUser) -> Value {
    let groups = user.seed.groups.iter().zip(&user.group_ids);
    Value::Array(
        groups
            .map(|(name, id)| {
                let href = format!("{org_url}/api/v1/groups/{id}");
                json!({
                    "id": id,
                    "created": user.created,
                    "lastUpdated": user.created,
                    "lastMembershipUpdated": user.created,
                    "objectClass": ["okta:user_group"],
                    "type": "OKTA_GROUP",
                    "profile": {"name": name, "description": format!("{name} (seeded)")},
                    "_links": {
                        "self": {"href": href},
                        "users": {"href": format!("{href}/users")},
                        "apps": {"href": format!("{href}/apps")},
                    },
                })
            })
            .collect(),
    )
}
