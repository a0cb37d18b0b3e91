//! The answers of recent lookups, reused for later alerts about the same user: bounded in time
//! (`ttl`) and in size (`max_entries`, the oldest forgotten first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::lookup::{Answer, Lookup};

/// The cache of one org's lookups. Only answers are kept: a failed lookup is tried again by the
/// next alert.
#[derive(Debug)]
pub(super) struct Cache {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<Lookup, (Instant, Answer)>>,
}

impl Cache {
    pub(super) fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Lookup, (Instant, Answer)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer to `lookup` if one younger than `ttl` is kept.
    pub(super) fn get(&self, lookup: &Lookup, now: Instant) -> Option<Answer> {
        let entries = self.lock();
        let (stored, answer) = entries.get(lookup)?;
        (now.duration_since(*stored) < self.ttl).then(|| answer.clone())
    }

    /// Keeps `answer`; when full, drops the expired entries, then the oldest. The scan is linear,
    /// but runs only when the cache is full, and only for an MFA alert.
    pub(super) fn put(&self, lookup: Lookup, answer: Answer, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= self.max_entries && !entries.contains_key(&lookup) {
            entries.retain(|_, (stored, _)| now.duration_since(*stored) < self.ttl);
            while entries.len() >= self.max_entries {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (stored, _))| *stored)
                    .map(|(key, _)| key.clone());
                match oldest {
                    Some(key) => entries.remove(&key),
                    None => break,
                };
            }
        }
        entries.insert(lookup, (now, answer));
    }
}

#[cfg(test)]
mod tests {
    use super::super::lookup::LookupKind;
    use super::*;

    fn roles_of(user: &str) -> Lookup {
        Lookup {
            kind: LookupKind::Roles,
            user_id: user.to_owned(),
        }
    }

    #[test]
    fn answers_expire_and_the_oldest_goes_first() {
        let cache = Cache::new(Duration::from_secs(60), 2);
        let start = Instant::now();
        cache.put(roles_of("a"), Answer::Roles(vec![]), start);
        cache.put(
            roles_of("b"),
            Answer::Roles(vec![]),
            start + Duration::from_secs(1),
        );
        assert!(cache.get(&roles_of("a"), start).is_some());
        cache.put(
            roles_of("c"),
            Answer::Roles(vec![]),
            start + Duration::from_secs(2),
        );
        assert!(
            cache.get(&roles_of("a"), start).is_none(),
            "the oldest is forgotten"
        );
        assert!(cache.get(&roles_of("b"), start).is_some());
        let later = start + Duration::from_millis(61_500);
        assert!(
            cache.get(&roles_of("b"), later).is_none(),
            "expired after ttl"
        );
        assert!(cache.get(&roles_of("c"), later).is_some());
    }
}
