//! Faults, each with a real process: twenty SIGKILLs at random moments under load with two sinks
//! (the alert file and NATS JetStream), a disk that fills up and empties again, and a spool file
//! damaged while the service was down.

// The SIGKILL test reads the alerts back from JetStream: without NATS it is left out, and the
// imports only it uses with it.
#![cfg_attr(not(all(feature = "nats", feature = "redis")), allow(unused_imports))]

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::Rng;
use tempfile::TempDir;

use crate::helpers::{
    ChildServer, SECRET, assert_one_id_per_rule_and_event, batch_with_mfa, eventually, free_port,
    post_envelope, read_alert_lines, start_load, unique, wait_for_alerts_of,
};
#[cfg(all(feature = "nats", feature = "redis"))]
use crate::sinks_brokers::{delete_stream, jetstream, read_from_the_start};

const WAIT: Duration = Duration::from_secs(60);

/// Every alert id the JetStream stream `name` holds.
#[cfg(all(feature = "nats", feature = "redis"))]
async fn jetstream_ids(name: &str) -> HashSet<String> {
    let Ok(stream) = jetstream().await.get_stream(name).await else {
        return HashSet::new();
    };
    let consumer = read_from_the_start(&stream).await;
    let mut ids = HashSet::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_millis(300))
            .messages()
            .await
            .unwrap();
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            let alert: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
            ids.insert(alert["id"].as_str().unwrap().to_owned());
            message.ack().await.unwrap();
            got += 1;
        }
        if got == 0 {
            return ids;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(all(feature = "nats", feature = "redis"))]
async fn twenty_sigkills_at_random_moments_lose_no_acknowledged_alert_in_any_sink() {
    let data_dir = TempDir::new().unwrap();
    let run = unique("run");
    let stream = format!("FACTORWATCH_CRASH_{run}");
    let config_path = data_dir.path().join("factorwatch.toml");
    let alerts_path = data_dir.path().join("alerts.jsonl");
    std::fs::write(
        &config_path,
        format!(
            "[[sinks]]\nname = \"alerts-file\"\ntype = \"file\"\npath = {:?}\n\n\
             [[sinks]]\nname = \"jetstream\"\ntype = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\n\
             subject = \"factorwatch.crash.{run}.{{level}}\"\nstream = \"{stream}\"\n",
            alerts_path
        ),
    )
    .unwrap();
    let config = config_path.to_str().unwrap();
    let env = [("FACTORWATCH_CONFIG", config)];
    let log = data_dir.path().join("factorwatch.log");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut rng = rand::rng();
    for _ in 0..20 {
        let port = free_port();
        let mut server = ChildServer::start_logging_to(data_dir.path(), port, &env, &log).await;
        let load = start_load(&server.hook_url, 4, acked.clone());
        // Anywhere from mid-intake of the first batches to deep into detection and delivery.
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..600))).await;
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        load.iter().for_each(|task| task.abort());
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "too little load: {}", acked.len());

    let mut server = ChildServer::start_logging_to(data_dir.path(), free_port(), &env, &log).await;
    wait_for_alerts_of(std::slice::from_ref(&alerts_path), &acked, WAIT).await;
    let alerts = eventually(WAIT, "every alert of the file in JetStream", async || {
        let alerts = read_alert_lines(&alerts_path);
        let in_jetstream = jetstream_ids(&stream).await;
        let missing = alerts
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .filter(|id| !in_jetstream.contains(*id))
            .collect::<HashSet<_>>()
            .len();
        if missing == 0 {
            Ok(alerts)
        } else {
            Err(format!("{missing} alerts in the file but not in JetStream"))
        }
    })
    .await;
    let distinct = assert_one_id_per_rule_and_event(&alerts);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!log_text.contains("panicked"), "{log_text}");
    eprintln!(
        "20 SIGKILLs: {} acknowledged MFA events, {} alert lines in the file ({} duplicate lines), \
         {} distinct alerts, all in JetStream",
        acked.len(),
        alerts.len(),
        alerts.len() - distinct,
        distinct
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    delete_stream(&stream).await;
}

