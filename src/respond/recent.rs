//! What a response executed in the last hour, per action and user: an incident's repeats (one
//! reset raises several alerts about one user) then act once and spend the cap once. Kept in
//! memory, filled from the ledger once after a start, so its cost does not grow with the ledger.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::alert::{ActionOutcome, ActionRecord};
use crate::clock::parse_rfc3339_ms;

use super::cap::HOUR;

/// The executed actions of one response within the hour, by (action, user id): the action id
/// and when (Unix ms).
#[derive(Default)]
pub struct Recent {
    done: Mutex<HashMap<(String, String), (String, u64)>>,
}

impl Recent {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (String, u64)>> {
        self.done.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers the executed, not undone, actions among `records` (the response's own).
    pub fn seed<'a>(&self, records: impl IntoIterator<Item = &'a ActionRecord>) {
        for record in records {
            let executed = record.outcome == ActionOutcome::Executed && record.undone_at.is_none();
            let at = parse_rfc3339_ms(&record.at).map(|at| at as u64);
            if let (true, Some(user), Some(at)) = (executed, &record.target_id, at) {
                self.note(&record.action, user, &record.id, at);
            }
        }
    }

    /// The id of an action `action` executed on `user` within the hour before `now_ms`.
    pub fn earlier(&self, action: &str, user: &str, now_ms: u64) -> Option<String> {
        let since = now_ms.saturating_sub(HOUR.as_millis() as u64);
        let mut done = self.entries();
        done.retain(|_, (_, at)| *at > since);
        let key = (action.to_owned(), user.to_owned());
        done.get(&key).map(|(id, _)| id.clone())
    }

    /// Remembers that `id` executed `action` on `user` at `at_ms`.
    pub fn note(&self, action: &str, user: &str, id: &str, at_ms: u64) {
        let key = (action.to_owned(), user.to_owned());
        self.entries().insert(key, (id.to_owned(), at_ms));
    }

    /// Forgets the action `id` (it was undone: doing it again is allowed).
    pub fn forget(&self, id: &str) {
        self.entries().retain(|_, (done, _)| done != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_on_a_user_is_remembered_for_an_hour_unless_undone() {
        let recent = Recent::default();
        recent.note("suspend_user", "00u1", "a1", 1_000);
        assert_eq!(
            recent.earlier("suspend_user", "00u1", 2_000).as_deref(),
            Some("a1")
        );
        assert_eq!(recent.earlier("raise_risk", "00u1", 2_000), None);
        assert_eq!(recent.earlier("suspend_user", "00u2", 2_000), None);
        let later = 1_000 + HOUR.as_millis() as u64;
        assert_eq!(recent.earlier("suspend_user", "00u1", later), None);
        recent.note("suspend_user", "00u1", "a2", later);
        recent.forget("a2");
        assert_eq!(recent.earlier("suspend_user", "00u1", later), None);
    }
}
