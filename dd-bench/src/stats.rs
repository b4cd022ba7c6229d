//! Medians and the helpers that turn repeated measurements into one figure.

/// The median of `values` (mean of the two middle values for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return 0.0;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// `part / whole`, or 0 when `whole` is 0.
pub fn ratio(part: f64, whole: f64) -> f64 {
    if whole == 0.0 { 0.0 } else { part / whole }
}

/// A rate such as `1234/s`, `12.3k/s`, with the unit given.
pub fn fmt_rate(per_second: f64, unit: &str) -> String {
    if per_second >= 10_000.0 {
        format!("{:.1}k {unit}/s", per_second / 1000.0)
    } else if per_second >= 100.0 {
        format!("{per_second:.0} {unit}/s")
    } else {
        format!("{per_second:.1} {unit}/s")
    }
}

/// A duration in seconds as `1.23 s`, `45.6 ms` or `789 µs`.
pub fn fmt_secs(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 0.001 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{:.0} µs", seconds * 1e6)
    }
}

/// A byte count as `123 B`, `4.5 KiB` or `6.7 MiB`.
pub fn fmt_bytes(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    } else if bytes >= 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{bytes:.0} B")
    }
}

/// A ratio as `1.23x`.
pub fn fmt_ratio(ratio: f64) -> String {
    if ratio >= 100.0 {
        format!("{ratio:.0}x")
    } else {
        format!("{ratio:.2}x")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn formats_pick_a_readable_unit() {
        assert_eq!(fmt_rate(12_345.0, "updates"), "12.3k updates/s");
        assert_eq!(fmt_rate(123.4, "updates"), "123 updates/s");
        assert_eq!(fmt_secs(1.5), "1.50 s");
        assert_eq!(fmt_secs(0.0123), "12.3 ms");
        assert_eq!(fmt_bytes(2048.0), "2.0 KiB");
        assert_eq!(fmt_ratio(0.8), "0.80x");
        assert_eq!(ratio(1.0, 0.0), 0.0);
    }
}
