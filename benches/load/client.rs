//! The HTTP side of the generator: keep-alive HTTP/1.1 connections that POST like Okta does
//! (`Content-Type` and `Accept: application/json`, the auth header), driven open-loop (requests
//! scheduled at fixed intended times, latency measured from the intended time, so a stall shows as
//! latency instead of as fewer requests: no coordinated omission) or closed-loop (each connection
//! sends its next request as soon as the previous one is answered: the saturation rate).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::payload::Payloads;

/// Called with the intended send time and the alerting uuids of each body, just before it is sent.
pub type OnSent = Arc<dyn Fn(Instant, Vec<String>) + Send + Sync>;

/// Where and how to POST.
#[derive(Clone)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The hook path.
    pub path: String,
    /// The auth header value (the hook's "Authentication secret").
    pub secret: String,
}

/// What one drive measured.
pub struct Outcome {
    /// Answers 2xx.
    pub ok_requests: u64,
    /// Events in those requests.
    pub ok_events: u64,
    /// Answers other than 2xx, and requests that failed on the connection.
    pub failed: u64,
    /// Latency in microseconds: from the intended send time (open loop) or the send (closed loop)
    /// to the end of the answer.
    pub latency: Histogram<u64>,
    /// Open loop only: how late the generator sent after the intended time, in microseconds. Large
    /// values mean the generator, not the server, fell behind.
    pub send_lag: Histogram<u64>,
    /// The measured interval (warm-up excluded).
    pub elapsed: Duration,
}

impl Outcome {
    /// Acknowledged events per second.
    pub fn events_per_second(&self) -> f64 {
        self.ok_events as f64 / self.elapsed.as_secs_f64()
    }
}

/// A fresh histogram from 1 µs to 100 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// One keep-alive connection.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    /// True when the server has closed the connection (hyper's `server.header_read_timeout` closes
    /// keep-alive connections left idle that long, as at 100 events/s over 64 connections).
    fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// POSTs `body`; true when answered 2xx. The answer's body is read to the end so the
    /// connection can be reused.
    async fn post(&mut self, target: &Target, body: Bytes) -> anyhow::Result<bool> {
        let request = Request::post(target.path.as_str())
            .header(hyper::header::HOST, target.addr.to_string())
            .header(hyper::header::AUTHORIZATION, target.secret.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(body))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let ok = response.status().is_success();
        response.into_body().collect().await?;
        Ok(ok)
    }
}

/// The shared schedule and what every connection reports back.
struct Shared {
    target: Target,
    payloads: Arc<Payloads>,
    /// The next request number: connections take numbers from it, so a slow connection never
    /// holds back the schedule.
    next: AtomicU64,
    /// Called with the intended send time and the alerting uuids of each body, just before it is
    /// sent (end-to-end latency).
    on_sent: Option<OnSent>,
    /// Acknowledged events, warm-up included, for progress output.
    acked: Arc<AtomicU64>,
}

/// Per-connection tallies, merged at the end.
struct Tally {
    ok_requests: u64,
    ok_events: u64,
    failed: u64,
    latency: Histogram<u64>,
    send_lag: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            ok_requests: 0,
            ok_events: 0,
            failed: 0,
            latency: histogram(),
            send_lag: histogram(),
        }
    }
}

fn micros(duration: Duration) -> u64 {
    (duration.as_micros() as u64).max(1)
}

/// How a drive paces its requests.
#[derive(Clone, Copy)]
pub enum Pace {
    /// Request `i` is due at `start + i × interval`.
    Open { interval: Duration },
    /// Back to back on every connection.
    Closed,
}

/// A drive: `connections` connections, `warmup` not recorded, then `duration` measured.
pub struct Drive {
    /// Pacing.
    pub pace: Pace,
    /// Connections opened (all before the clock starts).
    pub connections: usize,
    /// Time run before recording starts.
    pub warmup: Duration,
    /// Time recorded.
    pub duration: Duration,
    /// Stop after this many requests (`u64::MAX` for no limit).
    pub max_requests: u64,
    /// Counts acknowledged events as they come (warm-up included), for progress output.
    pub acked: Arc<AtomicU64>,
}

