//! Parsing, validation and printing of whole configuration files.

use super::*;
use crate::alert::{Alert, Level};
use crate::secret::Secret;

#[test]
fn the_documented_example_parses() {
    let config = Config::from_toml(
        r#"
            [server]
            listen = "127.0.0.1:8080"
            hook_path = "/okta/events"
            max_body_bytes = 5242880
            [okta]
            auth_header = "Authorization"
            secrets = ["Basic ZXhhbXBsZTpzZWNyZXQ="]
            [storage]
            data_dir = "./data"
            [[sinks]]
            name = "alerts-file"
            type = "file"
            path = "./data/alerts.jsonl"
            "#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(config.okta.secrets.len(), 1);
    assert_eq!(config.sinks[0].name(), "alerts-file");
}

#[test]
fn unknown_keys_are_named() {
    let err = Config::from_toml("[server]\nlisen = \"0.0.0.0:1\"\n").unwrap_err();
    assert!(err.to_string().contains("lisen"), "{err}");
    let err = Config::from_toml("[[sinks]]\nname='x'\ntype='carrier-pigeon'\n").unwrap_err();
    assert!(err.to_string().contains("carrier-pigeon"), "{err}");
    let err = Config::from_toml("[server]\nlisten = \"x\"\n").unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn errors_never_quote_the_offending_line() {
    let err = Config::from_toml("[okta]\nsecret = [\"hunter2-value\"]\n").unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("secret"), "{message}");
    assert!(!message.contains("hunter2-value"), "{message}");
}

#[test]
fn redacted_toml_has_no_secret() {
    let mut config = Config::default();
    config.okta.secrets = vec![Secret::new("s3cr3t-value")];
    let text = config.to_redacted_toml().unwrap();
    assert!(!text.contains("s3cr3t-value"));
    assert!(text.contains("<redacted>"));
    assert!(
        text.contains("alerts.jsonl"),
        "default sink is shown: {text}"
    );
}

#[test]
fn missing_secret_explains_how_to_set_one() {
    let err = Config::default().require_secret().unwrap_err().to_string();
    assert!(err.contains("FACTORWATCH_OKTA_SECRETS"), "{err}");
}

/// A broker sink `type` left out of this build is refused at load with the feature that brings
/// it (not serde's "unknown variant"); a type that is built never says so.
#[test]
fn a_sink_type_left_out_of_the_build_names_its_feature() {
    for (kind, built) in [
        ("amqp", cfg!(feature = "amqp")),
        ("mqtt", cfg!(feature = "mqtt")),
        ("nats", cfg!(feature = "nats")),
        ("redis", cfg!(feature = "redis")),
        ("kafka", cfg!(feature = "kafka")),
        ("sqs", cfg!(feature = "sqs")),
    ] {
        let needs = format!("type = \"{kind}\" needs a build with --features {kind}");
        let loaded = Config::from_toml(&format!("[[sinks]]\nname = 's'\ntype = '{kind}'\n"));
        match loaded {
            Err(err) if !built => assert!(err.to_string().contains(&needs), "{err}"),
            Err(err) => assert!(!err.to_string().contains("needs a build"), "{err}"),
            Ok(_) => assert!(built, "{kind} loaded in a build without it"),
        }
    }
}

#[test]
fn sink_blocks_reject_unknown_keys_and_filter_alerts() {
    let err =
        Config::from_toml("[[sinks]]\nname='a'\ntype='file'\npath='x'\npth='y'\n").unwrap_err();
    assert!(err.to_string().contains("pth"), "{err}");
    let config = Config::from_toml(
            "[[sinks]]\nname='pd'\ntype='file'\npath='x'\nmin_level='high'\ntags=['attack.t1556.006']\n",
        )
        .unwrap();
    let mut alert = Alert::test_alert();
    alert.rule.tags = vec!["attack.t1556.006".into()];
    alert.level = Level::Medium;
    assert!(!config.sinks[0].accepts(&alert), "medium is below high");
    alert.level = Level::Critical;
    assert!(config.sinks[0].accepts(&alert));
    alert.rule.tags.clear();
    assert!(!config.sinks[0].accepts(&alert), "tag filter");
}

#[test]
#[cfg(all(feature = "amqp", feature = "mqtt"))]
fn broker_sinks_parse_validate_and_redact() {
    let config = Config::from_toml(
        r#"
            [[sinks]]
            name = "rabbitmq"
            type = "amqp"
            username = "fw"
            password = "amqp-pa55"
            exchange = "amq.topic"
            routing_key = "factorwatch.{level}"
            [[sinks]]
            name = "mosquitto"
            type = "mqtt"
            topic = "factorwatch/{rule_id}"
            username = "fw"
            password = "mqtt-pa55"
            "#,
    )
    .unwrap();
    config.validate().unwrap();
    let text = config.to_redacted_toml().unwrap();
    assert!(!text.contains("pa55"), "{text}");
    let err = Config::from_toml(
        "[[sinks]]\nname='r'\ntype='amqp'\nurl='amqp://u:pw@h/%2f'\nrouting_key='k'\n",
    )
    .unwrap()
    .validate()
    .unwrap_err();
    assert!(format!("{err:#}").contains("\"r\""), "{err:#}");
    assert!(!format!("{err:#}").contains("pw@"), "{err:#}");
    let err =
        Config::from_toml("[[sinks]]\nname='m'\ntype='mqtt'\ntopic='t'\nqos=2\n").unwrap_err();
    assert!(err.to_string().contains("qos"), "{err}");
}

#[test]
#[cfg(all(feature = "kafka", feature = "sqs"))]
fn kafka_and_sqs_blocks_parse_with_defaults_and_are_checked() {
    let config = Config::from_toml(
        r#"
            [[sinks]]
            name = "kafka"
            type = "kafka"
            topic = "factorwatch.{level}"
            create_topic = { partitions = 3 }
            [[sinks]]
            name = "sqs"
            type = "sqs"
            queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/alerts.fifo"
            secret_access_key = "s3cr3t-key"
            "#,
    )
    .unwrap();
    let SinkKind::Kafka(kafka) = &config.sinks[0].kind else {
        panic!("kafka block")
    };
    assert_eq!(kafka.brokers, ["127.0.0.1:9092"]);
    assert_eq!(kafka.create_topic.unwrap().replication, 1);
    let SinkKind::Sqs(sqs) = &config.sinks[1].kind else {
        panic!("sqs block")
    };
    assert_eq!(sqs.region, "us-east-1");
    assert!(sqs.is_fifo());
    let err = config.validate().unwrap_err();
    assert!(format!("{err:#}").contains("access_key_id"), "{err:#}");
    assert!(!config.to_redacted_toml().unwrap().contains("s3cr3t-key"));
    let err = Config::from_toml("[[sinks]]\nname='k'\ntype='kafka'\ntopic='t'\nbroker=['x:1']\n")
        .unwrap_err();
    assert!(err.to_string().contains("broker"), "{err}");
    let err =
        Config::from_toml("[[sinks]]\nname='k'\ntype='kafka'\ntopic='t.{lvl}'\n").unwrap_err();
    assert!(err.to_string().contains("lvl"), "{err}");
}

#[test]
fn edge_keys_parse_print_and_are_checked() {
    let config = Config::from_toml(
        r#"
            [server]
            header_read_timeout = "2s"
            max_connections = 64
            trusted_proxies = ["10.0.0.0/8", "2001:db8::/32"]
            allowed_sources = ["192.0.2.0/24"]
            [server.rate_limit]
            requests_per_second = 20
            burst = 40
            "#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(config.server.trusted_proxies.len(), 2);
    let text = config.to_redacted_toml().unwrap();
    assert!(text.contains("\"10.0.0.0/8\""), "{text}");
    assert!(text.contains("[server.rate_limit]"), "{text}");
    let err = Config::from_toml("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n").unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    let err = Config::from_toml("[server.rate_limit]\nrequests_per_second = 0\nburst = 1\n")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("server.rate_limit"), "{err}");
}

#[test]
fn duplicate_sink_names_are_rejected() {
    let config = Config::from_toml(
        "[[sinks]]\nname='a'\ntype='file'\npath='x'\n[[sinks]]\nname='a'\ntype='file'\npath='y'\n",
    )
    .unwrap();
    assert!(config.validate().unwrap_err().to_string().contains("\"a\""));
}

#[test]
#[cfg(all(feature = "nats", feature = "redis"))]
fn nats_and_redis_blocks_parse_with_defaults() {
    let config = Config::from_toml(
        r#"
            [[sinks]]
            name = "jetstream"
            type = "nats"
            subject = "factorwatch.alerts.{level}"
            stream = "FACTORWATCH_ALERTS"
            [[sinks]]
            name = "redis-stream"
            type = "redis"
            stream = "factorwatch:alerts"
            maxlen = 100000
            "#,
    )
    .unwrap();
    config.validate().unwrap();
    let SinkKind::Nats(nats) = &config.sinks[0].kind else {
        panic!("not nats: {:?}", config.sinks[0]);
    };
    assert_eq!(nats.url.expose(), "nats://127.0.0.1:4222");
    assert_eq!(nats.subject.as_str(), "factorwatch.alerts.{level}");
    assert_eq!(nats.stream.as_deref(), Some("FACTORWATCH_ALERTS"));
    let SinkKind::Redis(redis) = &config.sinks[1].kind else {
        panic!("not redis: {:?}", config.sinks[1]);
    };
    assert_eq!(redis.url.expose(), "redis://127.0.0.1:6379");
    assert_eq!(redis.maxlen, Some(100_000));
    assert_eq!(config.sinks[1].name(), "redis-stream");
}

#[test]
#[cfg(all(feature = "nats", feature = "redis"))]
fn broker_blocks_reject_unknown_keys_and_bad_values() {
    let err = Config::from_toml("[[sinks]]\nname='n'\ntype='nats'\nsubject='a'\nsubjekt='b'\n")
        .unwrap_err();
    assert!(err.to_string().contains("subjekt"), "{err}");
    let err = Config::from_toml("[[sinks]]\nname='r'\ntype='redis'\nstream='a'\nmax_len=1\n")
        .unwrap_err();
    assert!(err.to_string().contains("max_len"), "{err}");
    let err =
        Config::from_toml("[[sinks]]\nname='n'\ntype='nats'\nsubject='a.{rule}'\n").unwrap_err();
    assert!(err.to_string().contains("{rule}"), "{err}");
    let config = Config::from_toml("[[sinks]]\nname='n'\ntype='nats'\nsubject='a.*'\n").unwrap();
    let err = format!("{:#}", config.validate().unwrap_err());
    assert!(err.contains("\"n\"") && err.contains("subject"), "{err}");
    let config =
        Config::from_toml("[[sinks]]\nname='r'\ntype='redis'\nstream='s'\nmaxlen=0\n").unwrap();
    let err = format!("{:#}", config.validate().unwrap_err());
    assert!(err.contains("\"r\"") && err.contains("maxlen"), "{err}");
}

#[test]
#[cfg(all(feature = "nats", feature = "redis"))]
fn broker_credentials_never_print() {
    let config = Config::from_toml(
        r#"
            [[sinks]]
            name = "n"
            type = "nats"
            url = "nats://alice:nats-pass@127.0.0.1:4222,nats://tok3n@127.0.0.2:4222"
            subject = "a"
            token = "nats-token"
            [[sinks]]
            name = "r"
            type = "redis"
            url = "rediss://:redis-pass@127.0.0.1:6380/2"
            stream = "s"
            "#,
    )
    .unwrap();
    config.validate().unwrap();
    let shown = format!("{config:?}\n{}", config.to_redacted_toml().unwrap());
    for secret in ["nats-pass", "tok3n", "nats-token", "redis-pass"] {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
    assert!(
        shown.contains("nats://alice:<redacted>@127.0.0.1:4222"),
        "{shown}"
    );
    assert!(
        shown.contains("rediss://:<redacted>@127.0.0.1:6380/2"),
        "{shown}"
    );
    let SinkKind::Redis(redis) = &config.sinks[1].kind else {
        panic!("not redis");
    };
    assert_eq!(redis.url.expose(), "rediss://:redis-pass@127.0.0.1:6380/2");
}

#[cfg(feature = "redis")]
const TWO_ORGS: &str = r#"
        [okta]
        [[okta.orgs]]
        name = "acme"
        hook_path = "/okta/acme"
        secrets = ["acme-s3cret"]
        [okta.orgs.rules]
        builtin_correlations = false
        [[okta.orgs]]
        name = "globex"
        hook_path = "/okta/globex"
        auth_header = "X-Okta-Auth"
        secrets = ["globex-s3cret"]
        [[okta.orgs.sinks]]
        name = "globex-file"
        type = "file"
        path = "/tmp/globex.jsonl"
        [cluster]
        mode = "redis"
        url = "redis://127.0.0.1:6379"
        "#;

#[test]
#[cfg(feature = "redis")]
fn orgs_resolve_to_one_pipeline_each() {
    let config = Config::from_toml(TWO_ORGS).unwrap();
    config.validate().unwrap();
    config.require_secret().unwrap();
    let pipelines = config.pipelines();
    let names: Vec<_> = pipelines.iter().map(|p| p.org.as_deref()).collect();
    assert_eq!(
        names,
        [Some("acme"), Some("globex")],
        "no top-level secret: not served"
    );
    let (acme, globex) = (&pipelines[0], &pipelines[1]);
    assert_eq!(acme.data_dir, Path::new("./data/orgs/acme"));
    assert_eq!(acme.auth_header, "Authorization");
    assert!(!acme.rules.builtin_correlations, "its own rules");
    assert!(globex.rules.builtin_correlations, "the top-level rules");
    assert_eq!(acme.sinks[0].name(), "alerts-file");
    let SinkKind::File(file) = &acme.sinks[0].kind else {
        panic!("default sink is a file")
    };
    assert_eq!(file.path, Path::new("./data/orgs/acme/alerts.jsonl"));
    assert_eq!(globex.sinks[0].name(), "globex-file");
    assert_eq!(globex.auth_header, "X-Okta-Auth");
    assert_eq!(
        globex.cluster.key_prefix.as_deref(),
        Some("factorwatch:org:globex:")
    );

    let mut with_top_level = config.clone();
    with_top_level.okta.secrets = vec![Secret::new("top-s3cret")];
    let pipelines = with_top_level.pipelines();
    assert_eq!(pipelines.len(), 3);
    assert_eq!(pipelines[0].org, None);
    assert_eq!(pipelines[0].cluster.key_prefix, None, "unchanged");
    assert!(with_top_level.pipeline(Some("globex")).is_ok());
    assert!(config.pipeline(None).is_err());
}

/// A secrets file alone is a secret: it serves the top-level org beside `[[okta.orgs]]` and
/// satisfies an org, and it stays a file to read (again on reload), not secrets in the config.
#[test]
fn a_secrets_file_alone_serves_an_org_and_stays_a_source() {
    let mut config = Config::from_toml(
        "[okta]\nsecrets_file = \"/run/secrets/okta\"\n[[okta.orgs]]\nname = \"acme\"\n\
         hook_path = \"/okta/acme\"\nsecrets_file = \"/run/secrets/acme\"\n",
    )
    .unwrap();
    config.require_secret().unwrap();
    let pipelines = config.pipelines();
    let files: Vec<_> = pipelines
        .iter()
        .map(|p| p.secrets.file.as_deref())
        .collect();
    let expected = [
        Path::new("/run/secrets/okta"),
        Path::new("/run/secrets/acme"),
    ];
    assert_eq!(files, expected.map(Some));
    assert!(pipelines.iter().all(|p| p.secrets.fixed.is_empty()));
    config.okta.orgs[0].secrets_file = None;
    assert!(
        config.require_secret().is_err(),
        "acme has no secret at all"
    );
}

#[test]
#[cfg(all(feature = "nats", feature = "redis"))]
fn duplicate_org_names_and_paths_are_refused_by_name() {
    let twice = TWO_ORGS.replace("\"globex\"", "\"acme\"");
    let err = Config::from_toml(&twice).unwrap().validate().unwrap_err();
    assert!(
        err.to_string().contains("two orgs are named \"acme\""),
        "{err}"
    );
    let same_path = TWO_ORGS.replace("/okta/globex", "/okta/acme");
    let err = Config::from_toml(&same_path)
        .unwrap()
        .validate()
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("\"globex\"") && message.contains("\"acme\""),
        "{message}"
    );
    assert!(message.contains("/okta/acme"), "{message}");
    let top_path = TWO_ORGS.replace("/okta/globex", "/okta/events");
    let err = Config::from_toml(&top_path)
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("server.hook_path"), "{err}");
    let builtin = TWO_ORGS.replace("/okta/globex", "/metrics");
    let err = Config::from_toml(&builtin).unwrap().validate().unwrap_err();
    assert!(err.to_string().contains("built-in endpoint"), "{err}");
    let bad_name = TWO_ORGS.replace("\"globex\"", "\"Globex Corp\"");
    let err = Config::from_toml(&bad_name)
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("Globex Corp"), "{err}");
    let bad_sink = TWO_ORGS.replace(
        "type = \"file\"\n        path = \"/tmp/globex.jsonl\"",
        "type = \"nats\"\nsubject = \"a.*\"",
    );
    let err = format!(
        "{:#}",
        Config::from_toml(&bad_sink)
            .unwrap()
            .validate()
            .unwrap_err()
    );
    assert!(
        err.contains("okta.orgs \"globex\"") && err.contains("globex-file"),
        "{err}"
    );
    let err = Config::from_toml(&TWO_ORGS.replace("auth_header", "auth_headr")).unwrap_err();
    assert!(err.to_string().contains("auth_headr"), "{err}");
}

