//! `fs:` URLs: `fs:///absolute/dir` and `fs:relative/dir` (percent-encoded like any URL path).

use std::path::PathBuf;

use dd_store::url;

use crate::error::FsError;

/// The directory an `fs:` URL names.
///
/// Accepted forms: `fs:///absolute/dir`, `fs://localhost/absolute/dir`, `fs:/absolute/dir` and
/// `fs:relative/dir`; `%XX` escapes in the path are decoded. Anything else (another scheme, a
/// remote host, a query or fragment, an empty path) is an [`FsError::BadUrl`].
///
/// ```
/// use std::path::PathBuf;
/// use dd_store_fs::parse_url;
/// assert_eq!(parse_url("fs:///var/lib/dd").unwrap(), PathBuf::from("/var/lib/dd"));
/// assert_eq!(parse_url("fs:data/dd%20state").unwrap(), PathBuf::from("data/dd state"));
/// assert!(parse_url("sqlite:///var/lib/dd.db").is_err());
/// ```
pub fn parse_url(url: &str) -> Result<PathBuf, FsError> {
    let bad = |reason: &str| FsError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(rest) = url.strip_prefix("fs:") else {
        return Err(bad(
            "the scheme must be 'fs:' (fs:///absolute/dir or fs:relative/dir)",
        ));
    };
    if rest.contains('?') || rest.contains('#') {
        return Err(bad(
            "fs URLs take no query or fragment (escape '?' and '#' as %3F and %23)",
        ));
    }
    let path = url::local_path(rest).map_err(|host| {
        bad(&format!(
            "host '{host}' is not supported: the directory must be local (fs:///absolute/dir)"
        ))
    })?;
    if path.is_empty() {
        return Err(bad("the URL names no directory"));
    }
    let decoded = url::decode(path).map_err(|reason| bad(&reason))?;
    Ok(PathBuf::from(decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let ok = |u: &str| parse_url(u).map_err(|e| e.to_string());
        assert_eq!(ok("fs:///a/b"), Ok(PathBuf::from("/a/b")));
        assert_eq!(ok("fs://localhost/a/b"), Ok(PathBuf::from("/a/b")));
        assert_eq!(ok("fs:/a/b"), Ok(PathBuf::from("/a/b")));
        assert_eq!(ok("fs:rel/dir"), Ok(PathBuf::from("rel/dir")));
        for bad in [
            "fs:",
            "fs://",
            "fs://host/a",
            "file:///a",
            "/a/b",
            "fs:///a?x=1",
            "fs:a%FF",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
