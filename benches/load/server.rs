//! The servers under load, each a child process on loopback: the real `factorwatch serve`
//! (release build, its own temporary data directory and config file) and the no-op baseline (this
//! binary again, `noop-server`: an axum handler that reads the body and answers 204). Also what
//! the kernel says about them: CPU time, RSS and bytes written, from `/proc/PID`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tempfile::TempDir;

/// The secret the servers accept and the generator sends, as Okta suggests it: `Basic ...`.
pub const SECRET: &str = "Basic ZmFjdG9yd2F0Y2g6YmVuY2gtc2VjcmV0";
/// The hook path of both servers.
pub const HOOK_PATH: &str = "/okta/events";

/// A sink of the factorwatch under test.
pub enum SinkSpec {
    /// A file sink named `name` writing `path`, taking alerts of `min_level` and above.
    File {
        name: String,
        path: PathBuf,
        min_level: Option<&'static str>,
    },
    /// A NATS JetStream sink publishing to `subject` in `stream`.
    Nats { subject: String, stream: String },
}

/// How to start factorwatch.
#[derive(Default)]
pub struct FactorwatchSpec {
    /// Its sinks.
    pub sinks: Vec<SinkSpec>,
    /// More TOML appended to the config file (`[okta.api]`, `[okta.reconcile]`, `[rules]`).
    pub extra: String,
}

/// A running server.
pub struct Server {
    child: Child,
    /// Its hook listener.
    pub addr: SocketAddr,
    /// Its operational listener (`/readyz` in detail, `/metrics`); the no-op server's is `addr`.
    ops_addr: SocketAddr,
    /// Its data directory (factorwatch) or a scratch directory (no-op): removed on drop.
    pub dir: TempDir,
}

/// A free loopback port, found by binding port 0. Another process could take it before the
/// server binds it; on a bench machine nothing does.
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The data directory inside a factorwatch server's directory.
pub fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// Writes the config file of a factorwatch in `dir` listening on `addr`, its operational
/// listener on `ops`.
fn write_config(
    dir: &Path,
    addr: SocketAddr,
    ops: SocketAddr,
    spec: &FactorwatchSpec,
) -> anyhow::Result<PathBuf> {
    let admin = free_addr()?;
    let mut toml = format!(
        "[server]\nlisten = \"{addr}\"\nops_listen = \"{ops}\"\nadmin_listen = \"{admin}\"\n\n\
         [okta]\nsecrets = [\"{SECRET}\"]\n\n\
         [storage]\ndata_dir = \"{}\"\n\n\
         [delivery]\ninitial_backoff = \"100ms\"\nmax_backoff = \"1s\"\n\n\
         [log]\nlevel = \"warn\"\n",
        data_dir(dir).display()
    );
    for sink in &spec.sinks {
        match sink {
            SinkSpec::File {
                name,
                path,
                min_level,
            } => {
                toml.push_str(&format!(
                    "\n[[sinks]]\ntype = \"file\"\nname = \"{name}\"\npath = \"{}\"\n",
                    path.display()
                ));
                if let Some(level) = min_level {
                    toml.push_str(&format!("min_level = \"{level}\"\n"));
                }
            }
            SinkSpec::Nats { subject, stream } => toml.push_str(&format!(
                "\n[[sinks]]\ntype = \"nats\"\nname = \"jetstream\"\nurl = \"nats://127.0.0.1:4222\"\n\
                 subject = \"{subject}\"\nstream = \"{stream}\"\n"
            )),
        }
    }
    toml.push_str(&spec.extra);
    let path = dir.join("factorwatch.toml");
    std::fs::write(&path, toml)?;
    Ok(path)
}

