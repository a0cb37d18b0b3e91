//! Detection alone, on one core: events per second through the rules (parse included), with the
//! built-in rules (the whole MFA-tampering pack and its correlations) and with 25 rules loaded. `cargo bench --bench detection`; BENCHMARKS.md holds
//! the figures.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use factorwatch::config::RulesConfig;
use factorwatch::detect::RuleSet;
use factorwatch::detect::offline::detect_events;
use factorwatch::okta::samples;
use rand::SeedableRng;
use serde_json::Value;

/// 25 rules: the two built-ins, the SigmaHQ-style test folder, and variations of its shapes.
fn twenty_five_rules() -> RuleSet {
    // The first two built-ins (the MFA reset rules): the pack grows, this set stays 25 rules.
    let mut sources: Vec<(String, String)> = factorwatch::detect::rules::BUILTIN_RULES
        .iter()
        .take(2)
        .map(|(name, yaml)| (name.to_string(), yaml.to_string()))
        .collect();
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rules/sigmahq_style");
    for entry in std::fs::read_dir(folder).expect("test rules folder") {
        let path = entry.expect("dir entry").path();
        sources.push((
            path.display().to_string(),
            std::fs::read_to_string(&path).unwrap(),
        ));
    }
    let event_types = [
        "user.session.start",
        "user.account.reset_password",
        "user.mfa.factor.activate",
        "user.mfa.factor.update",
        "user.mfa.factor.suspend",
        "application.user_membership.add",
        "policy.evaluate_sign_on",
        "user.authentication.sso",
        "user.session.end",
        "device.enrollment.create",
        "user.account.lock",
        "user.account.update_password",
        "group.user_membership.add",
        "app.oauth2.as.token.grant",
    ];
    for (i, event_type) in event_types.iter().enumerate() {
        let yaml = format!(
            "title: Bench rule {i}\nid: bench-{i}\nlogsource: {{product: okta, service: okta}}\n\
             detection:\n  selection:\n    eventtype: {event_type}\n    outcome.result: FAILURE\n  \
             filter:\n    client.ipaddress|cidr: '10.0.0.0/8'\n  condition: selection and not filter\nlevel: low\n"
        );
        sources.push((format!("bench-{i}.yml"), yaml));
    }
    // The folder's rules include one with `|expand`, filled as a deployment's config would.
    let placeholders = [(
        "helpdesk_accounts".to_string(),
        vec!["helpdesk@example.com".to_string()],
    )]
    .into();
    let rules = RuleSet::build(&sources, &placeholders).expect("bench rules load");
    assert_eq!(rules.len(), 25);
    rules
}

fn events(count: usize) -> Vec<Value> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    samples::mixed_batch(&mut rng, count)
}

fn detection(c: &mut Criterion) {
    let events = events(1_000);
    let serialized: Vec<String> = events.iter().map(Value::to_string).collect();
    let builtin = RuleSet::load(&RulesConfig::default()).unwrap();
    let many = twenty_five_rules();
    let mut group = c.benchmark_group("detection");
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, rules) in [("builtin_rules", &builtin), ("25_rules", &many)] {
        group.bench_function(format!("match_only/{name}"), |b| {
            b.iter(|| {
                events
                    .iter()
                    .map(|e| rules.matching(e).len())
                    .sum::<usize>()
            })
        });
        group.bench_function(format!("parse_and_match/{name}"), |b| {
            b.iter(|| {
                serialized
                    .iter()
                    .map(|text| {
                        let value: Value = serde_json::from_str(text).unwrap();
                        rules.matching(&value).len()
                    })
                    .sum::<usize>()
            })
        });
        group.bench_function(format!("alerts/{name}"), |b| {
            b.iter(|| detect_events(rules, &[], events.clone()).alerts.len())
        });
    }
    group.finish();
}

criterion_group!(benches, detection);
criterion_main!(benches);