#[test]
#[cfg(feature = "redis")]
fn every_org_needs_a_secret_and_none_prints() {
    let config = Config::from_toml(TWO_ORGS).unwrap();
    let shown = format!("{config:?}\n{}", config.to_redacted_toml().unwrap());
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("[[okta.orgs]]"), "{shown}");
    assert!(
        shown.contains("orgs/acme/alerts.jsonl"),
        "default sink shown: {shown}"
    );
    let reparsed = Config::from_toml(&config.to_redacted_toml().unwrap()).unwrap();
    assert_eq!(reparsed.okta.orgs.len(), 2);
    let mut no_secret = config.clone();
    no_secret.okta.orgs[1].secrets.clear();
    let err = no_secret.require_secret().unwrap_err().to_string();
    assert!(err.contains("\"globex\""), "{err}");
    let empty = TWO_ORGS.replace("\"globex-s3cret\"", "\"\"");
    let err = Config::from_toml(&empty).unwrap().validate().unwrap_err();
    assert!(
        err.to_string().contains("okta.orgs \"globex\".secrets"),
        "{err}"
    );
}

#[test]
fn each_org_names_its_hook_and_fills_the_deployment_placeholders() {
    use crate::detect::placeholders::{API_CLIENTS, HOOK_NAMES, NO_API_CLIENT};
    let config = Config::from_toml(
        r#"
        [okta]
        secrets = ["top-s3cret"]
        [okta.api]
        org_url = "https://acme.okta.com"
        client_id = "0oafactorwatch01"
        private_key_file = "/etc/factorwatch/okta.pem"
        [[okta.orgs]]
        name = "globex"
        hook_path = "/okta/globex"
        secrets = ["globex-s3cret"]
        [[okta.orgs]]
        name = "initech"
        hook_path = "/okta/initech"
        secrets = ["initech-s3cret"]
        hook_name = "SIEM *push*"
        [okta.orgs.rules.placeholders]
        factorwatch_api_clients = ["0oaterraform01"]
        "#,
    )
    .unwrap();
    config.validate().unwrap();
    let placeholder =
        |pipeline: &PipelineConfig, name: &str| pipeline.rules.placeholders[name].clone();
    let [top, globex, initech] = &config.pipelines()[..] else {
        panic!("three orgs")
    };
    assert_eq!(top.hook_name, "factorwatch");
    assert_eq!(placeholder(top, HOOK_NAMES), ["factorwatch"]);
    assert_eq!(placeholder(top, API_CLIENTS), ["0oafactorwatch01"]);
    assert_eq!(globex.hook_name, "factorwatch-globex");
    assert_eq!(placeholder(globex, HOOK_NAMES), ["factorwatch-globex"]);
    assert_eq!(
        placeholder(globex, API_CLIENTS),
        [NO_API_CLIENT],
        "no [okta.orgs.api]: no client of factorwatch's can act on globex's hook"
    );
    assert_eq!(initech.hook_name, "SIEM *push*");
    assert_eq!(
        placeholder(initech, HOOK_NAMES),
        [r"SIEM \*push\*"],
        "a name from the configuration matches only itself"
    );
    assert_eq!(
        placeholder(initech, API_CLIENTS),
        ["0oaterraform01"],
        "what the user defines wins"
    );

    let blank = Config::from_toml("[okta]\nhook_name = \" \"\n").unwrap();
    let err = blank.validate().unwrap_err().to_string();
    assert!(err.contains("okta.hook_name is empty"), "{err}");
}

