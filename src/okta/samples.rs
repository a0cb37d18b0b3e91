//! Realistic Okta System Log `LogEvent`s and event-hook envelopes, for the `simulate` and `demo`
//! commands, tests and benchmarks.
//!
//! No public source has a wire capture of a `user.mfa.factor.*` event, so every value here follows
//! Okta's `LogEvent` schema and the documented sample events, quirks included: `version` is the
//! string `"0"`, `client.zone` is the string `"null"`, `device` and `client.id` are `null`,
//! `debugContext.debugData` holds strings (`threatSuspected: "false"`), `target` is `null` for some
//! event types, and Okta Support actions carry a `SystemPrincipal` actor (`system@okta.com`),
//! `transaction.id` `"unknown"` and no user agent or geography. `ipChain` sits under `request`, as
//! the System Log API returns it (real hook deliveries put it under `client`).
//!
//! Ids look like Okta's (`00u…`, `0oa…`, `00T…`, 20 characters). IPs come from the documentation
//! ranges 198.51.100.0/24 and 203.0.113.0/24 (RFC 5737), AS numbers from 64496-64511 (RFC 5398).
//! Every event gets a fresh v4 `uuid` and a `published` time of now (RFC 3339, milliseconds, `Z`).

use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

/// Who performed an MFA change, which decides the actor/transaction shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// The user changed their own factors: the actor is the target.
    SelfService,
    /// An admin or help-desk user in the Admin Console: the actor is another user.
    Admin,
    /// A call with an SSWS API token: the token owner is the actor and
    /// `transaction.detail.requestApiTokenId` names the token.
    ApiToken,
    /// Okta Support: `SystemPrincipal` actor `system@okta.com`, `transaction.id` `"unknown"`,
    /// no user agent, IP or geography.
    OktaSupport,
    /// An OAuth service app (an API Services app with client credentials) acting as itself:
    /// the actor is a `PublicClientApp` whose id is its client id.
    ServiceApp,
}

/// Identity of a user as it appears in actor/target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SampleUser {
    /// Okta user id (`00u…`, 20 characters); `actor.id` / `target[].id`.
    pub id: String,
    /// Okta login; `alternateId`.
    pub login: String,
    /// Full name; `displayName`.
    pub display_name: String,
}

impl SampleUser {
    /// A user from its Okta id, login and display name.
    pub fn new(id: &str, login: &str, display_name: &str) -> Self {
        Self {
            id: id.to_owned(),
            login: login.to_owned(),
            display_name: display_name.to_owned(),
        }
    }
}

const USERS: [(&str, &str, &str); 4] = [
    (
        "00u9xk3mZq7RtPbW51d7",
        "alice@example.com",
        "Alice Anderson",
    ),
    ("00u9xk4nHv2LsQcA81d7", "bob@example.com", "Bob Brown"),
    ("00u9xk5pWe6YdNfJ31d7", "carol@example.com", "Carol Chen"),
    (
        "00u9xk1aDm4KgTrE01d7",
        "dana.admin@example.com",
        "Dana Admin",
    ),
];

/// A few fixed users (alice, bob, carol, an admin "dana.admin") with realistic Okta ids
/// ("00u..." 20 chars). The admin is the actor of [`Initiator::Admin`] and [`Initiator::ApiToken`].
pub fn users() -> Vec<SampleUser> {
    USERS
        .iter()
        .map(|&(id, login, name)| SampleUser::new(id, login, name))
        .collect()
}

/// The admin who acts for [`Initiator::Admin`] and owns the API token.
pub fn admin() -> SampleUser {
    let (id, login, name) = USERS[3];
    SampleUser::new(id, login, name)
}

const API_TOKEN_ID: &str = "00T1k9z0m2HqW7pLx1d7";
const SERVICE_APP_CLIENT_ID: &str = "0oa1prov1s10nApp01d7";
const API_CLIENT_IP: &str = "203.0.113.240";
const SYSTEM_PRINCIPAL_ID: &str = "0oa1oktaSystem0001d7";
const USER_NET: &str = "198.51.100";
const ADMIN_NET: &str = "203.0.113";

struct App {
    id: &'static str,
    name: &'static str,
    slug: &'static str,
}

