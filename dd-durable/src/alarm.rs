//! The loud, rate-limited error about two live processes sharing one replica name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dd_core::ReplicaId;

use crate::lock;

#[derive(Debug)]
pub(crate) struct ConflictAlarm {
    interval: Duration,
    last: Mutex<HashMap<(ReplicaId, String), Instant>>,
}

impl ConflictAlarm {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Logs the error unless it was logged for this key within the interval; returns whether it
    /// logged.
    pub(crate) fn raise(&self, backend: &str, replica: &ReplicaId, key: &str) -> bool {
        let now = Instant::now();
        let mut last = lock(&self.last);
        let id = (replica.clone(), key.to_owned());
        if let Some(at) = last.get(&id)
            && now.duration_since(*at) < self.interval
        {
            return false;
        }
        last.retain(|_, at| now.duration_since(*at) < self.interval);
        last.insert(id, now);
        tracing::error!(
            backend,
            replica = %replica,
            key,
            "another live process appears to write under the same replica name: the stored \
             record changed behind this process's back; values are merged so nothing is lost, \
             but every replica needs a unique name"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_per_key_per_interval() {
        let alarm = ConflictAlarm::new(Duration::from_secs(3600));
        let r = ReplicaId::new("r");
        assert!(alarm.raise("memory", &r, "a"));
        assert!(!alarm.raise("memory", &r, "a"));
        assert!(alarm.raise("memory", &r, "b"));
        let always = ConflictAlarm::new(Duration::ZERO);
        assert!(always.raise("memory", &r, "a"));
        assert!(always.raise("memory", &r, "a"));
    }
}