impl Drive {
    /// A drive with `connections` connections paced by `pace`, 1 s of warm-up then `duration`.
    pub fn new(pace: Pace, connections: usize, duration: Duration) -> Self {
        Self {
            pace,
            connections,
            warmup: Duration::from_secs(1),
            duration,
            max_requests: u64::MAX,
            acked: Arc::default(),
        }
    }
}

/// Runs `drive` against `target` with bodies from `payloads`.
pub async fn run(
    drive: &Drive,
    target: &Target,
    payloads: Arc<Payloads>,
    on_sent: Option<OnSent>,
) -> anyhow::Result<Outcome> {
    let mut connections = Vec::with_capacity(drive.connections);
    for _ in 0..drive.connections {
        connections.push(Connection::open(target.addr).await?);
    }
    let shared = Arc::new(Shared {
        target: target.clone(),
        payloads,
        next: AtomicU64::new(0),
        on_sent,
        acked: drive.acked.clone(),
    });
    let start = Instant::now() + Duration::from_millis(20);
    let record_from = start + drive.warmup;
    let end = record_from + drive.duration;
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(index, connection)| {
            let shared = shared.clone();
            let (pace, max_requests) = (drive.pace, drive.max_requests);
            tokio::spawn(async move {
                worker(
                    connection,
                    &shared,
                    pace,
                    (start, record_from, end),
                    max_requests,
                    index as u64,
                )
                .await
            })
        })
        .collect();
    let mut total = Tally::new();
    for task in tasks {
        let tally = task.await?;
        total.ok_requests += tally.ok_requests;
        total.ok_events += tally.ok_events;
        total.failed += tally.failed;
        total.latency.add(&tally.latency)?;
        total.send_lag.add(&tally.send_lag)?;
    }
    let finished = Instant::now().min(end).max(record_from);
    Ok(Outcome {
        ok_requests: total.ok_requests,
        ok_events: total.ok_events,
        failed: total.failed,
        latency: total.latency,
        send_lag: total.send_lag,
        elapsed: if drive.max_requests == u64::MAX {
            drive.duration
        } else {
            finished - record_from
        },
    })
}

/// One connection's loop.
async fn worker(
    mut connection: Connection,
    shared: &Shared,
    pace: Pace,
    (start, record_from, end): (Instant, Instant, Instant),
    max_requests: u64,
    seed: u64,
) -> Tally {
    let mut tally = Tally::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    tokio::time::sleep_until(start).await;
    loop {
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        if n >= max_requests {
            break;
        }
        let intended = match pace {
            Pace::Open { interval } => start + Duration::from_nanos(interval.as_nanos() as u64 * n),
            Pace::Closed => Instant::now(),
        };
        if intended >= end {
            break;
        }
        let body = shared.payloads.body(n, &mut rng, shared.on_sent.is_some());
        tokio::time::sleep_until(intended).await;
        // Registered before the POST: the alert may reach a sink before the answer reaches us.
        if let Some(on_sent) = &shared.on_sent {
            on_sent(intended, body.alerting_uuids);
        }
        if connection.is_closed() {
            // Closed while idle: open another before sending, as a pooled client (Okta's) does;
            // the time it takes counts in this request's latency.
            if let Ok(fresh) = Connection::open(shared.target.addr).await {
                connection = fresh;
            }
        }
        let sent = Instant::now();
        let answered = connection.post(&shared.target, body.bytes).await;
        let done = Instant::now();
        let ok = match answered {
            Ok(ok) => ok,
            Err(_) => {
                // The connection broke: count it, open another, go on with the schedule.
                match Connection::open(shared.target.addr).await {
                    Ok(fresh) => connection = fresh,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
                false
            }
        };
        if ok {
            shared
                .acked
                .fetch_add(body.events as u64, Ordering::Relaxed);
        }
        if intended < record_from {
            continue;
        }
        if ok {
            tally.ok_requests += 1;
            tally.ok_events += body.events as u64;
        } else {
            tally.failed += 1;
        }
        tally.latency.saturating_record(micros(done - intended));
        if let Pace::Open { .. } = pace {
            tally.send_lag.saturating_record(micros(sent - intended));
        }
    }
    tally
}
