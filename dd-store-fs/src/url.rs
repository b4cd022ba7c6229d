//! `fs:` URLs: `fs:///absolute/dir` and `fs:relative/dir` (percent-encoded like any URL path).

use std::path::PathBuf;

use percent_encoding::percent_decode_str;

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
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let slash = authority_and_path
                .find('/')
                .unwrap_or(authority_and_path.len());
            let (host, path) = authority_and_path.split_at(slash);
            if !(host.is_empty() || host == "localhost") {
                return Err(bad(&format!(
                    "host '{host}' is not supported: the directory must be local (fs:///absolute/dir)"
                )));
            }
            path
        }
        None => rest,
    };
    if path.is_empty() {
        return Err(bad("the URL names no directory"));
    }
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|e| bad(&format!("the path is not UTF-8 after decoding: {e}")))?;
    Ok(PathBuf::from(decoded.into_owned()))
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