static APPS: [App; 4] = [
    App {
        id: "0oa3kq7xzbAdmnCns1d7",
        name: "Okta Admin Console",
        slug: "saasure",
    },
    App {
        id: "0oa3kq8slfRcEfRm51d7",
        name: "Salesforce.com",
        slug: "salesforce",
    },
    App {
        id: "0oa3kq9slkWq2zTb81d7",
        name: "Slack",
        slug: "slack",
    },
    App {
        id: "0oa3kqAgthZn4vPc21d7",
        name: "GitHub Enterprise Cloud",
        slug: "githubcloud",
    },
];

const BATCH_FACTORS: [&str; 5] = [
    "FIDO_WEBAUTHN",
    "OKTA_VERIFY_PUSH",
    "SMS",
    "GOOGLE_OTP",
    "EMAIL",
];

/// Authenticator display name and enrollment-id prefix for an Okta factor type.
fn factor_info(factor: &str) -> (&str, &'static str) {
    match factor {
        "FIDO_WEBAUTHN" => ("Security Key or Biometric", "fwf"),
        "OKTA_VERIFY_PUSH" => ("Okta Verify", "opf"),
        "OKTA_VERIFY" | "SIGNED_NONCE" => ("Okta Verify", "pfd"),
        "SMS" => ("Phone", "mbl"),
        "CALL" => ("Phone", "clf"),
        "EMAIL" => ("Email", "emf"),
        "GOOGLE_OTP" => ("Google Authenticator", "uft"),
        "SECURITY_QUESTION" => ("Security Question", "ufs"),
        other => (other, "fct"),
    }
}

/// Geography and network that an IP resolves to.
struct Place {
    city: &'static str,
    state: &'static str,
    country: &'static str,
    postal_code: &'static str,
    lat: f64,
    lon: f64,
    as_number: u32,
    as_org: &'static str,
    isp: &'static str,
    domain: &'static str,
}

static TORONTO: Place = Place {
    city: "Toronto",
    state: "Ontario",
    country: "Canada",
    postal_code: "M6B",
    lat: 43.7114,
    lon: -79.4462,
    as_number: 64496,
    as_org: "example broadband",
    isp: "Example Broadband Inc.",
    domain: "broadband.example",
};
static SAN_FRANCISCO: Place = Place {
    city: "San Francisco",
    state: "California",
    country: "United States",
    postal_code: "94107",
    lat: 37.7697,
    lon: -122.3933,
    as_number: 64497,
    as_org: "example fiber",
    isp: "Example Fiber LLC",
    domain: "fiber.example",
};
static ASHBURN: Place = Place {
    city: "Ashburn",
    state: "Virginia",
    country: "United States",
    postal_code: "20149",
    lat: 39.0469,
    lon: -77.4903,
    as_number: 64500,
    as_org: "example cloud",
    isp: "Example Cloud Services",
    domain: "cloud.example",
};
static AMSTERDAM: Place = Place {
    city: "Amsterdam",
    state: "North Holland",
    country: "Netherlands",
    postal_code: "1012",
    lat: 52.374,
    lon: 4.8897,
    as_number: 64511,
    as_org: "example transit",
    isp: "Example Transit B.V.",
    domain: "transit.example",
};

/// The `client.userAgent` triple.
struct Agent {
    raw: &'static str,
    os: &'static str,
    browser: &'static str,
}

static BROWSERS: [Agent; 3] = [
    Agent {
        raw: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        os: "Mac OS X",
        browser: "CHROME",
    },
    Agent {
        raw: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        os: "Windows 10",
        browser: "FIREFOX",
    },
    Agent {
        raw: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        os: "Mac OS X",
        browser: "SAFARI",
    },
];
static SDK_AGENT: Agent = Agent {
    raw: "okta-sdk-python/2.9.8 python/3.12.3 Linux/6.8.0-1019-aws",
    os: "Linux",
    browser: "UNKNOWN",
};

fn last_octet(ip: &str) -> usize {
    ip.rsplit('.')
        .next()
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
}

/// Where an HTTP request came from: feeds `client`, `request.ipChain` and `securityContext`.
struct Caller {
    ip: String,
    place: &'static Place,
    agent: &'static Agent,
}

impl Caller {
    fn new(ip: &str, agent: &'static Agent) -> Self {
        let place = if ip.starts_with("198.51.100.") {
            &TORONTO
        } else if ip.starts_with("203.0.113.") && last_octet(ip) >= 200 {
            &ASHBURN
        } else if ip.starts_with("203.0.113.") {
            &SAN_FRANCISCO
        } else {
            &AMSTERDAM
        };
        Self {
            ip: ip.to_owned(),
            place,
            agent,
        }
    }

