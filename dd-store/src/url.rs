//! Helpers for the store URLs of the backends (`sqlite:///var/lib/dd.db`, `fs:data/dd`,
//! `s3://bucket/prefix?region=…`, `cassandra://host:9042/keyspace`): the scheme, a local path
//! with an optional `//localhost` authority, the `//authority/path` of a remote store,
//! percent-decoding, `name=value` query pairs (raw or form-decoded) and their boolean, number and
//! millisecond values. Each backend wraps the reasons these return in its own typed error, naming
//! the URL.
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
//!
//! use dd_store::url::{authority, form_pairs, parse_bool, parse_millis};
//! assert_eq!(authority("//bucket/dd/prod"), Some(("bucket", "/dd/prod")));
//! let pairs: Vec<_> = form_pairs(Some("region=eu%2Dwest&path_style=true")).collect();
//! assert_eq!(pairs[0], ("region".into(), "eu-west".into()));
//! assert_eq!(parse_bool("path_style", &pairs[1].1), Ok(true));
//! assert_eq!(parse_millis("t", "250"), Ok(std::time::Duration::from_millis(250)));
//! assert!(parse_bool("path_style", "maybe").unwrap_err().contains("'path_style'"));
//! ```

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What [`encode_value`] escapes: everything but ASCII letters, digits and `-._~`.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What [`encode_path`] escapes: as [`VALUE`], but `/` stays.
const PATH: &AsciiSet = &VALUE.remove(b'/');

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

/// `text` percent-encoded for a URL path (`/` kept): the inverse of [`decode`].
pub fn encode_path(text: &str) -> String {
    utf8_percent_encode(text, PATH).to_string()
}

/// `text` percent-encoded for a query value (`&`, `=`, `+`, `/` escaped too): what
/// [`form_pairs`] decodes back to `text`.
pub fn encode_value(text: &str) -> String {
    utf8_percent_encode(text, VALUE).to_string()
}

/// The `name=value` pairs of a query (`&`-separated; a pair without `=` has an empty value).
pub fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// The authority and the path of a remote URL's remainder (after `scheme:`, without its query):
/// `//bucket/prefix` gives `("bucket", "/prefix")`, `//host:9042` gives `("host:9042", "")`.
/// `None` when the remainder does not start with `//`.
pub fn authority(rest: &str) -> Option<(&str, &str)> {
    let after = rest.strip_prefix("//")?;
    let slash = after.find('/').unwrap_or(after.len());
    Some(after.split_at(slash))
}

/// The `name=value` pairs of a query, form-decoded (`%XX` escapes and `+` for a space, as
/// `application/x-www-form-urlencoded`; invalid UTF-8 becomes U+FFFD); empty pairs are skipped.
pub fn form_pairs(query: Option<&str>) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
}

/// A boolean query value: `true`, `1`, `yes` or `false`, `0`, `no`. `Err` names the parameter.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!(
            "parameter '{name}' must be true or false, not '{value}'"
        )),
    }
}

/// A non-negative number query value. `Err` names the parameter.
pub fn parse_number<T: FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("parameter '{name}' must be a non-negative number, not '{value}'"))
}

/// A query value in milliseconds (`connect_timeout_ms=500`). `Err` names the parameter.
pub fn parse_millis(name: &str, value: &str) -> Result<Duration, String> {
    parse_number(name, value).map(Duration::from_millis)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
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

    #[test]
    fn remote_parts_and_values() {
        assert_eq!(authority("//b/p/q"), Some(("b", "/p/q")));
        assert_eq!(authority("//h1,h2:9043"), Some(("h1,h2:9043", "")));
        assert_eq!(authority("//"), Some(("", "")));
        assert_eq!(authority("b/p"), None);
        let pairs: Vec<_> = form_pairs(Some("a=x+y&&b=%2F&c")).collect();
        assert_eq!(
            pairs,
            [
                ("a".into(), "x y".into()),
                ("b".into(), "/".into()),
                ("c".into(), "".into())
            ]
        );
        assert_eq!(form_pairs(None).count(), 0);
        assert_eq!(parse_bool("b", "no"), Ok(false));
        let err = parse_bool("create_schema", "maybe").unwrap_err();
        assert!(
            err.contains("'create_schema'") && err.contains("'maybe'"),
            "{err}"
        );
        assert_eq!(parse_number::<u32>("n", "7"), Ok(7));
        let err = parse_number::<u64>("page_size", "-1").unwrap_err();
        assert!(err.contains("'page_size'") && err.contains("'-1'"), "{err}");
        assert!(parse_millis("t", "soon").unwrap_err().contains("'t'"));
    }

    #[test]
    fn encoding_round_trips() {
        let text = "dd/p x+y&z=1%é";
        assert_eq!(encode_path(text), "dd/p%20x%2By%26z%3D1%25%C3%A9");
        assert_eq!(decode(&encode_path(text)).unwrap(), text);
        let query = format!("k={}", encode_value(text));
        let pairs: Vec<_> = form_pairs(Some(&query)).collect();
        assert_eq!(pairs, [("k".into(), text.into())]);
    }
}
