//! The Event Hooks API, `/api/v1/eventHooks` (README §d, spec tag EventHook): list, create, get,
//! replace, delete, activate, deactivate and verify, with the scopes `okta.eventHooks.read` and
//! `okta.eventHooks.manage`, the bucket of the Event Hooks family, and a System Log event per
//! change ([`super::audit`]).
//!
//! Server-assigned: `id` (`who…`), `created`, `lastUpdated`, `createdBy`, `status` (`ACTIVE` on
//! create, per the spec's createEventHook), `verificationStatus` (`UNVERIFIED` until verified:
//! shared/okta/README.md §7; README §d notes the spec's create example reuses a VERIFIED hook),
//! `channel.config.method` (`POST`) and `_links`. Answers never carry `authScheme.value`
//! (`writeOnly`) and echo `authScheme.key` lowercased, as every example of the spec does.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::HeaderMap;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use factorwatch::okta::hook_eligible::is_hook_eligible;
use factorwatch::okta::samples;
use serde_json::{Value, json};

use super::api::{Family, Operation, validation_failed};
use super::audit::{self, Actor, Change};
use super::auth::Caller;
use super::challenge::{self, Target};
use super::{Answer, OktaStandIn, Quota, Shared, State as OrgState, okta_id};

/// The collection's path.
const HOOKS: &str = "/api/v1/eventHooks";
/// One hook's path template.
const HOOK: &str = "/api/v1/eventHooks/{eventHookId}";
const READ: &str = "okta.eventHooks.read";
const MANAGE: &str = "okta.eventHooks.manage";
/// README §d [CONCEPT]: "max 300 event types per hook".
const MAX_EVENT_TYPES: usize = 300;
/// The only values the spec allows (README §d: "the only values").
const CHANNEL_TYPE: &str = "HTTP";
const CHANNEL_VERSION: &str = "1.0.0";
const SUBSCRIPTION_TYPE: &str = "EVENT_TYPE";
const AUTH_SCHEME_TYPE: &str = "HEADER";

/// An operation of the Event Hooks API (all share its bucket).
const fn operation(
    id: &'static str,
    template: &'static str,
    method: &'static str,
    scope: &'static str,
    unlisted: &'static [u16],
) -> Operation {
    Operation {
        id,
        template,
        method,
        scope,
        family: Family::EventHooks,
        unlisted,
    }
}

const LIST: Operation = operation("listEventHooks", HOOKS, "GET", READ, &[]);
const CREATE: Operation = operation("createEventHook", HOOKS, "POST", MANAGE, &[]);
const GET: Operation = operation("getEventHook", HOOK, "GET", READ, &[]);
const REPLACE: Operation = operation("replaceEventHook", HOOK, "PUT", MANAGE, &[]);
/// The spec lists no 400 for deleteEventHook, though it says only `INACTIVE` hooks can be
/// deleted and README §d repeats it without naming the answer; shared/okta documents no other
/// status for a refused request, so the stand-in answers Okta's usual 400 E0000001.
const DELETE: Operation = operation("deleteEventHook", HOOK, "DELETE", MANAGE, &[400]);
const ACTIVATE: Operation = operation(
    "activateEventHook",
    "/api/v1/eventHooks/{eventHookId}/lifecycle/activate",
    "POST",
    MANAGE,
    &[],
);
const DEACTIVATE: Operation = operation(
    "deactivateEventHook",
    "/api/v1/eventHooks/{eventHookId}/lifecycle/deactivate",
    "POST",
    MANAGE,
    &[],
);
const VERIFY: Operation = operation(
    "verifyEventHook",
    "/api/v1/eventHooks/{eventHookId}/lifecycle/verify",
    "POST",
    MANAGE,
    &[],
);

/// A hook as the org holds it: the whole object, `authScheme.value` included, without the
/// answer-only members (`_links`, `channel.config.method`).
pub(super) struct StoredHook {
    pub(super) hook: Value,
}

impl StoredHook {
    fn id(&self) -> &str {
        self.hook["id"].as_str().unwrap_or_default()
    }

