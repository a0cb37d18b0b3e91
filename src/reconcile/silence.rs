//! The event hook's silence: the System Log shows events the hook should have delivered, and no
//! delivery came for `silence_after`.
//!
//! The poller keeps the `published` time of each hook-eligible event it read after the hook's
//! last delivery, once per event (a poller may read a page again). An event published at least `silence_after` ago, after the last delivery, is
//! one the hook had every chance to deliver and did not: while there is one, the hook is silent.
//! A delivery ends the silence (the events before it are forgotten); the next silence is a new
//! episode. Each episode is named by the delivery it followed, so it raises one alert: its event
//! uuid, and so its alert id, is the same whichever replica raises it and however often (a
//! restart, a lease that moved), and de-duplication drops the repeats.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

/// The `eventType` of the event factorwatch makes when the hook goes silent, which the built-in
/// rule "Okta Event Hook Silent" matches.
pub const HOOK_SILENT_EVENT_TYPE: &str = "factorwatch.hook.silent";

/// Namespace of the silence events' uuids (UUIDv5): fixed, so an episode has one uuid on every
/// replica and across versions.
const EPISODE_NAMESPACE: Uuid = Uuid::from_u128(0x2f8e_61c4_93b7_4d0a_8e15_c7a9_04d3_b6e2);

/// What the poller knows of the hook's deliveries and of the events it should have delivered.
#[derive(Debug)]
pub struct Silence {
    silence_after_ms: u64,
    /// While no delivery was ever recorded, events published before the poller started are not
    /// counted: the hook may have delivered them to a version that did not record deliveries.
    watching_since_ms: u64,
    /// The hook's last delivery (Unix ms), the fleet's in a cluster.
    last_delivery_ms: Option<u64>,
    /// `published` (Unix ms) and key (uuid) of each hook-eligible event read that is later than
    /// the last delivery, oldest first.
    waiting: VecDeque<(u64, String)>,
    /// The episode whose alert was raised, named by the delivery it followed.
    alerted: Option<Option<u64>>,
}

/// A silence: what its alert and `/readyz` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    /// The delivery the silence followed (Unix ms); `None`: no delivery on record.
    pub last_delivery_ms: Option<u64>,
    /// Events the hook should have delivered and did not (published after the last delivery,
    /// at least `silence_after` ago).
    pub missed: u64,
    /// The earliest `published` of those (Unix ms).
    pub first_missed_ms: u64,
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The silence in progress, if the hook is silent.
    pub episode: Option<Episode>,
    /// Whether that episode still needs its alert.
    pub needs_alert: bool,
}

impl Silence {
    /// Nothing seen yet, watching from `now_ms`.
    pub fn new(silence_after: Duration, now_ms: u64) -> Self {
        Self {
            silence_after_ms: silence_after.as_millis() as u64,
            watching_since_ms: now_ms,
            last_delivery_ms: None,
            waiting: VecDeque::new(),
            alerted: None,
        }
    }

    /// The hook's last delivery is `last_ms` (it only ever moves forward): the events published
    /// up to it are no longer waiting.
    pub fn delivered(&mut self, last_ms: Option<u64>) {
        if last_ms <= self.last_delivery_ms {
            return;
        }
        self.last_delivery_ms = last_ms;
        while self
            .waiting
            .front()
            .is_some_and(|(published, _)| Some(*published) <= last_ms)
        {
            self.waiting.pop_front();
        }
    }

    /// The poller read hook-eligible events: each one's `published` (Unix ms) and key (its
    /// uuid). An event read before is counted once.
    pub fn read(&mut self, events: impl IntoIterator<Item = (u64, String)>) {
        let floor = self.last_delivery_ms.unwrap_or(self.watching_since_ms);
        for (at, key) in events.into_iter().filter(|(at, _)| *at > floor) {
            // Pages come in `published` order, so this is almost always the end.
            let first = self.waiting.partition_point(|(waiting, _)| *waiting < at);
            let after = self.waiting.partition_point(|(waiting, _)| *waiting <= at);
            if !self
                .waiting
                .range(first..after)
                .any(|(_, seen)| *seen == key)
            {
                self.waiting.insert(after, (at, key));
            }
        }
    }

