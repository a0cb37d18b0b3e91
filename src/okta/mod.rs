//! Okta's side of the wire: the event-hook envelope, the LogEvents inside it, reading them from a
//! System Log export, and realistic samples.

pub mod envelope;
pub mod event;
pub mod export;
pub mod samples;

pub use envelope::{Envelope, EnvelopeCheck, EnvelopeError, Origin};
pub use event::LogEvent;