    fn name(&self) -> String {
        self.hook["name"].as_str().unwrap_or_default().to_owned()
    }

    /// The hook as the API answers it.
    fn view(&self, org_url: &str) -> Value {
        let mut view = self.hook.clone();
        let config = &mut view["channel"]["config"];
        config["method"] = json!("POST");
        if let Some(scheme) = config["authScheme"].as_object_mut() {
            scheme.remove("value");
            if let Some(key) = scheme.get("key").and_then(Value::as_str) {
                let lowered = key.to_ascii_lowercase();
                scheme.insert("key".to_owned(), json!(lowered));
            }
        }
        let href = format!("{org_url}{HOOKS}/{}", self.id());
        let post = |href: String| json!({"href": href, "hints": {"allow": ["POST"]}});
        // The examples show these three links whatever the status (even on an INACTIVE hook).
        view["_links"] = json!({
            "self": {"href": href},
            "verify": post(format!("{href}/lifecycle/verify")),
            "deactivate": post(format!("{href}/lifecycle/deactivate")),
        });
        view
    }

    /// What the verification GET sends: the custom headers, then the auth header.
    fn target(&self) -> Target {
        let config = &self.hook["channel"]["config"];
        let pair = |entry: &Value| {
            let text = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
            (text("key"), text("value"))
        };
        let mut headers: Vec<(String, String)> = config["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(pair)
            .collect();
        if config["authScheme"].is_object() {
            headers.push(pair(&config["authScheme"]));
        }
        Target {
            uri: config["uri"].as_str().unwrap_or_default().to_owned(),
            headers,
        }
    }
}

/// Adds the Event Hooks routes to `router`.
pub(super) fn routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router
        .route(HOOKS, get(list).post(create))
        .route(HOOK, get(read).put(replace).delete(delete))
        .route(ACTIVATE.template, post(activate))
        .route(DEACTIVATE.template, post(deactivate))
        .route(VERIFY.template, post(verify))
}

/// A request to an operation once authorized.
struct Call<'a> {
    shared: &'a Shared,
    caller: Caller,
    uri: &'a Uri,
    /// `{eventHookId}`, for the operations on one hook.
    id: Option<String>,
}

impl Call<'_> {
    fn actor(&self) -> Actor {
        Actor::of(&self.caller.principal)
    }

    /// The path and query of the request, as System Log `debugData.url` has it.
    fn request_uri(&self) -> String {
        self.uri
            .path_and_query()
            .map_or_else(|| self.uri.path().to_owned(), |p| p.as_str().to_owned())
    }

    /// The System Log event of `verb` on `hook`, by the caller, through this request.
    fn event(&self, verb: &str, hook: &StoredHook, success: bool) -> Value {
        let request_uri = self.request_uri();
        Change {
            verb,
            hook_id: hook.id(),
            hook_name: &hook.name(),
            actor: &self.actor(),
            request_uri: Some(&request_uri),
            success,
        }
        .event()
    }

    /// Runs `change` on the hook of the path, or answers 404.
    fn with_hook(&self, change: impl FnOnce(&mut OrgState, usize) -> Answer) -> Answer {
        let mut state = self.shared.lock();
        let id = self.id.as_deref().unwrap_or_default();
        match state.hooks.iter().position(|h| h.id() == id) {
            Some(index) => change(&mut state, index),
            None => not_found(id),
        }
    }

    /// 200 with the hook at `index`.
    fn hook_answer(&self, state: &OrgState, index: usize) -> Answer {
        Answer::json(
            StatusCode::OK,
            state.hooks[index].view(&self.shared.org_url),
        )
    }
}

/// Records the request, takes its quota and authorizes it; runs `work` if authorized; checks,
/// records and answers.
fn serve(
    shared: &Shared,
    operation: &Operation,
    uri: &Uri,
    headers: &HeaderMap,
    id: Option<String>,
    work: impl FnOnce(&Call) -> Answer,
) -> Response {
    let (index, quota, call) = begin(shared, operation, uri, headers, id);
    let answer = match call {
        Ok(call) => work(&call),
        Err(answer) => answer,
    };
    operation.finish(shared, index, answer, quota)
}