    /// A browser request; the same IP always gets the same browser.
    fn browser(ip: &str) -> Self {
        Self::new(ip, &BROWSERS[last_octet(ip) % BROWSERS.len()])
    }
}

fn geo(p: &Place) -> Value {
    json!({
        "city": p.city, "state": p.state, "country": p.country, "postalCode": p.postal_code,
        "geolocation": { "lat": p.lat, "lon": p.lon },
    })
}

fn client(origin: Option<&Caller>) -> Value {
    match origin {
        Some(o) => json!({
            "userAgent": {
                "rawUserAgent": o.agent.raw, "os": o.agent.os, "browser": o.agent.browser,
            },
            "zone": "null", "device": "Computer", "id": null, "ipAddress": o.ip,
            "geographicalContext": geo(o.place),
        }),
        None => json!({
            "userAgent": null, "zone": "null", "device": null, "id": null, "ipAddress": null,
            "geographicalContext": null,
        }),
    }
}

fn ip_chain(origin: Option<&Caller>) -> Value {
    match origin {
        Some(o) => json!([{
            "ip": o.ip, "geographicalContext": geo(o.place), "version": "V4", "source": null,
        }]),
        None => json!([]),
    }
}

fn security_context(origin: Option<&Caller>) -> Value {
    match origin {
        Some(Caller { place: p, .. }) => json!({
            "asNumber": p.as_number, "asOrg": p.as_org, "isp": p.isp, "domain": p.domain,
            "isProxy": false,
        }),
        None => json!({
            "asNumber": null, "asOrg": null, "isp": null, "domain": null, "isProxy": null,
        }),
    }
}

/// The `{id, type, alternateId, displayName, detailEntry}` shape shared by actors and targets.
fn entity(id: &str, kind: &str, alternate_id: &str, display_name: &str) -> Value {
    json!({
        "id": id, "type": kind, "alternateId": alternate_id, "displayName": display_name,
        "detailEntry": null,
    })
}

fn user_entity(u: &SampleUser) -> Value {
    entity(&u.id, "User", &u.login, &u.display_name)
}

fn app_entity(app: &App) -> Value {
    entity(app.id, "AppInstance", app.name, app.name)
}

fn app_user_entity(u: &SampleUser) -> Value {
    entity(&okta_id("0ua"), "AppUser", &u.login, &u.display_name)
}

/// A fresh authenticator enrollment of `factor`: its id and its `AuthenticatorEnrollment` target.
fn enrollment(factor: &str) -> (String, Value) {
    let (name, prefix) = factor_info(factor);
    let id = okta_id(prefix);
    let target = entity(&id, "AuthenticatorEnrollment", "unknown", name);
    (id, target)
}

fn random_chars(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), n)
}

/// A fresh 20-character Okta object id with a 3-character `prefix`.
fn okta_id(prefix: &str) -> String {
    format!("{prefix}{}1d7", random_chars(17 - prefix.len()))
}

/// A fresh request id, also used as `transaction.id` of a web request.
fn request_id() -> String {
    format!("{}AA{}", random_chars(22), random_chars(3))
}

fn now() -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::now_utc()
        .format(fmt)
        .expect("UTC timestamp formats")
}

/// A stable address in `net` for a user, so one user always comes from the same place.
fn home_ip(net: &str, u: &SampleUser) -> String {
    format!(
        "{net}.{}",
        10 + u.id.bytes().map(usize::from).sum::<usize>() % 190
    )
}

/// The actor side of an event: who, from where, in which session and transaction.
struct Who {
    actor: Value,
    origin: Option<Caller>,
    session: String,
    detail: Value,
    job: bool,
    via_factor: bool,
}

impl Who {
    /// A user acting in their own browser session from `ip`.
    fn user(u: &SampleUser, ip: &str) -> Self {
        Self {
            actor: user_entity(u),
            origin: Some(Caller::browser(ip)),
            session: format!("idx{}", random_chars(22)),
            detail: json!({}),
            job: false,
            via_factor: false,
        }
    }