    /// Whether the hook is silent at `now_ms`, and whether that episode still needs its alert.
    pub fn check(&self, now_ms: u64) -> Check {
        let due = now_ms.saturating_sub(self.silence_after_ms);
        let missed = self
            .waiting
            .partition_point(|(published, _)| *published <= due);
        let episode = self
            .waiting
            .front()
            .filter(|_| missed > 0)
            .map(|(first, _)| Episode {
                last_delivery_ms: self.last_delivery_ms,
                missed: missed as u64,
                first_missed_ms: *first,
            });
        let needs_alert = episode
            .as_ref()
            .is_some_and(|episode| self.alerted != Some(episode.last_delivery_ms));
        Check {
            episode,
            needs_alert,
        }
    }

    /// The alert of `episode` was raised (its event is stored).
    pub fn alerted(&mut self, episode: &Episode) {
        self.alerted = Some(episode.last_delivery_ms);
    }
}

impl Episode {
    /// The event the rule "Okta Event Hook Silent" alerts on, shaped like a System Log event of
    /// the org at `org_url`, published `now_ms`.
    pub fn event(&self, org_url: &str, silence_after: Duration, now_ms: u64) -> serde_json::Value {
        let last_delivery = self.last_delivery_ms.map(crate::clock::rfc3339);
        let since = last_delivery.as_deref().map_or_else(
            || "no delivery on record".to_owned(),
            |at| format!("last delivery {at}"),
        );
        let silence_after = humantime::format_duration(silence_after).to_string();
        json!({
            "uuid": self.uuid(org_url),
            "published": crate::clock::rfc3339(now_ms),
            "eventType": HOOK_SILENT_EVENT_TYPE,
            "version": "0",
            "severity": "WARN",
            "displayMessage": format!(
                "Okta event hook silent: {} events it should have delivered are only in the System Log ({since})",
                self.missed
            ),
            "actor": {
                "id": "factorwatch",
                "type": "SystemPrincipal",
                "alternateId": "factorwatch",
                "displayName": "factorwatch",
            },
            "outcome": {
                "result": "FAILURE",
                "reason": format!("no event hook delivery for {silence_after} or more ({since})"),
            },
            "target": [{
                "id": org_url,
                "type": "EventHook",
                "alternateId": org_url,
                "displayName": "event hook of factorwatch",
            }],
            "debugContext": {
                "debugData": {
                    "missedEvents": self.missed,
                    "lastDelivery": last_delivery,
                    "firstMissedPublished": crate::clock::rfc3339(self.first_missed_ms),
                    "silenceAfter": silence_after,
                },
            },
        })
    }

