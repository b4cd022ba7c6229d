//! `fs:` URLs: `fs:///absolute/dir` and `fs:relative/dir` (percent-encoded like any URL path).

use std::path::PathBuf;

use dd_store::url;

use crate::error::FsError;

/// Everything [`crate::open`] needs: the store directory (created if missing). Make one with
/// [`FsOptions::new`] or parse an `fs:` URL with [`FsOptions::from_url`].
///
/// ```
/// use std::path::PathBuf;
/// use dd_store_fs::FsOptions;
/// assert_eq!(FsOptions::from_url("fs:///var/lib/dd").unwrap(), FsOptions::new("/var/lib/dd"));
/// assert_eq!(FsOptions::from_url("fs:data/dd%20state").unwrap().dir, PathBuf::from("data/dd state"));
/// assert!(FsOptions::from_url("sqlite:///var/lib/dd.db").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsOptions {
    /// The store directory.
    pub dir: PathBuf,
}

impl FsOptions {
    /// The options of the store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> FsOptions {
        FsOptions { dir: dir.into() }
    }

    /// Parses an `fs:` URL.
    ///
    /// Accepted forms: `fs:///absolute/dir`, `fs://localhost/absolute/dir`, `fs:/absolute/dir`
    /// and `fs:relative/dir`; `%XX` escapes in the path are decoded. Anything else (another
    /// scheme, a remote host, a query or fragment, an empty path) is an [`FsError::BadUrl`]
    /// naming the URL and what is wrong.
    pub fn from_url(url: &str) -> Result<FsOptions, FsError> {
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
        Ok(FsOptions::new(decoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<PathBuf, String> {
        FsOptions::from_url(url)
            .map(|o| o.dir)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn forms() {
        assert_eq!(parse("fs:///a/b"), Ok(PathBuf::from("/a/b")));
        assert_eq!(parse("fs://localhost/a/b"), Ok(PathBuf::from("/a/b")));
        assert_eq!(parse("fs:/a/b"), Ok(PathBuf::from("/a/b")));
        assert_eq!(parse("fs:rel/dir"), Ok(PathBuf::from("rel/dir")));
    }

    /// Each bad URL is refused with an error naming the URL and what is wrong with it.
    #[test]
    fn bad_urls_name_what_is_wrong() {
        for (bad, needle) in [
            ("fs:", "names no directory"),
            ("fs://", "names no directory"),
            ("fs://host/a", "host 'host'"),
            ("file:///a", "scheme must be 'fs:'"),
            ("/a/b", "scheme must be 'fs:'"),
            ("fs:///a?x=1", "no query or fragment"),
            ("fs:///a#x", "no query or fragment"),
            ("fs:a%FF", "not UTF-8"),
        ] {
            let Err(err) = parse(bad) else {
                panic!("{bad} was accepted");
            };
            assert!(err.contains(bad), "{bad}: the error names no URL: {err}");
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