    fn of(initiator: Initiator, target: &SampleUser) -> Self {
        match initiator {
            Initiator::SelfService => Self::user(target, &home_ip(USER_NET, target)),
            Initiator::Admin => {
                let admin = admin();
                Self::user(&admin, &home_ip(ADMIN_NET, &admin))
            }
            Initiator::ApiToken => Self {
                origin: Some(Caller::new(API_CLIENT_IP, &SDK_AGENT)),
                session: "unknown".to_owned(),
                detail: json!({ "requestApiTokenId": API_TOKEN_ID }),
                ..Self::user(&admin(), API_CLIENT_IP)
            },
            Initiator::OktaSupport => Self::okta_system(),
            Initiator::ServiceApp => Self {
                actor: entity(
                    SERVICE_APP_CLIENT_ID,
                    "PublicClientApp",
                    SERVICE_APP_CLIENT_ID,
                    "Provisioning Service",
                ),
                origin: Some(Caller::new(API_CLIENT_IP, &SDK_AGENT)),
                session: "unknown".to_owned(),
                detail: json!({}),
                job: false,
                via_factor: false,
            },
        }
    }

    /// Okta itself (Okta Support, or the platform's own jobs): no request, no session.
    fn okta_system() -> Self {
        Self {
            actor: entity(
                SYSTEM_PRINCIPAL_ID,
                "SystemPrincipal",
                "system@okta.com",
                "Okta System",
            ),
            origin: None,
            session: "unknown".to_owned(),
            detail: json!({}),
            job: true,
            via_factor: false,
        }
    }
}

/// What differs between event kinds; everything else comes from [`Who`].
struct Event<'a> {
    event_type: &'a str,
    display_message: &'a str,
    legacy_event_type: Option<&'a str>,
    result: &'a str,
    reason: Option<String>,
    request_uri: Option<String>,
    target: Value,
}

/// `request_uri` by initiator: none for Okta Support, which makes no HTTP request.
fn uri_for(initiator: Initiator, self_service: String, api: String) -> Option<String> {
    match initiator {
        Initiator::SelfService => Some(self_service),
        Initiator::Admin | Initiator::ApiToken | Initiator::ServiceApp => Some(api),
        Initiator::OktaSupport => None,
    }
}

fn log_event(who: Who, transaction_id: Option<&str>, ev: Event<'_>) -> Value {
    let transaction_id = match transaction_id {
        _ if who.job => "unknown".to_owned(),
        Some(id) => id.to_owned(),
        None => request_id(),
    };
    let request_id = if transaction_id == "unknown" {
        request_id()
    } else {
        transaction_id.clone()
    };
    let url = ev.request_uri.as_ref().map(|uri| format!("{uri}?"));
    let (provider, credential_provider) = if who.via_factor {
        (json!("FACTOR_PROVIDER"), json!("OKTA_CREDENTIAL_PROVIDER"))
    } else {
        (Value::Null, Value::Null)
    };
    let origin = who.origin.as_ref();
    json!({
        "uuid": Uuid::new_v4().to_string(),
        "published": now(),
        "eventType": ev.event_type,
        "version": "0",
        "severity": "INFO",
        "displayMessage": ev.display_message,
        "actor": who.actor,
        "client": client(origin),
        "device": null,
        "authenticationContext": {
            "authenticationProvider": provider, "credentialProvider": credential_provider,
            "credentialType": null, "issuer": null, "interface": null, "authenticationStep": 0,
            "externalSessionId": who.session,
        },
        "outcome": { "result": ev.result, "reason": ev.reason },
        "securityContext": security_context(origin),
        "debugContext": { "debugData": {
            "requestId": request_id, "requestUri": ev.request_uri, "url": url,
            "threatSuspected": "false",
        }},
        "legacyEventType": ev.legacy_event_type,
        "transaction": {
            "type": if who.job { "JOB" } else { "WEB" }, "id": transaction_id, "detail": who.detail,
        },
        "request": { "ipChain": ip_chain(origin) },
        "target": ev.target,
    })
}

/// `user.mfa.factor.deactivate` for `target`, factor type like "FIDO_WEBAUTHN", "OKTA_VERIFY_PUSH",
/// "SMS", by `initiator`: one `User` target plus one `AuthenticatorEnrollment` target for the
/// factor, outcome reason `"User reset <FACTOR> factor"`. `transaction_id` sets `transaction.id`
/// (Okta Support always gets `"unknown"`); pass the same id to several calls for the Identity
/// Engine shape of a "reset all" (one event per factor).
pub fn mfa_factor_deactivate(
    target: &SampleUser,
    factor: &str,
    initiator: Initiator,
    transaction_id: &str,
) -> Value {
    let (enrollment_id, enrollment) = enrollment(factor);
    let uri = uri_for(
        initiator,
        format!("/idp/myaccount/authenticators/{enrollment_id}"),
        format!("/api/v1/users/{}/factors/{enrollment_id}", target.id),
    );
    let ev = Event {
        event_type: "user.mfa.factor.deactivate",
        display_message: "Reset factor for user",
        legacy_event_type: Some("core.user.factor.deactivate"),
        result: "SUCCESS",
        reason: Some(format!("User reset {factor} factor")),
        request_uri: uri,
        target: json!([user_entity(target), enrollment]),
    };
    log_event(Who::of(initiator, target), Some(transaction_id), ev)
}

