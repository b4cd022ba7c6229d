//! Helpers for the store URLs of the backends (`sqlite:///var/lib/dd.db`, `fs:data/dd`,
//! `s3://bucket/prefix?region=…`, `cassandra://host:9042/keyspace`): the scheme, a local path
//! with an optional `//localhost` authority, percent-decoding and `name=value` query pairs. Each
//! backend wraps the reasons these return in its own typed error, naming the URL.
//!
//! ```
//! use dd_store::url::{decode, local_path, query_pairs, scheme_of, split_query};
//! assert_eq!(scheme_of("sqlite:///var/lib/dd.db"), Some("sqlite"));
//! assert_eq!(scheme_of("/var/lib/dd.db"), None);
//! let (path, query) = split_query("///a/dd%20x.db?synchronous=normal");
//! assert_eq!(local_path(path), Ok("/a/dd%20x.db"));
//! assert_eq!(decode(local_path(path).unwrap()).unwrap(), "/a/dd x.db");
//! let pairs: Vec<_> = query_pairs(query).collect();
//! assert_eq!(pairs, [("synchronous", "normal")]);
//! assert_eq!(local_path("//remote/a"), Err("remote"));
//! ```

use percent_encoding::percent_decode_str;

/// The scheme of `url` (the part before the first `:`), if it has one: a letter followed by
/// letters, digits, `+`, `-` or `.`.
pub fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Splits what follows the scheme into the part before `?` and the query after it, if any.
pub fn split_query(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    }
}

/// The path of a local URL's remainder (after `scheme:`): `//localhost/path` and `///path` give
/// `/path`, a remainder without `//` is the path itself. `Err` carries a host other than
/// `localhost` (the caller says why it is refused).
pub fn local_path(rest: &str) -> Result<&str, &str> {
    match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let slash = authority_and_path
                .find('/')
                .unwrap_or(authority_and_path.len());
            let (host, path) = authority_and_path.split_at(slash);
            if host.is_empty() || host == "localhost" {
                Ok(path)
            } else {
                Err(host)
            }
        }
        None => Ok(rest),
    }
}

/// Decodes `%XX` escapes; `Err` with the reason if the result is not UTF-8.
pub fn decode(text: &str) -> Result<String, String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|e| format!("the path is not UTF-8 after decoding: {e}"))
}

/// The `name=value` pairs of a query (`&`-separated; a pair without `=` has an empty value).
pub fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(scheme_of("s3://b/p"), Some("s3"));
        assert_eq!(scheme_of("cassandra://h/k"), Some("cassandra"));
        assert_eq!(scheme_of("c:\\dir"), Some("c"));
        assert_eq!(scheme_of("1x:y"), None);
        assert_eq!(scheme_of(":y"), None);
        assert_eq!(scheme_of("no scheme"), None);
    }

    #[test]
    fn local_paths() {
        assert_eq!(local_path("///a/b"), Ok("/a/b"));
        assert_eq!(local_path("//localhost/a/b"), Ok("/a/b"));
        assert_eq!(local_path("/a/b"), Ok("/a/b"));
        assert_eq!(local_path("rel/b"), Ok("rel/b"));
        assert_eq!(local_path("//"), Ok(""));
        assert_eq!(local_path("//host/a"), Err("host"));
        assert!(decode("a%FF").is_err());
        assert_eq!(
            query_pairs(Some("a=1&b&c=")).collect::<Vec<_>>(),
            [("a", "1"), ("b", ""), ("c", "")]
        );
        assert_eq!(query_pairs(None).count(), 0);
    }
}
