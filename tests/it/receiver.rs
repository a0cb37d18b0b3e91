//! A local HTTP endpoint standing in for webhook, Slack and PagerDuty receivers.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::helpers::eventually;

/// A local endpoint that records every request and answers with a status the test controls.
#[derive(Clone, Default)]
pub struct Receiver {
    pub requests: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    /// Answer this status to the first `failures` requests, 200 afterwards.
    failing_status: Arc<AtomicU16>,
    failures: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    pub fn fail_first(&self, count: usize, status: u16) {
        self.failing_status.store(status, Ordering::SeqCst);
        self.failures.store(count, Ordering::SeqCst);
    }

    pub async fn wait_for(&self, count: usize) -> Vec<(HeaderMap, Bytes)> {
        let awaited = format!("{count} requests");
        eventually(Duration::from_secs(20), &awaited, async || {
            let requests = self.requests.lock().unwrap().clone();
            if requests.len() >= count {
                Ok(requests)
            } else {
                Err(format!("only {}", requests.len()))
            }
        })
        .await
    }
}

async fn record(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver.requests.lock().unwrap().push((headers, body));
    let failing = receiver
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::from_u16(receiver.failing_status.load(Ordering::SeqCst)).unwrap()
    } else {
        StatusCode::ACCEPTED
    }
}
