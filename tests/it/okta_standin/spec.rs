//! Okta's Management OpenAPI spec (tests/okta-api/management-openapi.yaml) and a schema walker for
//! the subset of OpenAPI 3.0 that the System Log, Event Hooks and Users operations use: `type`,
//! `properties`, `items`, `$ref`, `allOf`, `oneOf`, `anyOf`, `discriminator`, `enum`, `nullable`,
//! `required`, `additionalProperties`, `minLength`/`maxLength`, `pattern`, `minimum`/`maximum`,
//! `readOnly`/`writeOnly` and the `date-time` format. Any other structural keyword (`not`) is
//! reported, so a schema the walker cannot judge never passes silently.
//!
//! A `discriminator` decides: the value must fit the schema its `propertyName` maps to (which
//! holds the base schema again through `allOf`; the base's discriminator is not followed twice),
//! and a `oneOf` beside it is not counted, as OpenAPI tools read it. Without a mapping for the
//! value, `oneOf` needs exactly one branch to fit and `anyOf` at least one; a branch fits when
//! nothing but Okta's known quirks ([`Violation::is_okta_quirk`]) differ.

use std::sync::LazyLock;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where the spec is committed (with its source line) so that CI has it.
const SPEC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/okta-api/management-openapi.yaml"
);

/// Keywords that change what a value may be and that the walker does not implement.
const UNSUPPORTED: [&str; 1] = ["not"];

/// The parsed spec, loaded once per test binary (parsing 3.4 MB of YAML takes a moment).
static SPEC: LazyLock<Spec> = LazyLock::new(|| {
    let text = std::fs::read_to_string(SPEC_PATH)
        .unwrap_or_else(|e| panic!("read the Okta spec {SPEC_PATH}: {e}"));
    let root = yaml_serde::from_str(&text).expect("the Okta spec is YAML");
    Spec { root }
});

/// Okta's Management API spec.
pub struct Spec {
    root: Value,
}

/// One way a value differs from its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Where in the value, as a JSON Pointer-like path (`/0/client/zone`).
    pub path: String,
    /// What is wrong.
    pub kind: ViolationKind,
}

/// What a [`Violation`] is.
#[derive(Debug, Clone, PartialEq)]
pub enum ViolationKind {
    /// `null` where the schema does not say `nullable`.
    Null,
    /// Another JSON type than the schema's `type`.
    Type {
        /// The schema's type.
        expected: String,
        /// The value's type.
        found: &'static str,
    },
    /// A value outside the schema's `enum`.
    Enum(Value),
    /// A `required` property is absent.
    Required(String),
    /// A property that `additionalProperties: false` forbids.
    Additional(String),
    /// A string shorter than `minLength` or longer than `maxLength`.
    Length(usize),
    /// A string that does not match the schema's `pattern`.
    Pattern(String),
    /// A number below `minimum` or above `maximum`.
    Range(f64),
    /// A value that fits this many `oneOf` branches instead of exactly one.
    OneOf(usize),
    /// A value that fits no `anyOf` branch.
    AnyOf,
    /// A string that is not in the schema's `format` (only `date-time` is checked).
    Format(String),
    /// A `readOnly` property in a request (OpenAPI 3.0: it "SHOULD NOT be sent").
    ReadOnly(String),
    /// A `writeOnly` property in an answer (a secret such as a hook's `authScheme.value`).
    WriteOnly(String),
    /// The schema uses a keyword this walker does not implement.
    Unsupported(String),
}

/// Which way a value travels, which decides whether `readOnly` or `writeOnly` members are wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Direction {
    /// Neither is checked (Okta's examples mix request and answer shapes).
    Either,
    /// To Okta: `readOnly` members are violations, and `required` does not apply to them.
    Request,
    /// From Okta: `writeOnly` members are violations.
    Answer,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {:?}", self.path, self.kind)
    }
}

impl Violation {
    /// The deviations of Okta's own answers from its spec, visible in its official examples (see
    /// tests/okta-api/examples and `factorwatch::okta::samples`): `null` for absent values of
    /// properties not marked `nullable`, and numbers for `postalCode` and `version`. A check of
    /// what Okta would send tolerates these; anything else is a real violation.
    pub fn is_okta_quirk(&self) -> bool {
        match &self.kind {
            ViolationKind::Null => true,
            ViolationKind::Type { expected, found } => {
                expected == "string"
                    && *found == "number"
                    && (self.path.ends_with("/postalCode") || self.path.ends_with("/version"))
            }
            _ => false,
        }
    }
}