fn begin<'a>(
    shared: &'a Shared,
    operation: &Operation,
    uri: &'a Uri,
    headers: &HeaderMap,
    id: Option<String>,
) -> (usize, Quota, Result<Call<'a>, Answer>) {
    let index = shared.record(operation.method, uri, Vec::new(), headers);
    if uri.query().is_some_and(|q| !q.is_empty()) {
        // No Event Hooks operation has a query parameter (README §d: "no paging params").
        shared.violation(format!("{} has no query parameters", operation.id));
    }
    let quota = operation.take_quota(shared);
    let call = operation
        .authorize(shared, headers, uri.path(), quota)
        .map(|caller| Call {
            shared,
            caller,
            uri,
            id,
        });
    (index, quota, call)
}

async fn list(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    serve(&shared, &LIST, &uri, &headers, None, |call| {
        let state = call.shared.lock();
        let hooks = state.hooks.iter().map(|h| h.view(&call.shared.org_url));
        Answer::json(StatusCode::OK, Value::Array(hooks.collect()))
    })
}

async fn read(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&shared, &GET, &uri, &headers, Some(id), |call| {
        call.with_hook(|state, index| call.hook_answer(state, index))
    })
}

async fn create(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&shared, &CREATE, &uri, &headers, None, |call| {
        let hook = match accepted_body(call.shared, &CREATE, &headers, &body) {
            Ok(hook) => hook,
            Err(answer) => return answer,
        };
        // `createdBy` is "the ID of the user who created the event hook"; for a service app,
        // which is no user, the stand-in gives its client id (the spec is silent).
        let stored = new_hook(hook, &call.actor().id, true, false);
        let mut state = call.shared.lock();
        state.append_log(call.event("created", &stored, true));
        state.hooks.push(stored);
        call.hook_answer(&state, state.hooks.len() - 1)
    })
}

async fn replace(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&shared, &REPLACE, &uri, &headers, Some(id), |call| {
        let sent = match accepted_body(call.shared, &REPLACE, &headers, &body) {
            Ok(hook) => hook,
            Err(answer) => return answer,
        };
        call.with_hook(|state, index| {
            replace_writable(&mut state.hooks[index].hook, sent);
            let event = call.event("updated", &state.hooks[index], true);
            state.append_log(event);
            call.hook_answer(state, index)
        })
    })
}

async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&shared, &DELETE, &uri, &headers, Some(id), |call| {
        call.with_hook(|state, index| {
            if state.hooks[index].hook["status"] == "ACTIVE" {
                return validation_failed(
                    "eventHook",
                    &["Only an INACTIVE event hook can be deleted: deactivate it first."],
                );
            }
            let removed = state.hooks.remove(index);
            state.append_log(call.event("deleted", &removed, true));
            Answer::no_content()
        })
    })
}

async fn activate(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&shared, &ACTIVATE, &uri, &headers, Some(id), |call| {
        set_status(call, "ACTIVE", "activated")
    })
}

async fn deactivate(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&shared, &DEACTIVATE, &uri, &headers, Some(id), |call| {
        set_status(call, "INACTIVE", "deactivated")
    })
}

/// Sets the hook's `status` and logs `verb`. Shared/okta says nothing of activating an active
/// hook; the stand-in answers 200 and logs it again, as it changes nothing worth refusing.
fn set_status(call: &Call, status: &str, verb: &str) -> Answer {
    call.with_hook(|state, index| {
        let hook = &mut state.hooks[index].hook;
        hook["status"] = json!(status);
        hook["lastUpdated"] = json!(audit::now());
        let event = call.event(verb, &state.hooks[index], true);
        state.append_log(event);
        call.hook_answer(state, index)
    })
}

/// The verification: the GET to the hook happens without the state lock held.
async fn verify(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (index, quota, call) = begin(&shared, &VERIFY, &uri, &headers, Some(id.clone()));
    let answer = match call {
        Ok(call) => verify_hook(&call, &id).await,
        Err(answer) => answer,
    };
    VERIFY.finish(&shared, index, answer, quota)
}