/// `user.mfa.factor.reset_all` (Classic): displayMessage "Reset all factors for user",
/// legacyEventType "core.user.factor.reset_all", debugContext.debugData.requestUri
/// "/api/v1/users/{id}/lifecycle/reset_factors" when the initiator is ApiToken or Admin
/// (`null` for Okta Support, which makes no HTTP request).
pub fn mfa_factor_reset_all(target: &SampleUser, initiator: Initiator) -> Value {
    let ev = Event {
        event_type: "user.mfa.factor.reset_all",
        display_message: "Reset all factors for user",
        legacy_event_type: Some("core.user.factor.reset_all"),
        result: "SUCCESS",
        reason: None,
        request_uri: uri_for(
            initiator,
            "/idp/myaccount/authenticators".to_owned(),
            format!("/api/v1/users/{}/lifecycle/reset_factors", target.id),
        ),
        target: json!([user_entity(target)]),
    };
    log_event(Who::of(initiator, target), None, ev)
}

/// `user.session.start` success for a user, from an ip.
pub fn session_start(user: &SampleUser, ip: &str) -> Value {
    let password = entity(
        &okta_id("lae"),
        "AuthenticatorEnrollment",
        "unknown",
        "Password",
    );
    let ev = Event {
        event_type: "user.session.start",
        display_message: "User login to Okta",
        legacy_event_type: Some("core.user_auth.login_success"),
        result: "SUCCESS",
        reason: None,
        request_uri: Some("/idp/idx/identify".to_owned()),
        target: json!([password, app_entity(&APPS[0])]),
    };
    log_event(Who::user(user, ip), None, ev)
}

/// `user.account.reset_password` for a user by an initiator.
pub fn password_reset(target: &SampleUser, initiator: Initiator) -> Value {
    let ev = Event {
        event_type: "user.account.reset_password",
        display_message: "Reset password for user",
        legacy_event_type: Some("core.user.config.user_status.password_reset"),
        result: "SUCCESS",
        reason: None,
        request_uri: uri_for(
            initiator,
            "/idp/idx/challenge/answer".to_owned(),
            format!("/api/v1/users/{}/lifecycle/reset_password", target.id),
        ),
        target: json!([user_entity(target)]),
    };
    log_event(Who::of(initiator, target), None, ev)
}

/// `user.mfa.factor.activate` (re-enrolment) for a user.
pub fn mfa_factor_activate(target: &SampleUser, factor: &str) -> Value {
    let (_, enrollment) = enrollment(factor);
    let ev = Event {
        event_type: "user.mfa.factor.activate",
        display_message: "Activate factor or authenticator enrollment method for user",
        legacy_event_type: Some("core.user.factor.activate"),
        result: "SUCCESS",
        reason: None,
        request_uri: Some("/idp/idx/challenge/answer".to_owned()),
        target: json!([user_entity(target), enrollment]),
    };
    log_event(Who::of(Initiator::SelfService, target), None, ev)
}

/// `event_type` about `target` by `initiator`, for the event types without a builder of their
/// own: a `User` target for `target` followed by `other_targets`, outcome `SUCCESS`, no legacy
/// type. `request_uri` is the API path an admin, token or app calls (a user's own action gets
/// the Identity Engine's `/idp/idx/challenge/answer`).
pub fn user_event(
    event_type: &str,
    display_message: &str,
    target: &SampleUser,
    initiator: Initiator,
    other_targets: Vec<Value>,
) -> Value {
    let mut targets = vec![user_entity(target)];
    targets.extend(other_targets);
    let ev = Event {
        event_type,
        display_message,
        legacy_event_type: None,
        result: "SUCCESS",
        reason: None,
        request_uri: uri_for(
            initiator,
            "/idp/idx/challenge/answer".to_owned(),
            format!("/api/v1/users/{}", target.id),
        ),
        target: Value::Array(targets),
    };
    log_event(Who::of(initiator, target), None, ev)
}

