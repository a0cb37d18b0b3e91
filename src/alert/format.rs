//! The documents an alert can be delivered as (a sink's `format`): factorwatch's own, OCSF or
//! ECS.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Alert, ecs, ocsf};

/// What a sink delivers: factorwatch's alert document (docs/alerts.md) or a standard schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    /// The alert as docs/alerts.md describes it, byte for byte as stored.
    #[default]
    Factorwatch,
    /// An OCSF Detection Finding (class 2004, OCSF [`ocsf::OCSF_VERSION`]).
    Ocsf,
    /// An Elastic Common Schema document (ECS [`ecs::ECS_VERSION`]), as Elastic's detection
    /// alerts and its Okta integration lay out their fields.
    Ecs,
}

impl AlertFormat {
    /// True for the default, which a configuration need not spell out.
    pub fn is_factorwatch(&self) -> bool {
        *self == AlertFormat::Factorwatch
    }

    /// The document for `alert`, whose stored JSON is `stored`: `stored` itself for the
    /// factorwatch format, so the default costs nothing.
    pub fn render<'a>(&self, stored: &'a str, alert: &Alert) -> Cow<'a, str> {
        match self {
            AlertFormat::Factorwatch => Cow::Borrowed(stored),
            AlertFormat::Ocsf => Cow::Owned(ocsf::detection_finding(alert).to_string()),
            AlertFormat::Ecs => Cow::Owned(ecs::document(alert).to_string()),
        }
    }
}

/// What the standard formats have no field for, kept whole under their custom namespace
/// (`unmapped.factorwatch` in OCSF, `factorwatch` in ECS), so nothing of the alert is lost.
pub(super) fn kept_whole(alert: &Alert) -> serde_json::Value {
    let mut kept = serde_json::json!({
        "alert_id": alert.id,
        "level": alert.level.as_str(),
        "rule_level": alert.rule.level.as_str(),
        "source": alert.source,
    });
    let parts = [
        ("org", serde_json::to_value(&alert.org)),
        ("incident", serde_json::to_value(&alert.incident)),
        ("context", serde_json::to_value(&alert.context)),
        ("okta_context", serde_json::to_value(&alert.okta_context)),
        ("correlation", serde_json::to_value(&alert.correlation)),
    ];
    for (key, value) in parts {
        if let Ok(value) = value
            && !value.is_null()
        {
            kept[key] = value;
        }
    }
    kept
}

/// Where a request came from, as Okta's `client.geographicalContext` of the raw event says.
pub(super) struct Place<'a> {
    /// (Okta's key, its value): `city`, `state`, `country`, `postalCode`, as far as given.
    pub names: Vec<(&'static str, &'a str)>,
    /// `geolocation` (latitude, longitude), when given.
    pub point: Option<(f64, f64)>,
}

impl<'a> Place<'a> {
    /// The place of the raw Okta event `raw`; `None` when it has no geographical context.
    pub fn of(raw: &'a serde_json::Value) -> Option<Self> {
        let geo = raw["client"]["geographicalContext"].as_object()?;
        let names = ["city", "state", "country", "postalCode"]
            .into_iter()
            .filter_map(|key| Some((key, geo.get(key)?.as_str()?)))
            .collect();
        let point = geo
            .get("geolocation")
            .and_then(|p| Some((p["lat"].as_f64()?, p["lon"].as_f64()?)));
        Some(Place { names, point })
    }

    /// The names as a JSON object, each of Okta's keys renamed by `rename`.
    pub fn named(
        &self,
        rename: impl Fn(&str) -> &'static str,
    ) -> serde_json::Map<String, serde_json::Value> {
        self.names
            .iter()
            .map(|(key, value)| (rename(key).to_owned(), (*value).into()))
            .collect()
    }
}
