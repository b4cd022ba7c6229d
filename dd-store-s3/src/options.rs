//! How to reach the bucket: [`S3Options`], its builder and the `s3://` URL form.

use std::fmt;
use std::time::Duration;

use dd_store::url as dd_url;
use url::Url;

use crate::error::{S3Error, S3ErrorKind};

/// Explicit credentials (instead of the standard AWS credential chain).
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
    /// An optional session token (temporary credentials).
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Everything [`open`](crate::open) needs. Build one with
/// [`S3Options::builder`] or parse an `s3://` URL with [`S3Options::from_url`].
///
/// ```
/// use std::time::Duration;
/// use dd_store_s3::S3Options;
/// let options = S3Options::builder("my-bucket")
///     .prefix("dd/prod")
///     .region("eu-west-1")
///     .endpoint("http://127.0.0.1:9000")
///     .path_style(true)
///     .operation_timeout(Duration::from_secs(20))
///     .build();
/// assert_eq!(options.prefix, "dd/prod");
/// let parsed = S3Options::from_url(
///     "s3://my-bucket/dd/prod?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true",
/// )
/// .unwrap();
/// assert_eq!(parsed.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// The key prefix under which all objects live (a `/` is added if missing; empty: the whole
    /// bucket).
    pub prefix: String,
    /// The region; `None`: from the AWS chain (`AWS_REGION`, profile), else `us-east-1`.
    pub region: Option<String>,
    /// A custom endpoint such as `http://127.0.0.1:9000` (MinIO, s3s-fs, Ceph...); `None`: AWS.
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted style
    /// (`bucket.endpoint/key`); most self-hosted servers need it.
    pub path_style: bool,
    /// Explicit credentials; `None`: the standard AWS chain (environment, profile, web identity,
    /// ECS/EC2 instance metadata).
    pub credentials: Option<StaticCredentials>,
    /// Send unsigned (anonymous) requests, for public buckets or local servers without
    /// authentication; `credentials` and the AWS chain are then not used.
    pub anonymous: bool,
    /// Allow a server that ignores conditional writes: only one process may then write each
    /// replica, and revisions are checked by read-before-write only.
    pub single_writer: bool,
    /// Open for reading only (the store tools: `dd-node inspect`, the source of `migrate`): no
    /// write probe runs at open, a missing bucket is never created, and every write or delete
    /// fails with [`S3ErrorKind::ReadOnly`](crate::S3ErrorKind::ReadOnly). Nothing is ever
    /// written to the server.
    pub read_only: bool,
    /// Create the bucket at open if it does not exist (instead of failing).
    pub create_bucket: bool,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt of one request.
    pub attempt_timeout: Duration,
    /// Time allowed for one request including all its retries.
    pub operation_timeout: Duration,
    /// Attempts per request (1 = no retry); throttling, 5xx and connection errors are retried.
    pub max_attempts: u32,
    /// The first retry backoff; it grows exponentially (with jitter) up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest retry backoff.
    pub max_backoff: Duration,
    /// Requests in flight at once when scanning (value fetches) and in a write batch.
    pub concurrency: usize,
    /// The longest object name (bytes) the server accepts: 1024 on S3. Replica names and keys
    /// whose escaped names would be longer are shortened with a hash (see the README). Servers
    /// that keep objects as files may need less (s3s-fs: about 160).
    pub max_object_name_len: usize,
}

impl S3Options {
    /// A builder with the defaults for `bucket`.
    pub fn builder(bucket: impl Into<String>) -> S3OptionsBuilder {
        S3OptionsBuilder {
            options: S3Options {
                bucket: bucket.into(),
                prefix: String::new(),
                region: None,
                endpoint: None,
                path_style: false,
                credentials: None,
                anonymous: false,
                single_writer: false,
                read_only: false,
                create_bucket: false,
                connect_timeout: Duration::from_secs(3),
                attempt_timeout: Duration::from_secs(30),
                operation_timeout: Duration::from_secs(90),
                max_attempts: 4,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                concurrency: 16,
                max_object_name_len: crate::layout::S3_MAX_OBJECT_NAME_LEN,
            },
        }
    }