/// A tmpfs of `megabytes` mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> SmallDisk {
        let dir = TempDir::new().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "the disk-full test mounts a small tmpfs and needs root (or CAP_SYS_ADMIN)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with a file; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_never_2xx_and_recovers_by_itself_when_space_returns() {
    let disk = SmallDisk::mount(24);
    let data_dir = disk.path().join("data");
    let logs = TempDir::new().unwrap();
    let log = logs.path().join("factorwatch.log");
    let mut server = ChildServer::start_logging_to(&data_dir, free_port(), &[], &log).await;
    let client = reqwest::Client::new();
    let mut acked: Vec<String> = Vec::new();
    for _ in 0..5 {
        let (batch, uuids) = batch_with_mfa(10, 2);
        assert!(post_envelope(&client, &server.hook_url, &batch).await);
        acked.extend(uuids);
    }

    let filler = disk.fill();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let (batch, uuids) = batch_with_mfa(10, 2);
        let response = client
            .post(&server.hook_url)
            .header("Authorization", SECRET)
            .json(&batch)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status == 503 {
            assert!(response.headers().contains_key("retry-after"));
        }
        if (200..300).contains(&status) {
            acked.extend(uuids);
        }
        statuses.push(status);
    }
    assert!(
        statuses.iter().all(|s| *s == 204 || *s == 503),
        "only 204 (stored) or 503 (not stored): {statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "a full disk must be refused: {statuses:?}"
    );

    std::fs::remove_file(filler).unwrap();
    let uuids = eventually(WAIT, "intake to recover after space returned", async || {
        let (batch, uuids) = batch_with_mfa(10, 2);
        if post_envelope(&client, &server.hook_url, &batch).await {
            Ok(uuids)
        } else {
            Err("the batch was refused")
        }
    })
    .await;
    acked.extend(uuids);
    let alerts_path = data_dir.join("alerts.jsonl");
    wait_for_alerts_of(&[alerts_path], &acked, WAIT).await;
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(!log_text.contains("panicked"), "{log_text}");
    eprintln!(
        "disk full: {} refused with 503, {} stored while full; {} acknowledged MFA events all alerted",
        statuses.iter().filter(|s| **s == 503).count(),
        statuses.iter().filter(|s| **s == 204).count(),
        acked.len()
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// How a spool file can be damaged while the service is down.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Cut in half, as a copy interrupted midway.
    Truncated,
    /// Its header overwritten with garbage.
    GarbageHeader,
    /// Emptied.
    Empty,
}

impl Damage {
    fn apply(self, path: &Path) {
        let len = std::fs::metadata(path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        match self {
            Damage::Truncated => file.set_len(len / 2).unwrap(),
            Damage::GarbageHeader => {
                use std::os::unix::fs::FileExt;
                file.write_all_at(&[0xA5; 4096], 0).unwrap();
            }
            Damage::Empty => file.set_len(0).unwrap(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_spool_is_refused_with_the_file_and_what_to_do_never_a_panic() {
    for damage in [Damage::Truncated, Damage::GarbageHeader, Damage::Empty] {
        let data_dir = TempDir::new().unwrap();
        let mut server = ChildServer::start(data_dir.path(), free_port()).await;
        let client = reqwest::Client::new();
        for _ in 0..20 {
            let (batch, _) = batch_with_mfa(10, 2);
            assert!(post_envelope(&client, &server.hook_url, &batch).await);
        }
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        let spool = data_dir.path().join("spool.redb");
        damage.apply(&spool);
        if let Damage::Empty = damage {
            assert_an_emptied_spool_starts_anew_with_a_warning(data_dir.path(), &spool).await;
            continue;
        }

        let mut command = ChildServer::command(data_dir.path(), free_port(), &[]);
        command.stderr(Stdio::piped());
        let output = output_within(&mut command, Duration::from_secs(20));
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(!log.contains("panicked"), "{damage:?}: {log}");
        assert!(
            !output.status.success(),
            "{damage:?}: started on a damaged spool: {log}"
        );
        assert!(
            log.contains(&spool.display().to_string()) && log.contains("move it aside"),
            "{damage:?}: the error names the file and what to do: {log}"
        );
    }
}

/// A data directory the service's user may not write is a permission problem, said so with the
/// path and the user; not damage to move aside. Root writes anyway, so the test needs another
/// user (the unit tests of `spool::handle` check the message under any user).
#[tokio::test]
async fn an_unwritable_data_directory_is_a_permission_problem_naming_the_user() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    if uid == 0 {
        eprintln!("skipped: root may write any directory");
        return;
    }
    let data_dir = TempDir::new().unwrap();
    std::fs::set_permissions(data_dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut command = ChildServer::command(data_dir.path(), free_port(), &[]);
    command.stderr(Stdio::piped());
    let output = output_within(&mut command, Duration::from_secs(20));
    std::fs::set_permissions(data_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    let spool = data_dir.path().join("spool.redb");
    assert!(
        log.contains(&spool.display().to_string())
            && log.contains("permission problem")
            && log.contains(&format!("runs as uid {uid}")),
        "{log}"
    );
    assert!(!log.contains("move it aside"), "{log}");
}

/// An empty file holds nothing to recover: the service starts on a new spool, and says that
/// the file was empty, naming it, so a botched restore does not go unnoticed.
async fn assert_an_emptied_spool_starts_anew_with_a_warning(data_dir: &Path, spool: &Path) {
    let logs = TempDir::new().unwrap();
    let log = logs.path().join("factorwatch.log");
    let server = ChildServer::start_logging_to(data_dir, free_port(), &[], &log).await;
    let (batch, _) = batch_with_mfa(10, 2);
    assert!(post_envelope(&reqwest::Client::new(), &server.hook_url, &batch).await);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("the spool file is empty") && log.contains(&spool.display().to_string()),
        "{log}"
    );
    drop(server);
}

/// Runs a command that is expected to exit on its own, killing it after `limit`.
fn output_within(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command.spawn().expect("factorwatch starts");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
