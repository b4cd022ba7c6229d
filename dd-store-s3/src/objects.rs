//! Single S3 requests on objects of one bucket, with their errors mapped to [`S3Error`].

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use dd_store::Revision;

use crate::body::{self, Body};
use crate::error::{S3Error, S3ErrorKind, classify, status_of};

/// The metadata entry that holds a record's revision (`x-amz-meta-dd-revision`).
pub(crate) const REVISION_METADATA: &str = "dd-revision";

/// The metadata entry that marks an object as a record of this backend, with its body format
/// (`x-amz-meta-dd-format`).
pub(crate) const FORMAT_METADATA: &str = "dd-format";

/// The value of [`FORMAT_METADATA`].
pub(crate) const FORMAT_VALUE: &str = "dds3-1";

/// The current state of an existing record, from its body header.
#[derive(Debug, Clone)]
pub(crate) struct ObjectHead {
    /// The ETag to make the next write conditional on, as the server reports it now (for a torn
    /// object this may not be the MD5 of the body, but it is what the server checks `If-Match`
    /// against).
    pub etag: String,
    /// The revision from the body header.
    pub revision: Revision,
    /// Whether the metadata revision disagrees with the body (a torn object).
    pub torn: bool,
}

/// What a `GET` returned.
struct Fetched {
    /// The body (or its first bytes).
    data: Bytes,
    /// The ETag, if the server sent one.
    etag: Option<String>,
    /// The `x-amz-meta-dd-revision` metadata, if any.
    metadata_revision: Option<String>,
}

/// Whether the metadata revision of `record` disagrees with its body revision (a torn object:
/// the server stored the body of a write but not, or not yet, its metadata). Logs a warning if
/// so; the body revision is the one that counts.
fn is_torn(record: RecordRef<'_>, body_revision: Revision, metadata: Option<&str>) -> bool {
    let agrees = metadata.is_some_and(|m| m == body_revision.0.to_string());
    if !agrees {
        tracing::warn!(
            object = record.object,
            body_revision = body_revision.0,
            metadata_revision = metadata.unwrap_or("<none>"),
            "torn S3 object: its x-amz-meta-{REVISION_METADATA} disagrees with the body header \
             (the server did not store the last write atomically); using the body revision"
        );
    }
    !agrees
}

/// The precondition of a write.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Precondition<'a> {
    /// None: overwrite whatever is there.
    Unconditional,
    /// `If-None-Match: *`: only if the object does not exist.
    Absent,
    /// `If-Match: <etag>`: only if the object still has this ETag.
    Matches(&'a str),
}

/// Whether a conditional request was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Yes.
    Yes,
    /// No: the precondition failed (412, or 409 for a concurrent conditional write).
    PreconditionFailed,
}

/// A replica/key pair, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordRef<'a> {
    pub replica: &'a str,
    pub key: &'a str,
    pub object: &'a str,
}