#[test]
#[cfg(feature = "redis")]
fn incident_window_and_notify_are_checked_with_what_to_do() {
    use std::time::Duration;

    let config = Config::from_toml(
        "[rules]\nincident_window = '2h'\n\n[[sinks]]\nname = 'pager'\ntype = 'redis'\n\
         stream = 'p'\nnotify = 'first'\n",
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(config.rules.incident_window, Duration::from_secs(7200));
    assert_eq!(config.sinks[0].notify, crate::sinks::NotifyPolicy::First);
    assert_eq!(
        Config::default().rules.incident_window,
        Duration::from_secs(24 * 3600)
    );

    let long = Config::from_toml("[rules]\nincident_window = '31d'\n").unwrap();
    let err = long.validate().unwrap_err().to_string();
    assert!(
        err.contains("rules.incident_window") && err.contains("30d"),
        "{err}"
    );
    let org = Config::from_toml(
        "[[okta.orgs]]\nname = 'acme'\nhook_path = '/okta/acme'\nsecrets = ['s']\n\
         [okta.orgs.rules]\nincident_window = '90d'\n",
    )
    .unwrap();
    let err = format!("{:#}", org.validate().unwrap_err());
    assert!(
        err.contains("okta.orgs \"acme\": rules.incident_window"),
        "{err}"
    );

    let file =
        Config::from_toml("[[sinks]]\nname='f'\ntype='file'\npath='a'\nnotify='first'\n").unwrap();
    let err = format!("{:#}", file.validate().unwrap_err());
    assert!(
        err.contains("sink \"f\"") && err.contains("keeps every alert"),
        "{err}"
    );
    let err = Config::from_toml("[[sinks]]\nname='p'\ntype='redis'\nstream='p'\nnotify='once'\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("first") && err.contains("every"), "{err}");
}

#[test]
fn format_is_read_and_refused_where_a_sink_writes_its_own_message() {
    let ocsf =
        Config::from_toml("[[sinks]]\nname='f'\ntype='file'\npath='a'\nformat='ocsf'\n").unwrap();
    ocsf.validate().unwrap();
    assert_eq!(ocsf.sinks[0].format, crate::alert::AlertFormat::Ocsf);
    let slack = "[[sinks]]\nname='s'\ntype='slack'\nwebhook_url='https://hooks.slack.com/x'\n\
                 format='ocsf'\n";
    let err = format!(
        "{:#}",
        Config::from_toml(slack).unwrap().validate().unwrap_err()
    );
    assert!(
        err.contains("sink \"s\"") && err.contains("writes its own message"),
        "{err}"
    );
    let err = Config::from_toml("[[sinks]]\nname='f'\ntype='file'\npath='a'\nformat='cef'\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("factorwatch") && err.contains("ocsf"), "{err}");
}

#[test]
fn live_context_needs_the_api_of_its_org() {
    let top = Config::from_toml("[okta.context]\nenabled = true\n").unwrap();
    let err = format!("{:#}", top.validate().unwrap_err());
    assert!(
        err.starts_with("okta.context: enabled needs [okta.api]")
            && err.contains("okta.users.read"),
        "{err}"
    );
    let org = Config::from_toml(
        "[[okta.orgs]]\nname = 'acme'\nhook_path = '/okta/acme'\nsecrets = ['s']\n\
         [okta.orgs.context]\nenabled = true\ntimeout = '500ms'\n",
    )
    .unwrap();
    let err = format!("{:#}", org.validate().unwrap_err());
    assert!(
        err.starts_with("okta.orgs \"acme\".context: enabled needs"),
        "{err}"
    );
    assert_eq!(
        org.pipelines()[0].context.timeout,
        std::time::Duration::from_millis(500)
    );
}

#[test]
fn responses_and_ssf_parse_per_org_and_are_checked_against_what_they_need() {
    let toml = r#"
        [okta]
        secrets = ["s"]
        [okta.api]
        org_url = "https://acme.okta.com"
        api_token = "t"
        [ssf]
        issuer = "https://factorwatch.acme.example"
        signing_key_file = "/etc/factorwatch/ssf.pem"
        [[responses]]
        name = "contain-takeover"
        when = { levels = ["critical"], rules = ["r1"] }
        actions = ["raise_risk", "clear_sessions", "ssf_session_revoked"]
        mode = "enforce"
        never = ["breakglass@acme.example", "group:Okta-Break-Glass"]
        [[okta.orgs]]
        name = "globex"
        hook_path = "/okta/globex"
        secrets = ["g"]
        [[okta.orgs.responses]]
        name = "watch"
        actions = ["suspend_user"]
        "#;
    let config = Config::from_toml(toml).unwrap();
    let err = config.validate().unwrap_err();
    assert!(
        format!("{err:#}").contains("okta.orgs \"globex\": responses"),
        "an org's response needs the org's own [okta.orgs.api]: {err:#}"
    );
    let mut config = config;
    config.okta.orgs[0].responses.clear();
    config.validate().unwrap();
    let pipelines = config.pipelines();
    assert_eq!(pipelines[0].responses[0].name, "contain-takeover");
    assert!(
        pipelines[1].responses.is_empty(),
        "the top level's never act on an org"
    );
    config.server.hook_path = "/.well-known/jwks.json".into();
    let err = config.validate().unwrap_err();
    assert!(err.to_string().contains("also a hook path"), "{err}");
}