async fn verify_hook(call: &Call<'_>, id: &str) -> Answer {
    let target = {
        let state = call.shared.lock();
        match state.hooks.iter().find(|h| h.id() == id) {
            Some(hook) => hook.target(),
            None => return not_found(id),
        }
    };
    let outcome = challenge::verify(&target).await;
    for deviation in outcome.deviations {
        call.shared.violation(deviation);
    }
    call.with_hook(|state, index| {
        let verified = outcome.failure.is_none();
        if verified {
            let hook = &mut state.hooks[index].hook;
            hook["verificationStatus"] = json!("VERIFIED");
            hook["lastUpdated"] = json!(audit::now());
        }
        let event = call.event("verified", &state.hooks[index], verified);
        state.append_log(event);
        match &outcome.failure {
            None => call.hook_answer(state, index),
            // shared/okta/README.md §1: "the verify API fails with 400 E0000001"; the cause names
            // the hook like Okta's "Hook '<name>' execution failed" [KB].
            Some(why) => validation_failed(
                "eventHook",
                &[&format!(
                    "Unable to verify event hook. Hook '{}' execution failed: {why}",
                    state.hooks[index].name()
                )],
            ),
        }
    })
}

/// The body of a create or replace: JSON, checked against the spec's request schema (a deviation
/// is a client bug: a violation) and against what Okta validates (a 400 E0000001).
fn accepted_body(
    shared: &Shared,
    operation: &Operation,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, Answer> {
    let hook = operation.json_body(shared, headers, body)?;
    let problems = problems(&hook);
    if !problems.is_empty() {
        let problems: Vec<&str> = problems.iter().map(String::as_str).collect();
        return Err(validation_failed("eventHook", &problems));
    }
    Ok(hook)
}

/// What Okta refuses in a hook (spec schemas and README §d), each as an `errorCauses` summary.
fn problems(hook: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            found.push(what.to_owned());
        }
    };
    check(
        hook["name"].as_str().is_some_and(|n| !n.trim().is_empty()),
        "name: The field cannot be left blank.",
    );
    let events = &hook["events"];
    check(
        events["type"] == SUBSCRIPTION_TYPE,
        "events.type: must be EVENT_TYPE.",
    );
    let items: Vec<&str> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    check(
        !items.is_empty() && events["items"].as_array().map(Vec::len) == Some(items.len()),
        "events.items: must list at least one event type, as strings.",
    );
    check(
        items.len() <= MAX_EVENT_TYPES,
        "events.items: an event hook can subscribe to at most 300 event types.",
    );
    // The spec points to the catalog's `event-hook-eligible` types for what a hook can subscribe
    // to; an ineligible type could never be delivered.
    for item in items.iter().filter(|item| !is_hook_eligible(item)) {
        check(
            false,
            &format!("events.items: {item} is not eligible for event hooks."),
        );
    }
    let channel = &hook["channel"];
    check(
        channel["type"] == CHANNEL_TYPE,
        "channel.type: must be HTTP.",
    );
    check(
        channel["version"] == CHANNEL_VERSION,
        "channel.version: must be 1.0.0.",
    );
    let config = &channel["config"];
    check(
        config["uri"].as_str().is_some_and(allowed_uri),
        "channel.config.uri: must be an HTTPS URL.",
    );
    let scheme = &config["authScheme"];
    check(
        scheme.is_null()
            || (scheme["type"] == AUTH_SCHEME_TYPE
                && scheme["key"].as_str().is_some_and(|k| !k.is_empty())
                && scheme["value"].is_string()),
        "channel.config.authScheme: type HEADER with a key and a value.",
    );
    let headers_ok = config["headers"].as_array().is_none_or(|headers| {
        headers
            .iter()
            .all(|h| h["key"].as_str().is_some_and(|k| !k.is_empty()) && h["value"].is_string())
    });
    check(
        headers_ok,
        "channel.config.headers: each header needs a key and a value.",
    );
    found
}