impl Server {
    /// Starts `factorwatch serve` in a fresh temporary directory.
    pub fn factorwatch(spec: &FactorwatchSpec) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("factorwatch-load-")
            .tempdir_in(scratch_root())?;
        Self::factorwatch_in(dir, spec)
    }

    /// Starts `factorwatch serve` on the directory `dir` (a restart keeps its spool).
    pub fn factorwatch_in(dir: TempDir, spec: &FactorwatchSpec) -> anyhow::Result<Self> {
        let (addr, ops_addr) = (free_addr()?, free_addr()?);
        let config = write_config(dir.path(), addr, ops_addr, spec)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("factorwatch.log"))?;
        let child = Command::new(factorwatch_binary())
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("FACTORWATCH_OKTA_SECRETS")
            .env_remove("FACTORWATCH_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start factorwatch serve")?;
        let server = Self {
            child,
            addr,
            ops_addr,
            dir,
        };
        server.wait_ready("/healthz")?;
        Ok(server)
    }

    /// Starts the no-op baseline: this binary again, in `noop-server` mode.
    pub fn noop() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("factorwatch-noop-")
            .tempdir_in(scratch_root())?;
        let addr = free_addr()?;
        let child = Command::new(std::env::current_exe()?)
            .arg("noop-server")
            .arg("--listen")
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the no-op server")?;
        let server = Self {
            child,
            addr,
            ops_addr: addr,
            dir,
        };
        server.wait_ready("/healthz")?;
        Ok(server)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `path` until it answers 200, for at most 30 s.
    fn wait_ready(&self, path: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if get(self.addr, path).is_ok_and(|(status, _)| status == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "the server on {} did not answer {path} within 30 s; see {}",
            self.addr,
            self.dir.path().display()
        )
    }

    /// The detailed `/readyz` as JSON.
    pub fn readyz(&self) -> anyhow::Result<Value> {
        let (_, body) = get(self.ops_addr, "/readyz")?;
        Ok(serde_json::from_str(&body)?)
    }

    /// The value of an unlabelled metric in `/metrics` (0 when absent).
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let (_, body) = get(self.ops_addr, "/metrics")?;
        Ok(body
            .lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0))
    }

    /// SIGKILL, as a crash: nothing is flushed, nothing is closed.
    pub fn kill(mut self) -> anyhow::Result<TempDir> {
        self.child.kill()?;
        self.child.wait()?;
        let dir = tempfile::Builder::new().tempdir_in(scratch_root())?;
        Ok(std::mem::replace(&mut self.dir, dir))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Load runs throw their server away: SIGKILL is quicker than draining a backlog.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The factorwatch binary under test: `FACTORWATCH_BIN` when set (to compare two builds on the same
/// machine, in the same conditions), else the release binary cargo built with this bench.
fn factorwatch_binary() -> PathBuf {
    std::env::var_os("FACTORWATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_factorwatch")))
}

/// Samples a process's `/proc` figures every `every`, each with what `extra` reads at the same
/// moment (such as the events acknowledged so far), until stopped.
pub struct Sampler<T> {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, T, ProcStats)>>,
}

impl<T: Send + 'static> Sampler<T> {
    /// Starts sampling the process `pid`.
    pub fn start(pid: u32, every: Duration, extra: impl Fn() -> T + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok(stats) = ProcStats::read(pid) {
                    samples.push((started.elapsed(), extra(), stats));
                }
                std::thread::sleep(every);
            }
            samples
        });
        Self { stop, thread }
    }

    /// Stops sampling; every sample, oldest first.
    pub fn finish(self) -> Vec<(Duration, T, ProcStats)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// A fresh directory (named `prefix`...) under [`scratch_root`], the alert file of its data
/// directory, and the spec of a factorwatch writing every alert there with `extra` config.
pub fn with_alert_file(
    prefix: &str,
    extra: String,
) -> anyhow::Result<(TempDir, PathBuf, FactorwatchSpec)> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(scratch_root())?;
    let alert_file = data_dir(dir.path()).join("alerts.jsonl");
    let spec = FactorwatchSpec {
        sinks: vec![SinkSpec::File {
            name: "alerts".into(),
            path: alert_file.clone(),
            min_level: None,
        }],
        extra,
    };
    Ok((dir, alert_file, spec))
}

/// Where temporary server directories go: under the target directory, on the same disk as a real
/// build's data would be, and never in a tmpfs (which would make fsync free).
pub fn scratch_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/load-scratch");
    let _ = std::fs::create_dir_all(&root);
    root
}

/// A bare HTTP/1.0 GET on loopback: status and body. For the control plane only (health,
/// readiness, metrics), so that it shares nothing with the load path.
fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no HTTP status")?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// CPU, memory and I/O of a process, as `/proc` reports them.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set, KiB (`VmHWM`).
    pub hwm_kib: u64,
    /// Bytes the process caused to be sent to storage (`write_bytes` of `/proc/PID/io`).
    pub write_bytes: u64,
}

impl ProcStats {
    /// Reads the stats of `pid`.
    pub fn read(pid: u32) -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces) start at state, field 3.
        let after = stat.rsplit_once(')').context("malformed stat")?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        let write_bytes = io
            .lines()
            .find_map(|line| line.strip_prefix("write_bytes:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        Ok(Self {
            cpu_seconds: ticks / hz,
            rss_kib: kib("VmRSS:"),
            hwm_kib: kib("VmHWM:"),
            write_bytes,
        })
    }
}

/// The no-op baseline server: reads each POST body to the end and answers 204, with the same
/// tokio and axum versions and the same number of worker threads (one per core) as factorwatch.
pub fn run_noop_server(listen: SocketAddr) -> anyhow::Result<()> {
    use axum::Router;
    use axum::body::Bytes;
    use axum::http::StatusCode;
    use axum::routing::{get, post};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Router::new()
            .route(
                HOOK_PATH,
                post(|body: Bytes| async move {
                    std::hint::black_box(body);
                    StatusCode::NO_CONTENT
                }),
            )
            .route("/healthz", get(|| async { StatusCode::OK }));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}