/// A query parameter of an operation.
#[derive(Debug, Clone)]
pub struct Parameter {
    /// Its name.
    pub name: String,
    /// Its schema's `type`.
    pub kind: String,
    /// Its schema's `enum`, if any.
    pub allowed: Option<Vec<String>>,
}

impl Spec {
    /// The spec, parsed on first use.
    pub fn get() -> &'static Spec {
        &SPEC
    }

    /// The operation at `path` and `method` (lowercase); panics if the spec has none.
    fn operation(&self, path: &str, method: &str) -> &Value {
        let operation = &self.root["paths"][path][method];
        assert!(operation.is_object(), "the spec has no {method} {path}");
        operation
    }

    /// The query parameters the spec lists for the operation.
    pub fn query_parameters(&self, path: &str, method: &str) -> Vec<Parameter> {
        let listed = self.operation(path, method)["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        listed
            .iter()
            .map(|p| self.resolve(p))
            .filter(|p| p["in"] == "query")
            .map(|p| Parameter {
                name: p["name"].as_str().unwrap_or_default().to_owned(),
                kind: p["schema"]["type"].as_str().unwrap_or_default().to_owned(),
                allowed: p["schema"]["enum"].as_array().map(|values| {
                    values
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                }),
            })
            .collect()
    }

    /// The JSON schema of the answer with `status` to the operation, `None` when the operation does
    /// not list that status. Okta-wide answers it leaves out (401 for a bad token, 5xx) resolve to
    /// the spec's shared `ErrorInvalidToken401` and `ErrorInternalServer500` responses.
    pub fn response_schema(&self, path: &str, method: &str, status: u16) -> Option<&Value> {
        self.response(path, method, status)
            .and_then(Self::content_schema)
    }

    /// The response with `status` of the operation (its description and content), `None` when
    /// the operation does not list it; 401 and 5xx fall back as in [`Spec::response_schema`].
    pub fn response(&self, path: &str, method: &str, status: u16) -> Option<&Value> {
        let listed = &self.operation(path, method)["responses"][status.to_string()];
        match status {
            _ if listed.is_object() => Some(self.resolve(listed)),
            401 | 500..=599 => self.shared_response(status),
            _ => None,
        }
    }

    /// Okta's shared response (`components.responses`) for an error status, the one the spec's
    /// operations refer to for it.
    pub fn shared_response(&self, status: u16) -> Option<&Value> {
        let name = match status {
            400 => "ErrorApiValidationFailed400",
            401 => "ErrorInvalidToken401",
            403 => "ErrorAccessDenied403",
            404 => "ErrorResourceNotFound404",
            429 => "ErrorTooManyRequests429",
            500..=599 => "ErrorInternalServer500",
            _ => return None,
        };
        Some(&self.root["components"]["responses"][name])
    }

    /// The JSON schema of a response's content, `None` for a response without a body.
    pub fn content_schema(response: &Value) -> Option<&Value> {
        let schema = &response["content"]["application/json"]["schema"];
        schema.as_object().map(|_| schema)
    }

    /// The JSON schema of the operation's request body; panics if it has none.
    pub fn request_schema(&self, path: &str, method: &str) -> &Value {
        let body = self.resolve(&self.operation(path, method)["requestBody"]);
        Self::content_schema(body)
            .unwrap_or_else(|| panic!("{method} {path} takes no JSON body in the spec"))
    }

    /// The schema named `name` under `components.schemas`.
    pub fn schema(&self, name: &str) -> &Value {
        let schema = &self.root["components"]["schemas"][name];
        assert!(schema.is_object(), "the spec has no schema {name}");
        schema
    }

    /// Follows `$ref`s (local ones, `#/...`) until a node without one.
    fn resolve<'a>(&'a self, mut node: &'a Value) -> &'a Value {
        while let Some(reference) = node["$ref"].as_str() {
            let pointer = reference.strip_prefix('#').unwrap_or(reference);
            node = self
                .root
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference} in the Okta spec"));
        }
        node
    }

    /// Every way `value` differs from `schema`, strictly as the spec says.
    pub fn validate(&self, schema: &Value, value: &Value) -> Vec<Violation> {
        self.validate_going(Direction::Either, schema, value)
    }

    /// [`Spec::validate`] less Okta's known quirks ([`Violation::is_okta_quirk`]).
    pub fn validate_as_okta_sends(&self, schema: &Value, value: &Value) -> Vec<Violation> {
        let mut found = self.validate(schema, value);
        found.retain(|v| !v.is_okta_quirk());
        found
    }

    /// What the stand-in answers: [`Spec::validate_as_okta_sends`], and no `writeOnly` member.
    pub fn validate_answer(&self, schema: &Value, value: &Value) -> Vec<Violation> {
        let mut found = self.validate_going(Direction::Answer, schema, value);
        found.retain(|v| !v.is_okta_quirk());
        found
    }

    /// What a client sends: strictly as the spec says, and no `readOnly` member.
    pub fn validate_request(&self, schema: &Value, value: &Value) -> Vec<Violation> {
        self.validate_going(Direction::Request, schema, value)
    }

    fn validate_going(
        &self,
        direction: Direction,
        schema: &Value,
        value: &Value,
    ) -> Vec<Violation> {
        let mut walk = Walk {
            spec: self,
            direction,
            found: Vec::new(),
            dispatching: Vec::new(),
        };
        walk.value(schema, value, String::new());
        walk.found
    }

    /// Whether a property's schema says `keyword` (`readOnly`, `writeOnly`): on the property
    /// itself (beside a `$ref`, as the spec writes it), where it refers, or in an `allOf` branch.
    fn is_marked(&self, keyword: &str, node: &Value) -> bool {
        let resolved = self.resolve(node);
        node[keyword] == true
            || resolved[keyword] == true
            || resolved["allOf"]
                .as_array()
                .is_some_and(|branches| branches.iter().any(|b| self.is_marked(keyword, b)))
    }
}

