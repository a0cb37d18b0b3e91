//! Okta's side of the wire: the event-hook envelope, the LogEvents inside it, reading them from a
//! System Log export, which event types a hook can deliver, and realistic samples.

pub mod envelope;
pub mod event;
pub mod export;
pub mod hook_eligible;
pub mod samples;

pub use envelope::{Delivery, Envelope, EnvelopeCheck, EnvelopeError, Origin, SYSTEM_LOG_ENVELOPE};
pub use event::LogEvent;
