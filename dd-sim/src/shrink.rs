//! Delta debugging (Zeller's ddmin) over the event list of a failing run: the shortest sub-list
//! of events that still fails, found within a bound of runs and wall time.

use std::time::{Duration, Instant};

/// Shrinks `events` (known to fail) to a sub-list on which `fails` still holds, trying at most
/// `max_runs` candidates and stopping after `budget`. Returns the indices (into `events`) of
/// the events kept, in order.
pub fn ddmin<T: Clone>(
    events: &[T],
    max_runs: usize,
    budget: Duration,
    mut fails: impl FnMut(&[T]) -> bool,
) -> Vec<usize> {
    let started = Instant::now();
    let mut kept: Vec<usize> = (0..events.len()).collect();
    let mut runs = 0usize;
    let mut granularity = 2usize;
    let pick = |idx: &[usize]| -> Vec<T> { idx.iter().map(|i| events[*i].clone()).collect() };
    while kept.len() >= 2 {
        let chunk = kept.len().div_ceil(granularity);
        let chunks: Vec<Vec<usize>> = kept.chunks(chunk).map(<[usize]>::to_vec).collect();
        let mut reduced = false;
        // Try each chunk alone, then each complement.
        for (i, c) in chunks.iter().enumerate() {
            if runs >= max_runs || started.elapsed() >= budget {
                return kept;
            }
            runs += 1;
            if fails(&pick(c)) {
                kept = c.clone();
                granularity = 2;
                reduced = true;
                break;
            }
            if chunks.len() == 2 {
                continue;
            }
            let complement: Vec<usize> = chunks
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, c)| c.iter().copied())
                .collect();
            runs += 1;
            if fails(&pick(&complement)) {
                kept = complement;
                granularity = granularity.saturating_sub(1).max(2);
                reduced = true;
                break;
            }
        }
        if !reduced {
            if granularity >= kept.len() {
                break;
            }
            granularity = (granularity * 2).min(kept.len());
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_two_events_that_fail_together() {
        let events: Vec<u32> = (0..40).collect();
        let kept = ddmin(&events, 10_000, Duration::from_secs(60), |sub| {
            sub.contains(&7) && sub.contains(&31)
        });
        assert_eq!(kept, vec![7, 31]);
    }

    #[test]
    fn stops_at_the_run_bound() {
        let events: Vec<u32> = (0..40).collect();
        let mut runs = 0;
        let _ = ddmin(&events, 3, Duration::from_secs(60), |_| {
            runs += 1;
            false
        });
        assert!(runs <= 4, "{runs}");
    }
}