/// "Your external service must use a valid HTTPS endpoint" (createEventHook). Tests also get
/// `http://127.0.0.1:PORT`: a hook server there needs no certificate the stand-in's client would
/// have to trust, and no real Okta org could ever call such a URL anyway.
fn allowed_uri(uri: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(uri) else {
        return false;
    };
    let loopback = url.host_str() == Some("127.0.0.1");
    url.host_str().is_some() && (url.scheme() == "https" || (url.scheme() == "http" && loopback))
}

/// A new stored hook from an accepted body: the writable members as sent, the rest assigned.
fn new_hook(sent: Value, created_by: &str, active: bool, verified: bool) -> StoredHook {
    let now = audit::now();
    let mut hook = json!({
        "id": okta_id("who"),
        "status": if active { "ACTIVE" } else { "INACTIVE" },
        "verificationStatus": if verified { "VERIFIED" } else { "UNVERIFIED" },
        "created": now,
        "createdBy": created_by,
        "lastUpdated": now,
    });
    replace_writable(&mut hook, sent);
    // A replace keeps the verification unless the channel changes; a new hook starts as set.
    hook["verificationStatus"] = json!(if verified { "VERIFIED" } else { "UNVERIFIED" });
    StoredHook { hook }
}

/// Replaces the writable members of `hook` with those `sent` (PUT replaces the whole object;
/// read-only members sent are ignored). Changing the `channel` resets `verificationStatus`
/// (replaceEventHook: "Updating the `channel` property requires you to verify the hook again";
/// shared/okta/README.md §1, §3: a new URL, headers or secret need verifying again).
fn replace_writable(hook: &mut Value, sent: Value) {
    let mut events = sent["events"].clone();
    events["filter"] = stored_filter(&events["filter"]);
    if hook["channel"] != sent["channel"] {
        hook["verificationStatus"] = json!("UNVERIFIED");
    }
    hook["name"] = sent["name"].clone();
    hook["description"] = sent["description"].clone();
    hook["events"] = events;
    hook["channel"] = sent["channel"].clone();
    hook["lastUpdated"] = json!(audit::now());
}

/// `events.filter` as Okta keeps it: `null` when none, else with the read-only `type`
/// (`EXPRESSION_LANGUAGE`) and `condition.version` (`null`) the examples show.
fn stored_filter(filter: &Value) -> Value {
    if !filter.is_object() {
        return Value::Null;
    }
    let mut filter = filter.clone();
    filter["type"] = json!("EXPRESSION_LANGUAGE");
    for entry in filter["eventFilterMap"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        entry["condition"]["version"] = Value::Null;
    }
    filter
}

/// 404 E0000007 for an unknown hook id.
fn not_found(id: &str) -> Answer {
    Answer::okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {id} (EventHook)"),
    )
}

/// A hook to seed with [`OktaStandIn::add_event_hook`], as an org would already have it.
#[derive(Debug, Clone)]
pub struct HookSeed {
    /// `name`.
    pub name: String,
    /// `channel.config.uri`.
    pub uri: String,
    /// `events.items`.
    pub events: Vec<String>,
    /// `channel.config.authScheme` key and value (header name and secret), if any.
    pub auth: Option<(String, String)>,
    /// `channel.config.headers`.
    pub headers: Vec<(String, String)>,
    /// `status`: ACTIVE when true.
    pub active: bool,
    /// `verificationStatus`: VERIFIED when true.
    pub verified: bool,
}

impl HookSeed {
    /// An ACTIVE, VERIFIED hook to `uri` for `events`, with an `Authorization` secret.
    pub fn new(name: &str, uri: &str, events: &[&str], secret: &str) -> Self {
        HookSeed {
            name: name.to_owned(),
            uri: uri.to_owned(),
            events: events.iter().map(|&e| e.to_owned()).collect(),
            auth: Some(("Authorization".to_owned(), secret.to_owned())),
            headers: Vec::new(),
            active: true,
            verified: true,
        }
    }