    /// Parses `s3://BUCKET[/PREFIX][?PARAMS]`. The parameters (all optional):
    ///
    /// - `endpoint=URL`: custom endpoint, e.g. `http://127.0.0.1:9000`
    /// - `region=NAME`: region (default: AWS chain, else `us-east-1`)
    /// - `path_style=true|false`: path-style addressing (default `false`)
    /// - `access_key=..&secret_key=..[&session_token=..]`: explicit credentials (default and
    ///   preferred: the AWS chain, e.g. `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, so that
    ///   secrets stay out of URLs and logs)
    /// - `anonymous=true|false`: send unsigned requests (default `false`)
    /// - `single_writer=true|false`: accept a server without conditional writes (default `false`)
    /// - `read_only=true|false`: open for reading only, writing nothing (default `false`)
    /// - `create_bucket=true|false`: create a missing bucket (default `false`)
    /// - `connect_timeout_ms`, `attempt_timeout_ms`, `operation_timeout_ms`: timeouts
    /// - `max_attempts=N`: attempts per request including retries (default 4)
    /// - `initial_backoff_ms`, `max_backoff_ms`: retry backoff bounds
    /// - `concurrency=N`: requests in flight in scans and batches (default 16)
    /// - `max_object_name_len=N`: longest object name the server accepts (default 1024)
    ///
    /// Unknown parameters are an error, so that a typo does not silently fall back to a default.
    pub fn from_url(url: &str) -> Result<S3Options, S3Error> {
        let invalid =
            |reason: String| S3Error::new(redact_url(url), S3ErrorKind::InvalidUrl(reason));
        let rest = match dd_url::scheme_of(url) {
            Some(scheme) if scheme.eq_ignore_ascii_case("s3") => &url[scheme.len() + 1..],
            Some(scheme) => {
                return Err(invalid(format!(
                    "scheme '{scheme}' is not 's3' (expected s3://bucket/prefix?...)"
                )));
            }
            None => {
                return Err(invalid(
                    "no scheme (expected s3://bucket/prefix?...)".to_owned(),
                ));
            }
        };
        if rest.contains('#') {
            return Err(invalid(
                "s3 URLs take no fragment (escape '#' as %23)".to_owned(),
            ));
        }
        let (location, query) = dd_url::split_query(rest);
        let (bucket, path) = dd_url::authority(location)
            .filter(|(bucket, _)| !bucket.is_empty())
            .ok_or_else(|| invalid("no bucket (expected s3://bucket/prefix?...)".to_owned()))?;
        if bucket.contains(['@', ':']) {
            return Err(invalid(format!(
                "'{bucket}' is not a bucket name: s3 URLs take no user or port (give the server \
                 as endpoint=http://host:port)"
            )));
        }
        let prefix = dd_url::decode(path.trim_start_matches('/'))
            .map_err(|e| invalid(format!("the prefix is not valid: {e}")))?;
        let mut builder = S3Options::builder(bucket).prefix(prefix);
        let mut access_key = None;
        let mut secret_key = None;
        let mut session_token = None;
        for (name, value) in dd_url::form_pairs(query) {
            let flag = |v: &str| dd_url::parse_bool(&name, v).map_err(invalid);
            let millis = |v: &str| dd_url::parse_millis(&name, v).map_err(invalid);
            let value = value.into_owned();
            match name.as_ref() {
                "endpoint" => builder = builder.endpoint(value),
                "region" => builder = builder.region(value),
                "path_style" => builder = builder.path_style(flag(&value)?),
                "anonymous" => builder = builder.anonymous(flag(&value)?),
                "single_writer" => builder = builder.single_writer(flag(&value)?),
                "read_only" => builder = builder.read_only(flag(&value)?),
                "create_bucket" => builder = builder.create_bucket(flag(&value)?),
                "access_key" => access_key = Some(value),
                "secret_key" => secret_key = Some(value),
                "session_token" => session_token = Some(value),
                "connect_timeout_ms" => builder = builder.connect_timeout(millis(&value)?),
                "attempt_timeout_ms" => builder = builder.attempt_timeout(millis(&value)?),
                "operation_timeout_ms" => builder = builder.operation_timeout(millis(&value)?),
                "initial_backoff_ms" => builder = builder.initial_backoff(millis(&value)?),
                "max_backoff_ms" => builder = builder.max_backoff(millis(&value)?),
                "max_attempts" => {
                    builder =
                        builder.max_attempts(dd_url::parse_number(&name, &value).map_err(invalid)?)
                }
                "max_object_name_len" => {
                    builder = builder
                        .max_object_name_len(dd_url::parse_number(&name, &value).map_err(invalid)?)
                }
                "concurrency" => {
                    builder =
                        builder.concurrency(dd_url::parse_number(&name, &value).map_err(invalid)?)
                }
                other => return Err(invalid(format!("unknown parameter '{other}'"))),
            }
        }
        match (access_key, secret_key) {
            (Some(access_key), Some(secret_key)) => {
                builder = builder.credentials(StaticCredentials {
                    access_key,
                    secret_key,
                    session_token,
                });
            }
            (None, None) if session_token.is_none() => {}
            _ => {
                return Err(invalid(
                    "access_key and secret_key must be given together (or neither, to use the \
                     AWS credential chain)"
                        .to_owned(),
                ));
            }
        }
        let options = builder.build();
        options
            .validate()
            .map_err(|e| S3Error::new(redact_url(url), e.kind))?;
        Ok(options)
    }

