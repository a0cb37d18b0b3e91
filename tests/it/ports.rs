//! Loopback ports for the servers a test starts in a child process (factorwatch, a backend,
//! HAProxy), which must be told their port before they bind it. Shared by the integration and
//! the docs tests.
//!
//! Asking the kernel for a port (`bind` to port 0, then release it) is not safe while other tests
//! run: the kernel hands out the same ephemeral range to every outgoing connection and to the
//! next `bind` to port 0, so the port can be taken between its release and the child's own bind.
//! A replica of a fleet test once lost its port that way and a server of another test answered in
//! its place. The ports here come from below the ephemeral range (Linux's default starts at
//! 32768), which the kernel never hands out on its own, and from a counter this process never
//! repeats.

use std::net::TcpListener;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The first port handed out (above the well-known services of this machine kind: RabbitMQ's
/// management on 15672 and others below).
const FIRST: u32 = 20_000;
/// One past the last port handed out (below the kernel's ephemeral range and RabbitMQ's 25672).
const END: u32 = 25_000;

/// A loopback port nothing listens on, never handed out before by this process: a test's child
/// process binds it (and binds it again after a restart) without another test taking it meanwhile.
pub fn free_port() -> u16 {
    // Each test binary starts at its own offset, so two that run at once rarely meet.
    static NEXT: LazyLock<AtomicU32> =
        LazyLock::new(|| AtomicU32::new(std::process::id() % (END - FIRST)));
    for _ in FIRST..END {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % (END - FIRST);
        let port = u16::try_from(FIRST + offset).expect("a port below 65536");
        // A port another program listens on is skipped.
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {END}")
}