/// `event_type` done by the sample admin (in the Admin Console) to `targets`, which name no
/// user: an org-wide change such as a policy rule or an identity provider.
pub fn admin_event(event_type: &str, display_message: &str, targets: Vec<Value>) -> Value {
    let admin = admin();
    let ev = Event {
        event_type,
        display_message,
        legacy_event_type: None,
        result: "SUCCESS",
        reason: None,
        request_uri: Some("/api/v1/policies".to_owned()),
        target: Value::Array(targets),
    };
    log_event(Who::of(Initiator::Admin, &admin), None, ev)
}

/// A `target` entry `{id, type, alternateId, displayName, detailEntry: null}`, as Okta writes
/// every target, for building events with [`user_event`] and [`admin_event`].
pub fn target_entity(id: &str, kind: &str, alternate_id: &str, display_name: &str) -> Value {
    entity(id, kind, alternate_id, display_name)
}

/// The `AuthenticatorEnrollment` target of a fresh enrollment of `factor` ("SMS", "FIDO_WEBAUTHN"),
/// as factor events name it.
pub fn enrollment_target(factor: &str) -> Value {
    enrollment(factor).1
}

/// Okta's event hook cap: 400,000 delivered events per org per 24 hours.
pub const EVENT_HOOK_DAILY_CAP: u64 = 400_000;
/// Where Okta warns that the org nears [`EVENT_HOOK_DAILY_CAP`].
pub const EVENT_HOOK_DAILY_WARNING: u64 = 280_000;

/// `system.org.rate_limit.warning` for the event hooks' daily cap, with `count` events delivered
/// in the 24 hours so far. Okta documents the event type and the numbers
/// ([`EVENT_HOOK_DAILY_CAP`], [`EVENT_HOOK_DAILY_WARNING`]) but not which `debugData` keys name
/// the limit and the count: the keys here (`limit`, `threshold`, `count`, `timeSpan`,
/// `timeUnit`) stand in for whatever Okta writes, so a test should check that the values reach
/// an alert, not rely on the names. Okta itself is the actor (`SystemPrincipal`); no target.
pub fn event_hook_cap_warning(count: u64) -> Value {
    let ev = Event {
        event_type: "system.org.rate_limit.warning",
        display_message: "Rate limit warning",
        legacy_event_type: None,
        result: "SUCCESS",
        reason: None,
        request_uri: None,
        target: Value::Null,
    };
    let mut event = log_event(Who::okta_system(), None, ev);
    event["severity"] = json!("WARN");
    let debug_data = &mut event["debugContext"]["debugData"];
    for (key, value) in [
        ("limit", EVENT_HOOK_DAILY_CAP.to_string()),
        ("threshold", EVENT_HOOK_DAILY_WARNING.to_string()),
        ("count", count.to_string()),
        ("timeSpan", "24".to_owned()),
        ("timeUnit", "HOURS".to_owned()),
    ] {
        debug_data[key] = json!(value);
    }
    event
}

/// One of the non-MFA event kinds of [`mixed_batch`], picked by `kind` (0..6).
fn everyday_event(kind: u32, user: &SampleUser, ip: &str, app: &App, factor: &str) -> Value {
    if kind == 0 {
        return session_start(user, ip);
    }
    let mut who = Who::user(user, ip);
    let sso_uri = format!("/app/{}/{}/sso/saml", app.slug, app.id);
    let ev = match kind {
        1 => Event {
            event_type: "user.authentication.sso",
            display_message: "User single sign on to app",
            legacy_event_type: Some("app.auth.sso"),
            result: "SUCCESS",
            reason: None,
            request_uri: Some(sso_uri),
            target: json!([app_entity(app), app_user_entity(user)]),
        },
        2 => Event {
            event_type: "user.session.end",
            display_message: "User logout from Okta",
            legacy_event_type: Some("core.user_auth.logout_success"),
            result: "SUCCESS",
            reason: None,
            request_uri: Some("/login/signout".to_owned()),
            target: Value::Null,
        },
        3 => {
            who = Who::of(Initiator::Admin, user);
            Event {
                event_type: "application.user_membership.add",
                display_message: "Add user to application membership",
                legacy_event_type: Some("application.user_membership.add"),
                result: "SUCCESS",
                reason: None,
                request_uri: Some(format!("/api/v1/apps/{}/users", app.id)),
                target: json!([app_user_entity(user), app_entity(app), user_entity(user)]),
            }
        }
        4 => Event {
            event_type: "policy.evaluate_sign_on",
            display_message: "Evaluation of sign-on policy",
            legacy_event_type: None,
            result: "ALLOW",
            reason: Some("Sign-on policy evaluation resulted in ALLOW".to_owned()),
            request_uri: Some(sso_uri),
            target: json!([
                entity(
                    "rst3kq1acsPlcy0a51d7",
                    "PolicyEntity",
                    "unknown",
                    "Default Policy"
                ),
                entity(
                    "rul3kq2ctchA1lRu01d7",
                    "PolicyRule",
                    "unknown",
                    "Catch-all Rule"
                ),
                app_entity(app),
            ]),
        },
        _ => {
            who.via_factor = true;
            Event {
                event_type: "user.authentication.auth_via_mfa",
                display_message: "Authentication of user via MFA",
                legacy_event_type: Some("core.user.factor.attempt_success"),
                result: "SUCCESS",
                reason: None,
                request_uri: Some("/idp/idx/challenge/answer".to_owned()),
                target: json!([enrollment(factor).1]),
            }
        }
    };
    log_event(who, None, ev)
}