    /// The hook as a create request would send it.
    fn body(&self) -> Value {
        let headers: Vec<Value> = self
            .headers
            .iter()
            .map(|(key, value)| json!({"key": key, "value": value}))
            .collect();
        let mut config = json!({"uri": self.uri, "headers": headers});
        if let Some((key, value)) = &self.auth {
            config["authScheme"] = json!({"type": AUTH_SCHEME_TYPE, "key": key, "value": value});
        }
        json!({
            "name": self.name,
            "events": {"type": SUBSCRIPTION_TYPE, "items": self.events},
            "channel": {"type": CHANNEL_TYPE, "version": CHANNEL_VERSION, "config": config},
        })
    }
}

/// Test helpers: the org's hooks, read and changed without the API.
impl OktaStandIn {
    /// Adds a hook as if it existed before the test (no System Log event); returns its id. Its
    /// creator is the samples' admin.
    pub fn add_event_hook(&self, seed: &HookSeed) -> String {
        let admin = Actor::admin(&samples::users().pop().expect("the samples' admin"));
        let stored = new_hook(seed.body(), &admin.id, seed.active, seed.verified);
        let id = stored.id().to_owned();
        self.shared.lock().hooks.push(stored);
        id
    }

    /// Every hook as `GET /api/v1/eventHooks` answers it (no secret), in creation order.
    pub fn event_hooks(&self) -> Vec<Value> {
        let state = self.shared.lock();
        let org_url = &self.shared.org_url;
        state.hooks.iter().map(|h| h.view(org_url)).collect()
    }

    /// The secret (`authScheme.value`) of hook `id`, which the API never answers.
    pub fn event_hook_secret(&self, id: &str) -> Option<String> {
        let state = self.shared.lock();
        let hook = state.hooks.iter().find(|h| h.id() == id)?;
        let value = &hook.hook["channel"]["config"]["authScheme"]["value"];
        value.as_str().map(str::to_owned)
    }

    /// Changes hook `id` as `actor` would in the Admin Console (an attacker with an admin
    /// session): `edit` gets the stored object (`authScheme.value` included). Logs
    /// `event_hook.activated` / `.deactivated` when `status` changed, else `event_hook.updated`;
    /// a changed `channel` resets `verificationStatus`. Panics on an unknown id (a test mistake).
    pub fn edit_event_hook(&self, id: &str, actor: &Actor, edit: impl FnOnce(&mut Value)) {
        let mut state = self.shared.lock();
        let stored = find(&mut state, id);
        let before = stored.hook.clone();
        edit(&mut stored.hook);
        if stored.hook["channel"] != before["channel"] {
            stored.hook["verificationStatus"] = json!("UNVERIFIED");
        }
        stored.hook["lastUpdated"] = json!(audit::now());
        let verb = match (before["status"].as_str(), stored.hook["status"].as_str()) {
            (Some("INACTIVE"), Some("ACTIVE")) => "activated",
            (Some("ACTIVE"), Some("INACTIVE")) => "deactivated",
            _ => "updated",
        };
        let event = console_change(verb, stored, actor);
        state.append_log(event);
    }

    /// Deletes hook `id` as `actor` would in the Admin Console: deactivated first when ACTIVE
    /// (Okta deletes only INACTIVE hooks), each step logged. Panics on an unknown id.
    pub fn remove_event_hook(&self, id: &str, actor: &Actor) {
        let active = find(&mut self.shared.lock(), id).hook["status"] == "ACTIVE";
        if active {
            self.edit_event_hook(id, actor, |hook| hook["status"] = json!("INACTIVE"));
        }
        let mut state = self.shared.lock();
        let index = state.hooks.iter().position(|h| h.id() == id);
        let removed = state.hooks.remove(index.expect("the hook exists"));
        let event = console_change("deleted", &removed, actor);
        state.append_log(event);
    }
}

fn find<'a>(state: &'a mut OrgState, id: &str) -> &'a mut StoredHook {
    let found = state.hooks.iter_mut().find(|h| h.id() == id);
    found.unwrap_or_else(|| panic!("no event hook {id}"))
}

/// The System Log event of a change made in the Admin Console (no API request).
fn console_change(verb: &str, hook: &StoredHook, actor: &Actor) -> Value {
    Change {
        verb,
        hook_id: hook.id(),
        hook_name: &hook.name(),
        actor,
        request_uri: None,
        success: true,
    }
    .event()
}
