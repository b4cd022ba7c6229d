//! Benchmark options read from environment variables (each area names its own).

/// The value of the environment variable `var` (decoded lossily), or `None` when it is not set.
pub fn value(var: &str) -> Option<String> {
    std::env::var_os(var).map(|v| v.to_string_lossy().into_owned())
}

/// The comma-separated items of `value`, trimmed, empty ones left out.
pub fn items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|v| !v.is_empty())
}