/// One validation of a value: the spec, the direction and what was found so far.
struct Walk<'a> {
    spec: &'a Spec,
    direction: Direction,
    found: Vec<Violation>,
    /// The schemas whose `discriminator` the walk is following now (not followed again when
    /// the mapped schema includes them).
    dispatching: Vec<*const Value>,
}

impl<'a> Walk<'a> {
    fn report(&mut self, path: &str, kind: ViolationKind) {
        self.found.push(Violation {
            path: path.to_owned(),
            kind,
        });
    }

    fn value(&mut self, schema: &Value, value: &Value, path: String) {
        let schema = self.spec.resolve(schema);
        for keyword in UNSUPPORTED {
            if schema.get(keyword).is_some() {
                self.report(&path, ViolationKind::Unsupported(keyword.to_owned()));
            }
        }
        if let Some(mapped) = self.discriminated(schema, value) {
            self.dispatching.push(schema as *const Value);
            self.value(mapped, value, path);
            self.dispatching.pop();
            return;
        }
        self.alternatives(schema, value, &path);
        // `allOf`: the value must fit every branch; the rest of this schema applies as well.
        for branch in schema["allOf"].as_array().into_iter().flatten() {
            self.value(branch, value, path.clone());
        }
        if value.is_null() {
            // Without a `type` a schema admits anything, null included.
            if schema["nullable"] != true && schema.get("type").is_some() {
                self.report(&path, ViolationKind::Null);
            }
            return;
        }
        if let Some(expected) = schema["type"].as_str()
            && !has_type(value, expected)
        {
            let found = type_name(value);
            let expected = expected.to_owned();
            self.report(&path, ViolationKind::Type { expected, found });
            return;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            self.report(&path, ViolationKind::Enum(value.clone()));
        }
        match value {
            Value::String(text) => check_string(schema, text, |kind| self.report(&path, kind)),
            Value::Number(number) => {
                if let Some(kind) = out_of_range(schema, number.as_f64().unwrap_or_default()) {
                    self.report(&path, kind);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.value(&schema["items"], item, format!("{path}/{i}"));
                }
            }
            Value::Object(members) => self.object(schema, members, &path),
            _ => {}
        }
    }

