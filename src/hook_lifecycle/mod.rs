//! The event hook's lifecycle through Okta's API: which event types the loaded rules need and
//! how each reaches factorwatch ([`coverage`]), what registering would change ([`diff`]), and
//! the verification challenge played against factorwatch itself, to say why Okta's
//! verification fails when it does ([`challenge`]).
//!
//! Layer 5: it reads the rules (`detect`) and calls Okta (`okta_api`); the `okta register`,
//! `okta doctor` and `okta rotate-secret` commands print what it returns.

pub mod challenge;
pub mod coverage;
pub mod diff;

use crate::okta_api::EventHook;

/// The hook named `name` among `hooks`: the one this deployment registered (Okta keeps names
/// unique only by convention; the first wins, and [`duplicates`] names the others).
pub fn find_hook<'a>(hooks: &'a [EventHook], name: &str) -> Option<&'a EventHook> {
    hooks.iter().find(|hook| hook.name == name)
}

/// Hooks beyond the first that carry `name`: a second registration by hand, to clean up.
pub fn duplicates<'a>(hooks: &'a [EventHook], name: &str) -> Vec<&'a EventHook> {
    hooks
        .iter()
        .filter(|hook| hook.name == name)
        .skip(1)
        .collect()
}