impl RecordRef<'_> {
    /// A corruption of this record.
    pub fn corrupt(&self, reason: String) -> S3ErrorKind {
        S3ErrorKind::Corrupt {
            replica: self.replica.to_owned(),
            key: self.key.to_owned(),
            object: self.object.to_owned(),
            reason,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Object names.
    pub objects: Vec<String>,
    /// Common prefixes (delimiter listings).
    pub prefixes: Vec<String>,
    /// The token of the next page, if the listing is truncated.
    pub next: Option<String>,
}

/// Requests on the objects of one bucket.
#[derive(Debug, Clone)]
pub(crate) struct ObjectClient {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// The endpoint, for "unreachable" errors.
    pub endpoint: String,
    /// The store location, for every error.
    pub location: String,
}

fn is_precondition_failure<E: ProvideErrorMetadata, R>(
    err: &SdkError<E, R>,
    status: Option<u16>,
) -> bool {
    matches!(status, Some(412))
        || (matches!(status, Some(409)) && matches!(err.code(), Some("ConditionalRequestConflict")))
}

impl ObjectClient {
    fn error(&self, kind: S3ErrorKind) -> S3Error {
        S3Error::new(self.location.clone(), kind)
    }

    fn fail<E>(
        &self,
        operation: &'static str,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> S3Error
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.error(classify(operation, &self.endpoint, &self.bucket, err))
    }

    /// Checks that the bucket exists, creating it if `create` is set.
    pub async fn ensure_bucket(&self, create: bool, region: Option<&str>) -> Result<(), S3Error> {
        let err = match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        let missing = err.as_service_error().is_some_and(|e| e.is_not_found())
            || status_of(&err) == Some(404);
        if !missing {
            return Err(self.fail("HeadBucket", err));
        }
        if !create {
            return Err(self.error(S3ErrorKind::NoSuchBucket(self.bucket.clone())));
        }
        tracing::info!(bucket = %self.bucket, "creating missing S3 bucket");
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        if let Some(region) = region.filter(|r| *r != "us-east-1") {
            request = request.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(
                    aws_sdk_s3::error::ProvideErrorMetadata::code(&err),
                    Some("BucketAlreadyOwnedByYou")
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(self.fail("CreateBucket", err)),
        }
    }

    /// The current state of the record `record` names, from its body header (a ranged `GET` of
    /// [`body::header_len`] bytes): the ETag to make the next write conditional on and the body
    /// revision, `None` if the object does not exist. An object whose header is not a
    /// dd-store-s3 header for exactly this replica and key is [`S3ErrorKind::Corrupt`] (and so
    /// never overwritten). A torn object (metadata revision disagreeing with the body) is
    /// reported at its body revision, with the ETag the server reports now.
    pub async fn current(&self, record: RecordRef<'_>) -> Result<Option<ObjectHead>, S3Error> {
        let header_len = body::header_len(record.replica, record.key);
        let Some(fetched) = self.fetch(record, Some(header_len)).await? else {
            return Ok(None);
        };
        let etag = fetched
            .etag
            .ok_or_else(|| self.error(record.corrupt("the server sent no ETag".to_owned())))?;
        let header =
            body::decode(fetched.data).map_err(|reason| self.error(record.corrupt(reason)))?;
        if header.replica != record.replica || header.key != record.key {
            return Err(self.error(record.corrupt(format!(
                "the body holds replica '{}' key '{}', not the record asked for",
                header.replica, header.key
            ))));
        }
        let torn = is_torn(
            record,
            header.revision,
            fetched.metadata_revision.as_deref(),
        );
        Ok(Some(ObjectHead {
            etag,
            revision: header.revision,
            torn,
        }))
    }

    /// The decoded body of an object, `None` if it does not exist. `record` names the object
    /// (its replica and key may be unknown yet, for hashed names; they are only used in errors).
    /// A torn object (see [`ObjectClient::current`]) is read at its body revision.
    pub async fn get(&self, record: RecordRef<'_>) -> Result<Option<Body>, S3Error> {
        let Some(fetched) = self.fetch(record, None).await? else {
            return Ok(None);
        };
        let body =
            body::decode(fetched.data).map_err(|reason| self.error(record.corrupt(reason)))?;
        is_torn(record, body.revision, fetched.metadata_revision.as_deref());
        Ok(Some(body))
    }

    /// `GET` of an object (its first `first_bytes` bytes if given), `None` if it does not exist.
    async fn fetch(
        &self,
        record: RecordRef<'_>,
        first_bytes: Option<usize>,
    ) -> Result<Option<Fetched>, S3Error> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(record.object)
            .set_range(first_bytes.map(|n| format!("bytes=0-{}", n.saturating_sub(1))))
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) => {
                let status = status_of(&err);
                let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&err);
                let missing = err.as_service_error().is_some_and(|e| e.is_no_such_key())
                    || (status == Some(404) && code != Some("NoSuchBucket"));
                if missing {
                    return Ok(None);
                }
                if status == Some(416) || code == Some("InvalidRange") {
                    // Only an empty object has no byte 0.
                    return Err(self.error(
                        record.corrupt("the object is empty (no dd-store-s3 header)".to_owned()),
                    ));
                }
                return Err(self.fail("GetObject", err));
            }
        };
        let etag = output.e_tag().map(str::to_owned);
        let metadata_revision = output
            .metadata()
            .and_then(|m| m.get(REVISION_METADATA))
            .cloned();
        let data = output.body.collect().await.map_err(|e| {
            self.error(S3ErrorKind::Unreachable {
                endpoint: self.endpoint.clone(),
                operation: "GetObject",
                detail: format!("reading the body of '{}': {e}", record.object),
            })
        })?;
        Ok(Some(Fetched {
            data: data.into_bytes(),
            etag,
            metadata_revision,
        }))
    }

    /// Writes `value` at `revision`, if `precondition` holds.
    pub async fn put(
        &self,
        record: RecordRef<'_>,
        revision: Revision,
        value: &[u8],
        precondition: Precondition<'_>,
    ) -> Result<Applied, S3Error> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(record.object)
            .content_type("application/octet-stream")
            .metadata(REVISION_METADATA, revision.0.to_string())
            .metadata(FORMAT_METADATA, FORMAT_VALUE)
            .body(ByteStream::from(body::encode(
                revision,
                record.replica,
                record.key,
                value,
            )));
        request = match precondition {
            Precondition::Unconditional => request,
            Precondition::Absent => request.if_none_match("*"),
            Precondition::Matches(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(_) => Ok(Applied::Yes),
            Err(err) if is_precondition_failure(&err, status_of(&err)) => {
                Ok(Applied::PreconditionFailed)
            }
            Err(err) => Err(self.fail("PutObject", err)),
        }
    }

    /// Deletes an object (if `etag` is given, only while it still has that ETag; servers that
    /// ignore `If-Match` on DeleteObject delete anyway).
    pub async fn delete(&self, object: &str, etag: Option<&str>) -> Result<Applied, S3Error> {
        let request = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(object)
            .set_if_match(etag.map(str::to_owned));
        match request.send().await {
            Ok(_) => Ok(Applied::Yes),
            Err(err) if is_precondition_failure(&err, status_of(&err)) => {
                Ok(Applied::PreconditionFailed)
            }
            Err(err) => Err(self.fail("DeleteObject", err)),
        }
    }

    /// The error for a listing page that is empty but claims more results (a server bug that
    /// would otherwise loop).
    pub fn empty_truncated_listing(&self) -> S3Error {
        self.error(S3ErrorKind::Request {
            operation: "ListObjectsV2",
            status: 200,
            code: String::new(),
            message: "an empty listing page claims more results".to_owned(),
        })
    }

    /// One page of the objects under `prefix` (names only), in S3 (byte) order.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        continuation: Option<&str>,
        delimiter: Option<&str>,
        max_keys: usize,
    ) -> Result<Listing, S3Error> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            .set_continuation_token(continuation.map(str::to_owned))
            .set_delimiter(delimiter.map(str::to_owned))
            .max_keys(i32::try_from(max_keys.clamp(1, 1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(|err| self.fail("ListObjectsV2", err))?;
        let objects = output
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        let prefixes = output
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(str::to_owned))
            .collect();
        let next = if output.is_truncated().unwrap_or(false) {
            let token = output.next_continuation_token().ok_or_else(|| {
                self.error(S3ErrorKind::Request {
                    operation: "ListObjectsV2",
                    status: 200,
                    code: String::new(),
                    message: "a truncated listing came without a continuation token".to_owned(),
                })
            })?;
            Some(token.to_owned())
        } else {
            None
        };
        Ok(Listing {
            objects,
            prefixes,
            next,
        })
    }
}
