//! Fuzzes what an authenticated delivery goes through: the intake check, the detector's parse of
//! the stored bytes, and for every event the one-line rewrite, the de-duplication key, the
//! enrichment, the built-in rules (detection and correlation) and the MFA context and risk level.
//!
//! Besides "never panics", it checks the property intake relies on: whatever `EnvelopeCheck`
//! accepts, `Envelope::parse` reads, with the same number of events (otherwise an accepted batch
//! would be quarantined). Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run envelope` (see docs/security.md).

#![no_main]

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use factorwatch::alert::Alert;
use factorwatch::config::RulesConfig;
use factorwatch::detect::context::{mfa_context, risk_level};
use factorwatch::detect::enrich::{NetworkHistory, enrich};
use factorwatch::detect::{EventTime, RuleSet};
use factorwatch::okta::event::{dedup_key, single_line};
use factorwatch::okta::{Envelope, EnvelopeCheck, LogEvent};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The rules `serve` runs by default, loaded once.
fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| RuleSet::load(&RulesConfig::default()).expect("the built-in rules load"))
}

fuzz_target!(|body: &[u8]| {
    let Ok(check) = EnvelopeCheck::parse(body) else {
        return;
    };
    let envelope = Envelope::parse(body).expect("whatever intake accepts, the detector reads");
    assert_eq!(envelope.data.events.len(), check.event_count());
    let _ = envelope.origin();
    let rules = rules();
    let mut correlator = rules.correlator();
    let mut history = NetworkHistory::new(HashMap::new());
    let privileged = ["ceo@acme.com".to_owned()];
    for raw in envelope.data.events {
        let raw = single_line(Cow::Borrowed(raw));
        assert!(!raw.get().contains('\n'), "an event is one line");
        let Ok(mut value) = serde_json::from_str::<Value>(raw.get()) else {
            continue;
        };
        let _ = dedup_key(&LogEvent(&value), raw.get());
        enrich(&mut value, &mut history);
        let detections = rules.detect(&value);
        for rule in rules.alerting(&detections) {
            if let Some(mut context) = mfa_context(&LogEvent(&value), &privileged) {
                let _ = risk_level(rule.level, &mut context);
            }
        }
        let published_ms = LogEvent(&value).published_ms().unwrap_or(0);
        let time = EventTime {
            published_ms,
            received_ms: published_ms,
        };
        let _ = correlator.observe(&value, &detections, time, &|_| Alert::test_alert());
    }
});