    /// `s3://bucket/prefix` plus the endpoint when one is set: where this store lives, for errors
    /// and logs.
    pub fn location(&self) -> String {
        let mut location = format!("s3://{}/{}", self.bucket, self.prefix);
        if let Some(endpoint) = &self.endpoint {
            location.push_str(&format!(" at {endpoint}"));
        }
        location
    }

    /// Checks the options for mistakes that need no network to find.
    pub fn validate(&self) -> Result<(), S3Error> {
        let invalid = |m: String| S3Error::new(self.location(), S3ErrorKind::InvalidOption(m));
        if self.bucket.is_empty() {
            return Err(invalid("the bucket name is empty".to_owned()));
        }
        if let Some(endpoint) = &self.endpoint {
            let url = Url::parse(endpoint)
                .map_err(|e| invalid(format!("endpoint '{endpoint}' is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(format!(
                    "endpoint '{endpoint}' must start with http:// or https://"
                )));
            }
        }
        if self.anonymous && self.credentials.is_some() {
            return Err(invalid(
                "anonymous requests and explicit credentials exclude each other".to_owned(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(invalid("max_attempts must be at least 1".to_owned()));
        }
        if self.max_object_name_len > crate::layout::S3_MAX_OBJECT_NAME_LEN {
            return Err(invalid(format!(
                "max_object_name_len {} is more than the {} bytes S3 allows",
                self.max_object_name_len,
                crate::layout::S3_MAX_OBJECT_NAME_LEN
            )));
        }
        crate::layout::ObjectLayout::new(&self.prefix, self.max_object_name_len)
            .map_err(invalid)?;
        if self.concurrency == 0 {
            return Err(invalid("concurrency must be at least 1".to_owned()));
        }
        Ok(())
    }
}

/// Builds [`S3Options`]; every setter overrides one default.
#[derive(Debug, Clone)]
pub struct S3OptionsBuilder {
    options: S3Options,
}

macro_rules! setter {
    ($(#[$doc:meta] $name:ident: $ty:ty => $field:ident = $conv:expr;)*) => {
        $(
            #[$doc]
            pub fn $name(mut self, value: $ty) -> Self {
                self.options.$field = $conv(value);
                self
            }
        )*
    };
}

impl S3OptionsBuilder {
    setter! {
        /// Sets [`S3Options::prefix`].
        prefix: impl Into<String> => prefix = Into::into;
        /// Sets [`S3Options::region`].
        region: impl Into<String> => region = some_string;
        /// Sets [`S3Options::endpoint`].
        endpoint: impl Into<String> => endpoint = some_string;
        /// Sets [`S3Options::path_style`].
        path_style: bool => path_style = std::convert::identity;
        /// Sets [`S3Options::credentials`].
        credentials: StaticCredentials => credentials = Some;
        /// Sets [`S3Options::anonymous`].
        anonymous: bool => anonymous = std::convert::identity;
        /// Sets [`S3Options::single_writer`].
        single_writer: bool => single_writer = std::convert::identity;
        /// Sets [`S3Options::read_only`].
        read_only: bool => read_only = std::convert::identity;
        /// Sets [`S3Options::create_bucket`].
        create_bucket: bool => create_bucket = std::convert::identity;
        /// Sets [`S3Options::connect_timeout`].
        connect_timeout: Duration => connect_timeout = std::convert::identity;
        /// Sets [`S3Options::attempt_timeout`].
        attempt_timeout: Duration => attempt_timeout = std::convert::identity;
        /// Sets [`S3Options::operation_timeout`].
        operation_timeout: Duration => operation_timeout = std::convert::identity;
        /// Sets [`S3Options::max_attempts`].
        max_attempts: u32 => max_attempts = std::convert::identity;
        /// Sets [`S3Options::initial_backoff`].
        initial_backoff: Duration => initial_backoff = std::convert::identity;
        /// Sets [`S3Options::max_backoff`].
        max_backoff: Duration => max_backoff = std::convert::identity;
        /// Sets [`S3Options::concurrency`].
        concurrency: usize => concurrency = std::convert::identity;
        /// Sets [`S3Options::max_object_name_len`].
        max_object_name_len: usize => max_object_name_len = std::convert::identity;
    }

    /// Explicit access key and secret key (no session token).
    pub fn access_key(self, access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        self.credentials(StaticCredentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            session_token: None,
        })
    }

    /// The options.
    pub fn build(self) -> S3Options {
        self.options
    }
}

fn some_string(value: impl Into<String>) -> Option<String> {
    Some(value.into())
}

/// The URL without its query secrets, for error messages.
fn redact_url(url: &str) -> String {
    let (base, Some(query)) = dd_url::split_query(url) else {
        return url.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match dd_url::form_pairs(Some(pair)).next() {
            Some((name, _)) if matches!(name.as_ref(), "secret_key" | "session_token") => {
                let raw_name = pair.split_once('=').map_or(pair, |(n, _)| n);
                format!("{raw_name}=<redacted>")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn full_url_parses() {
        let o = S3Options::from_url(
            "s3://b/dd/p%20x?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true\
             &access_key=AK&secret_key=SK&single_writer=true&create_bucket=1&connect_timeout_ms=500\
             &attempt_timeout_ms=1000&operation_timeout_ms=2000&max_attempts=2\
             &initial_backoff_ms=10&max_backoff_ms=20&concurrency=3&read_only=true",
        )
        .unwrap();
        assert_eq!(o.bucket, "b");
        assert_eq!(o.prefix, "dd/p x");
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(o.path_style && o.single_writer && o.create_bucket && o.read_only);
        assert!(!S3Options::from_url("s3://b").unwrap().read_only);
        assert_eq!(
            o.credentials.as_ref().map(|c| c.access_key.as_str()),
            Some("AK")
        );
        assert_eq!(o.connect_timeout, Duration::from_millis(500));
        assert_eq!(o.max_attempts, 2);
        assert_eq!(o.concurrency, 3);
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_leaking_secrets() {
        let e = S3Options::from_url("s3://b?secret_key=TOPSECRET&bogus=1").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("unknown parameter 'bogus'"), "{text}");
        assert!(!text.contains("TOPSECRET"), "{text}");
        assert!(
            S3Options::from_url("http://b/p")
                .unwrap_err()
                .to_string()
                .contains("scheme")
        );
        assert!(S3Options::from_url("s3://b?path_style=maybe").is_err());
        assert!(S3Options::from_url("s3://b?endpoint=ftp://x").is_err());
        assert!(S3Options::from_url("s3://b?access_key=a").is_err());
    }

    /// Each bad URL is refused with an error naming the URL (its secrets redacted) and what is
    /// wrong with it.
    #[test]
    fn each_bad_url_names_what_is_wrong() {
        for (bad, needle) in [
            ("http://b/p", "scheme 'http' is not 's3'"),
            ("b/p", "no scheme"),
            ("s3:b/p", "no bucket"),
            ("s3:///p", "no bucket"),
            ("s3://user@b/p", "'user@b' is not a bucket name"),
            ("s3://b:9000/p", "'b:9000' is not a bucket name"),
            ("s3://b/p#x", "no fragment"),
            ("s3://b/a%FF", "the prefix is not valid"),
            (
                "s3://b?path_style=maybe",
                "parameter 'path_style' must be true or false",
            ),
            (
                "s3://b?max_attempts=many",
                "parameter 'max_attempts' must be a non-negative number",
            ),
            (
                "s3://b?connect_timeout_ms=-5",
                "parameter 'connect_timeout_ms'",
            ),
            ("s3://b?max_attempts=0", "max_attempts must be at least 1"),
            (
                "s3://b?endpoint=ftp://x",
                "must start with http:// or https://",
            ),
            (
                "s3://b?access_key=a",
                "access_key and secret_key must be given together",
            ),
            ("s3://b?colour=blue", "unknown parameter 'colour'"),
        ] {
            let text = S3Options::from_url(bad).unwrap_err().to_string();
            let shown = bad.split('#').next().unwrap();
            assert!(
                text.contains(shown),
                "{bad}: the error names no URL: {text}"
            );
            assert!(text.contains(needle), "{bad}: {text}");
        }
        let text = S3Options::from_url("s3://b?access_key=a&secret%5Fkey=S3CR3T&x=1")
            .unwrap_err()
            .to_string();
        assert!(!text.contains("S3CR3T"), "{text}");
        assert!(text.contains("secret%5Fkey=<redacted>"), "{text}");
        // The scheme is case-insensitive, values are form-decoded.
        let o = S3Options::from_url("S3://b/p?region=eu%2Dwest%2B1").unwrap();
        assert_eq!(o.region.as_deref(), Some("eu-west+1"));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let o = S3Options::builder("b").access_key("AK", "SECRET").build();
        assert!(!format!("{o:?}").contains("SECRET"));
    }
}
