//! [`S3Error`], the typed error of this backend, and how S3 responses map onto it.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use dd_store::StoreError;

/// An error of the S3 backend: where (`location`, as in [`S3Options::location`]) and what.
///
/// [`S3Options::location`]: crate::S3Options::location
#[derive(Debug, thiserror::Error)]
#[error("{location}: {kind}")]
pub struct S3Error {
    /// The store, `s3://bucket/prefix at endpoint`.
    pub location: String,
    /// What went wrong.
    #[source]
    pub kind: S3ErrorKind,
}

impl S3Error {
    /// An error of the store at `location`.
    pub fn new(location: impl Into<String>, kind: S3ErrorKind) -> Self {
        Self {
            location: location.into(),
            kind,
        }
    }
}

/// What went wrong; see [`S3Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3ErrorKind {
    /// The `s3://` URL cannot be parsed.
    #[error("invalid s3 URL: {0}")]
    InvalidUrl(String),
    /// An option has an invalid value.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The bucket does not exist.
    #[error("bucket '{0}' does not exist (create it, or set create_bucket)")]
    NoSuchBucket(String),
    /// The server ignores `If-None-Match: *` or `If-Match` on PutObject, so concurrent writers
    /// could overwrite each other.
    #[error(
        "the server at {endpoint} ignores conditional writes for bucket '{bucket}': it does not \
         honour the {header} header on PutObject (the probe's {test} was not refused with 412; a \
         proxy in front of the server may drop the header), so concurrent writers could silently \
         overwrite each other; use a server (and proxies) that honour both If-None-Match and \
         If-Match, or set single_writer=true if only one process ever writes each replica"
    )]
    ConditionalWritesIgnored {
        /// The endpoint (or `AWS S3` when none is configured).
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// The ignored header: `If-None-Match` or `If-Match`.
        header: &'static str,
        /// The probe write that should have been refused.
        test: &'static str,
    },
    /// A write or delete on a store opened read-only.
    #[error(
        "{operation} of replica '{replica}' refused: the store was opened read-only (read_only=true), \
         it never writes"
    )]
    ReadOnly {
        /// What was refused (`PutObject`, `DeleteObject`).
        operation: &'static str,
        /// The replica written.
        replica: String,
    },
    /// The credentials were refused or lack a permission.
    #[error("access denied during {operation} ({code}): {message}")]
    AccessDenied {
        /// The S3 operation.
        operation: &'static str,
        /// The S3 error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The endpoint cannot be reached or did not answer in time (after the configured retries).
    #[error("endpoint {endpoint} unreachable during {operation}: {detail}")]
    Unreachable {
        /// The endpoint (or `AWS` when none is configured).
        endpoint: String,
        /// The S3 operation.
        operation: &'static str,
        /// The transport error.
        detail: String,
    },
    /// The server is throttling or failing (429, 503 SlowDown, 5xx) after the configured retries.
    #[error("{operation} failed with HTTP {status} ({code}): {message}")]
    ServerBusy {
        /// The S3 operation.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The S3 error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// Any other refused request.
    #[error("{operation} failed with HTTP {status} ({code}): {message}")]
    Request {
        /// The S3 operation.
        operation: &'static str,
        /// The HTTP status (0 when there was no response).
        status: u16,
        /// The S3 error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// A stored object is not a record of this backend.
    #[error("object '{object}' of replica '{replica}' key '{key}' is corrupt: {reason}")]
    Corrupt {
        /// The replica.
        replica: String,
        /// The key (the object name if it cannot be decoded).
        key: String,
        /// The object name.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// A key or replica name does not fit in an S3 object name.
    #[error("replica '{replica}' key '{key}': {reason}")]
    UnstorableKey {
        /// The replica.
        replica: String,
        /// The key.
        key: String,
        /// Why it cannot be stored.
        reason: String,
    },
    /// A conditional write kept losing races with other writers.
    #[error("object '{object}' changed under every one of {attempts} conditional write attempts")]
    Contended {
        /// The object name.
        object: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl From<S3Error> for StoreError {
    fn from(e: S3Error) -> Self {
        let backend = e.location;
        match e.kind {
            kind @ (S3ErrorKind::Unreachable { .. }
            | S3ErrorKind::ServerBusy { .. }
            | S3ErrorKind::Contended { .. }) => StoreError::unavailable(backend, kind),
            S3ErrorKind::Corrupt {
                replica,
                key,
                object,
                reason,
            } => StoreError::Corrupt {
                backend,
                replica,
                key,
                reason: format!("object '{object}': {reason}"),
            },
            kind @ (S3ErrorKind::InvalidUrl(_)
            | S3ErrorKind::InvalidOption(_)
            | S3ErrorKind::NoSuchBucket(_)
            | S3ErrorKind::ConditionalWritesIgnored { .. }
            | S3ErrorKind::ReadOnly { .. }
            | S3ErrorKind::AccessDenied { .. }) => StoreError::config(backend, kind),
            kind @ (S3ErrorKind::Request { .. } | S3ErrorKind::UnstorableKey { .. }) => {
                StoreError::backend(backend, kind)
            }
        }
    }
}

/// The HTTP status of a failed request, if a response arrived.
pub(crate) fn status_of<E, R: HttpStatus>(err: &SdkError<E, R>) -> Option<u16> {
    err.raw_response().map(HttpStatus::status_code)
}

/// The HTTP status of a raw response.
pub(crate) trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Maps a failed request of `operation` onto an [`S3ErrorKind`].
pub(crate) fn classify<E>(
    operation: &'static str,
    endpoint: &str,
    bucket: &str,
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> S3ErrorKind
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = status_of(&err);
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            return S3ErrorKind::Unreachable {
                endpoint: endpoint.to_owned(),
                operation,
                detail: DisplayErrorContext(&err).to_string(),
            };
        }
        SdkError::ResponseError(_) if status.is_none_or(|s| s >= 500) => {
            return S3ErrorKind::Unreachable {
                endpoint: endpoint.to_owned(),
                operation,
                detail: DisplayErrorContext(&err).to_string(),
            };
        }
        _ => {}
    }
    let code = err.code().unwrap_or("").to_owned();
    let message = err
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
    let status = status.unwrap_or(0);
    match (status, code.as_str()) {
        (_, "NoSuchBucket") => S3ErrorKind::NoSuchBucket(bucket.to_owned()),
        (401 | 403, _) | (_, "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
            S3ErrorKind::AccessDenied {
                operation,
                code,
                message,
            }
        }
        (429 | 500..=599, _) | (_, "SlowDown" | "Throttling" | "RequestTimeout") => {
            S3ErrorKind::ServerBusy {
                operation,
                status,
                code,
                message,
            }
        }
        _ => S3ErrorKind::Request {
            operation,
            status,
            code,
            message,
        },
    }
}