/// A mixed batch of `len` events for load and demos: about one in ten an MFA event (deactivate or
/// reset_all, with varied initiators and factors), the rest other eligible types with full bodies
/// (user.session.start, user.authentication.sso, user.session.end,
/// application.user_membership.add, policy.evaluate_sign_on, user.authentication.auth_via_mfa).
/// Deterministic in shape given the rng, fresh uuids always.
pub fn mixed_batch(rng: &mut impl Rng, len: usize) -> Vec<Value> {
    use Initiator::{Admin, ApiToken, OktaSupport, SelfService};
    let users = users();
    (0..len)
        .map(|_| {
            // Draw every choice each round so the shape depends on the rng alone.
            let user = &users[rng.random_range(0..users.len() - 1)]; // anyone but the admin
            let net = if rng.random_bool(0.5) {
                USER_NET
            } else {
                ADMIN_NET
            };
            let ip = format!("{net}.{}", rng.random_range(1..255));
            let factor = BATCH_FACTORS[rng.random_range(0..BATCH_FACTORS.len())];
            let app = &APPS[rng.random_range(0..APPS.len())];
            let kind = rng.random_range(0..6);
            let initiator = [SelfService, Admin, ApiToken, OktaSupport][rng.random_range(0..4)];
            // Nobody resets all their own factors: an admin, a token or support does.
            let resetter = if initiator == SelfService {
                Admin
            } else {
                initiator
            };
            match (rng.random_ratio(1, 10), rng.random_ratio(1, 4)) {
                (true, true) => mfa_factor_reset_all(user, resetter),
                (true, false) => mfa_factor_deactivate(user, factor, initiator, &request_id()),
                (false, _) => everyday_event(kind, user, &ip, app, factor),
            }
        })
        .collect()
}

/// True for the MFA reset event types (`user.mfa.factor.deactivate`, `user.mfa.factor.reset_all`):
/// the ones the built-in rules alert on.
pub fn is_mfa_reset(event: &Value) -> bool {
    matches!(
        event["eventType"].as_str(),
        Some("user.mfa.factor.deactivate" | "user.mfa.factor.reset_all")
    )
}

/// Org the simulated envelopes claim to come from (`simulate`, `demo`, the load generator).
pub const SIMULATED_ORG: &str = "factorwatch-demo.okta.com";
/// Hook id of the simulated envelopes.
pub const SIMULATED_HOOK_ID: &str = "who0simulated0000001";