    /// The schema `schema`'s discriminator maps `value` to, unless the walk already follows it.
    fn discriminated(&self, schema: &Value, value: &Value) -> Option<&'a Value> {
        let discriminator = schema.get("discriminator")?;
        if self.dispatching.contains(&(schema as *const Value)) {
            return None;
        }
        let property = discriminator["propertyName"].as_str()?;
        let name = value.get(property)?.as_str()?;
        let reference = discriminator["mapping"][name].as_str()?;
        let pointer = reference.strip_prefix('#').unwrap_or(reference);
        self.spec.root.pointer(pointer)
    }

    /// `oneOf` (exactly one branch fits) and `anyOf` (at least one does). The violations of the
    /// branch that fits (Okta's quirks only) are kept.
    fn alternatives(&mut self, schema: &Value, value: &Value, path: &str) {
        for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
            let Some(branches) = schema[keyword].as_array() else {
                continue;
            };
            let fitting: Vec<Vec<Violation>> = branches
                .iter()
                .map(|branch| self.branch(branch, value, path))
                .filter(|found| found.iter().all(Violation::is_okta_quirk))
                .collect();
            match (fitting.len(), exactly_one) {
                (1, _) | (2.., false) => self.found.extend(fitting[0].iter().cloned()),
                (count, true) => self.report(path, ViolationKind::OneOf(count)),
                (_, false) => self.report(path, ViolationKind::AnyOf),
            }
        }
    }

    /// The violations of `value` against one branch, walked apart.
    fn branch(&self, branch: &Value, value: &Value, path: &str) -> Vec<Violation> {
        let mut walk = Walk {
            spec: self.spec,
            direction: self.direction,
            found: Vec::new(),
            dispatching: self.dispatching.clone(),
        };
        walk.value(branch, value, path.to_owned());
        walk.found
    }

    fn object(&mut self, schema: &Value, members: &serde_json::Map<String, Value>, path: &str) {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            // OpenAPI 3.0: a required `readOnly` property is required in answers only.
            let read_only = properties
                .and_then(|p| p.get(name))
                .is_some_and(|p| self.spec.is_marked("readOnly", p));
            let applies = !(read_only && self.direction == Direction::Request);
            if applies && !members.contains_key(name) {
                self.report(path, ViolationKind::Required(name.to_owned()));
            }
        }
        for (name, member) in members {
            let member_path = format!("{path}/{name}");
            match (
                properties.and_then(|p| p.get(name)),
                &schema["additionalProperties"],
            ) {
                (Some(property), _) => {
                    self.direction_of(property, name, &member_path);
                    self.value(property, member, member_path);
                }
                (None, Value::Bool(false)) => {
                    self.report(&member_path, ViolationKind::Additional(name.clone()));
                }
                (None, extra @ Value::Object(_)) => self.value(extra, member, member_path),
                // OpenAPI 3.0: additional properties are allowed unless the schema says otherwise.
                (None, _) => {}
            }
        }
    }

    /// Reports a `readOnly` member of a request or a `writeOnly` member of an answer.
    fn direction_of(&mut self, property: &Value, name: &str, path: &str) {
        let kind = match self.direction {
            Direction::Request if self.spec.is_marked("readOnly", property) => {
                ViolationKind::ReadOnly(name.to_owned())
            }
            Direction::Answer if self.spec.is_marked("writeOnly", property) => {
                ViolationKind::WriteOnly(name.to_owned())
            }
            _ => return,
        };
        self.report(path, kind);
    }
}

/// Length and format checks of a string.
fn check_string(schema: &Value, text: &str, mut report: impl FnMut(ViolationKind)) {
    let length = text.chars().count();
    let too_short = schema["minLength"]
        .as_u64()
        .is_some_and(|min| (length as u64) < min);
    let too_long = schema["maxLength"]
        .as_u64()
        .is_some_and(|max| (length as u64) > max);
    if too_short || too_long {
        report(ViolationKind::Length(length));
    }
    if schema["format"] == "date-time" && OffsetDateTime::parse(text, &Rfc3339).is_err() {
        report(ViolationKind::Format(text.to_owned()));
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        match regex::Regex::new(pattern) {
            Ok(regex) if regex.is_match(text) => {}
            Ok(_) => report(ViolationKind::Pattern(text.to_owned())),
            Err(_) => report(ViolationKind::Unsupported(format!("pattern {pattern}"))),
        }
    }
}

/// `minimum` and `maximum` (with OpenAPI 3.0's boolean `exclusiveMinimum`/`exclusiveMaximum`).
fn out_of_range(schema: &Value, number: f64) -> Option<ViolationKind> {
    let below = schema["minimum"]
        .as_f64()
        .is_some_and(|min| number < min || (schema["exclusiveMinimum"] == true && number == min));
    let above = schema["maximum"]
        .as_f64()
        .is_some_and(|max| number > max || (schema["exclusiveMaximum"] == true && number == max));
    (below || above).then_some(ViolationKind::Range(number))
}

/// Whether `value` is of the OpenAPI `type` `expected` (an integer is also a number).
fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => false,
    }
}

/// The JSON type of a value, as a [`ViolationKind::Type`] names it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