    /// One uuid per org and episode.
    fn uuid(&self, org_url: &str) -> String {
        let after = self
            .last_delivery_ms
            .map_or_else(|| "none".to_owned(), |ms| ms.to_string());
        let name = format!("hook-silent\n{org_url}\n{after}");
        Uuid::new_v5(&EPISODE_NAMESPACE, name.as_bytes()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;

    /// Watching from minute 0, silence after 15 minutes.
    fn watching() -> Silence {
        Silence::new(Duration::from_secs(15 * 60), 0)
    }

    /// Events published at these times, each its own.
    fn events(published: &[u64]) -> Vec<(u64, String)> {
        published
            .iter()
            .map(|at| (*at, format!("event at {at}")))
            .collect()
    }

    #[test]
    fn events_the_hook_did_not_deliver_for_silence_after_make_it_silent_once() {
        let mut silence = watching();
        silence.delivered(Some(MINUTE));
        silence.read(events(&[2 * MINUTE, 3 * MINUTE, 20 * MINUTE]));
        assert_eq!(
            silence.check(16 * MINUTE).episode,
            None,
            "not yet 15 minutes"
        );
        let check = silence.check(18 * MINUTE);
        let episode = check.episode.clone().unwrap();
        assert!(check.needs_alert);
        assert_eq!(episode.missed, 2, "the third was published 2 minutes ago");
        assert_eq!(episode.last_delivery_ms, Some(MINUTE));
        assert_eq!(episode.first_missed_ms, 2 * MINUTE);
        silence.alerted(&episode);
        let later = silence.check(40 * MINUTE);
        assert_eq!(later.episode.unwrap().missed, 3, "the count goes on");
        assert!(!later.needs_alert, "one alert per episode");
    }

    #[test]
    fn a_delivery_ends_the_episode_and_the_next_silence_is_a_new_one() {
        let mut silence = watching();
        silence.delivered(Some(MINUTE));
        silence.read(events(&[2 * MINUTE]));
        let first = silence.check(20 * MINUTE).episode.unwrap();
        silence.alerted(&first);

        silence.delivered(Some(21 * MINUTE));
        assert_eq!(silence.check(22 * MINUTE).episode, None, "delivering again");

        silence.read(events(&[20 * MINUTE, 23 * MINUTE]));
        let check = silence.check(40 * MINUTE);
        let second = check.episode.unwrap();
        assert!(check.needs_alert);
        assert_eq!(
            second.missed, 1,
            "the event before the delivery is not missed"
        );
        assert_eq!(second.last_delivery_ms, Some(21 * MINUTE));
        let org = "https://acme.okta.com";
        assert_ne!(first.uuid(org), second.uuid(org), "a new alert id");
    }

    #[test]
    fn an_episode_has_one_uuid_wherever_and_whenever_it_is_raised() {
        let episode = |missed| Episode {
            last_delivery_ms: Some(MINUTE),
            missed,
            first_missed_ms: 2 * MINUTE,
        };
        let org = "https://acme.okta.com";
        let event = episode(3).event(org, Duration::from_secs(900), 30 * MINUTE);
        assert_eq!(event["uuid"], episode(7).uuid(org));
        assert_ne!(
            episode(3).uuid(org),
            episode(3).uuid("https://globex.okta.com")
        );
        assert_eq!(event["eventType"], HOOK_SILENT_EVENT_TYPE);
        assert_eq!(event["debugContext"]["debugData"]["missedEvents"], 3);
        assert_eq!(
            event["debugContext"]["debugData"]["lastDelivery"],
            "1970-01-01T00:01:00.000Z"
        );
        let message = event["displayMessage"].as_str().unwrap();
        assert!(
            message.contains("3 events") && message.contains("1970-01-01T00:01:00.000Z"),
            "{message}"
        );
    }

    #[test]
    fn an_event_read_again_is_counted_once() {
        let mut silence = watching();
        let page = vec![(2 * MINUTE, "a".to_owned()), (2 * MINUTE, "b".to_owned())];
        silence.read(page.clone());
        silence.read(page);
        assert_eq!(silence.check(20 * MINUTE).episode.unwrap().missed, 2);
    }

    #[test]
    fn without_a_delivery_on_record_only_events_since_watching_count() {
        let mut silence = Silence::new(Duration::from_secs(15 * 60), 10 * MINUTE);
        silence.read(events(&[5 * MINUTE, 11 * MINUTE]));
        let episode = silence.check(30 * MINUTE).episode.unwrap();
        assert_eq!(episode.missed, 1);
        assert_eq!(episode.last_delivery_ms, None);
    }

    #[test]
    fn a_delivery_that_arrives_late_forgets_only_what_it_covers() {
        let mut silence = watching();
        silence.read(events(&[2 * MINUTE, 4 * MINUTE, 6 * MINUTE]));
        silence.delivered(Some(4 * MINUTE));
        silence.delivered(Some(3 * MINUTE));
        let episode = silence.check(30 * MINUTE).episode.unwrap();
        assert_eq!(episode.missed, 1, "{episode:?}");
        assert_eq!(
            episode.last_delivery_ms,
            Some(4 * MINUTE),
            "never goes back"
        );
    }
}