/// Wrap events in an Okta event-hook envelope exactly like Okta sends: eventType
/// "com.okta.event_hook", eventTypeVersion "1.0", cloudEventsVersion "0.1", source
/// "https://{org}/api/v1/eventHooks/{hook_id}", a fresh eventId, eventTime now, contentType
/// "application/json", data.events.
pub fn envelope(org: &str, hook_id: &str, events: Vec<Value>) -> Value {
    json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "source": format!("https://{org}/api/v1/eventHooks/{hook_id}"),
        "eventId": Uuid::new_v4().to_string(),
        "data": { "events": events },
        "eventTime": now(),
        "contentType": "application/json",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const FIELDS: [&str; 17] = [
        "uuid",
        "published",
        "eventType",
        "version",
        "severity",
        "displayMessage",
        "actor",
        "client",
        "device",
        "authenticationContext",
        "securityContext",
        "debugContext",
        "legacyEventType",
        "outcome",
        "transaction",
        "request",
        "target",
    ];

    fn assert_full(ev: &Value) {
        for f in FIELDS {
            assert!(ev.get(f).is_some(), "{f} missing in {ev}");
        }
        let published = ev["published"].as_str().unwrap();
        assert_eq!(published.len(), 24, "{published}");
        assert!(
            published.ends_with('Z') && &published[19..20] == ".",
            "{published}"
        );
        assert_eq!(
            Uuid::parse_str(ev["uuid"].as_str().unwrap())
                .unwrap()
                .get_version_num(),
            4
        );
        assert_eq!(ev["version"], "0");
        assert_eq!(ev["client"]["zone"], "null");
        assert_eq!(ev["debugContext"]["debugData"]["threatSuspected"], "false");
    }

    #[test]
    fn users_have_okta_ids() {
        let users = users();
        assert_eq!(users.len(), 4);
        assert!(
            users
                .iter()
                .all(|u| u.id.len() == 20 && u.id.starts_with("00u"))
        );
        assert!(users.iter().any(|u| u.login.starts_with("dana.admin")));
    }

    #[test]
    fn deactivate_shapes_by_initiator() {
        let alice = &users()[0];
        let ev = mfa_factor_deactivate(alice, "FIDO_WEBAUTHN", Initiator::SelfService, "TXN1");
        assert_full(&ev);
        assert_eq!(ev["eventType"], "user.mfa.factor.deactivate");
        assert_eq!(ev["outcome"]["reason"], "User reset FIDO_WEBAUTHN factor");
        assert_eq!(ev["actor"]["id"], alice.id.as_str());
        assert_eq!(ev["transaction"]["id"], "TXN1");
        assert_eq!(ev["target"][0]["type"], "User");
        assert_eq!(ev["target"][1]["type"], "AuthenticatorEnrollment");
        assert_eq!(ev["target"][1]["displayName"], "Security Key or Biometric");

        let ev = mfa_factor_deactivate(alice, "OKTA_VERIFY_PUSH", Initiator::ApiToken, "TXN2");
        assert_eq!(ev["actor"]["alternateId"], "dana.admin@example.com");
        assert!(
            ev["transaction"]["detail"]["requestApiTokenId"]
                .as_str()
                .unwrap()
                .starts_with("00T")
        );

        let ev = mfa_factor_deactivate(alice, "SMS", Initiator::OktaSupport, "TXN3");
        assert_full(&ev);
        assert_eq!(ev["actor"]["type"], "SystemPrincipal");
        assert_eq!(ev["actor"]["alternateId"], "system@okta.com");
        assert_eq!(ev["transaction"]["id"], "unknown");
        assert!(
            ev["client"]["userAgent"].is_null() && ev["client"]["geographicalContext"].is_null()
        );
    }

    #[test]
    fn reset_all_request_uri() {
        let bob = &users()[1];
        let ev = mfa_factor_reset_all(bob, Initiator::Admin);
        assert_full(&ev);
        assert_eq!(ev["legacyEventType"], "core.user.factor.reset_all");
        let uri = format!("/api/v1/users/{}/lifecycle/reset_factors", bob.id);
        assert_eq!(ev["debugContext"]["debugData"]["requestUri"], uri.as_str());
        let ev = mfa_factor_reset_all(bob, Initiator::OktaSupport);
        assert!(ev["debugContext"]["debugData"]["requestUri"].is_null());
    }

    #[test]
    fn batch_is_deterministic_in_shape_with_fresh_uuids() {
        let a = mixed_batch(&mut StdRng::seed_from_u64(7), 300);
        let b = mixed_batch(&mut StdRng::seed_from_u64(7), 300);
        let types = |v: &[Value]| v.iter().map(|e| e["eventType"].clone()).collect::<Vec<_>>();
        assert_eq!(types(&a), types(&b));
        assert_ne!(a[0]["uuid"], b[0]["uuid"]);
        a.iter().for_each(assert_full);
        let mfa = a
            .iter()
            .filter(|e| e["eventType"].as_str().unwrap().starts_with("user.mfa."))
            .count();
        assert!((10..=60).contains(&mfa), "{mfa} MFA events in 300");
    }

    #[test]
    fn envelope_shape() {
        let env = envelope(
            "example.okta.com",
            "who7hphp39JoHLni81d7",
            vec![session_start(&users()[2], "198.51.100.7")],
        );
        assert_eq!(env["eventType"], "com.okta.event_hook");
        assert_eq!(
            env["source"],
            "https://example.okta.com/api/v1/eventHooks/who7hphp39JoHLni81d7"
        );
        assert_eq!(env["data"]["events"].as_array().unwrap().len(), 1);
        assert_full(&env["data"]["events"][0]);
    }
}
