//! Okta's side of the wire: the event-hook envelope, the LogEvents inside it, and realistic samples.

pub mod envelope;
pub mod event;
pub mod samples;

pub use envelope::{Envelope, EnvelopeCheck, EnvelopeError, Origin};
pub use event::LogEvent;
