//! The open-time probe: does the server honour conditional writes?

use dd_store::Revision;

use crate::error::{S3Error, S3ErrorKind};
use crate::layout::ObjectLayout;
use crate::objects::{Applied, ObjectClient, Precondition, RecordRef};

/// A non-matching ETag for the conditional replace and delete probes.
const WRONG_ETAG: &str = "\"00000000000000000000000000000000\"";

/// What the server supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFeatures {
    /// PutObject honours both `If-None-Match: *` and `If-Match` (both
    /// [`put_if_none_match`](Self::put_if_none_match) and [`put_if_match`](Self::put_if_match)):
    /// writes are compare-and-swap on the server.
    pub conditional_put: bool,
    /// PutObject honours `If-None-Match: *` (a second create of the same object is refused).
    pub put_if_none_match: bool,
    /// PutObject honours `If-Match` (a replace with a wrong ETag is refused).
    pub put_if_match: bool,
    /// DeleteObject honours `If-Match`.
    pub conditional_delete: bool,
}

impl ServerFeatures {
    /// What a store opened read-only reports: nothing was probed, so nothing is assumed.
    pub(crate) const NOT_PROBED: ServerFeatures = ServerFeatures {
        conditional_put: false,
        put_if_none_match: false,
        put_if_match: false,
        conditional_delete: false,
    };

    /// The PutObject header the server ignores (`If-None-Match` first), `None` if it honours
    /// both.
    pub fn ignored_put_header(&self) -> Option<&'static str> {
        if !self.put_if_none_match {
            Some("If-None-Match")
        } else if !self.put_if_match {
            Some("If-Match")
        } else {
            None
        }
    }
}

/// Writes a scratch object under the prefix twice with `If-None-Match: *`, replaces it with a
/// wrong and then the right `If-Match`, deletes it with a wrong `If-Match`, and removes it again.
pub(crate) async fn probe(
    objects: &ObjectClient,
    layout: &ObjectLayout,
) -> Result<ServerFeatures, S3Error> {
    let scratch = layout.probe_object_name();
    let result = probe_object(objects, &scratch).await;
    // Clean up whatever happened (the object may already be gone).
    if let Err(e) = objects.delete(&scratch, None).await {
        tracing::warn!(object = %scratch, error = %e, "could not remove the probe's scratch object");
    }
    result
}

/// The error for a conditional probe write that was refused although it had to succeed.
fn refused(objects: &ObjectClient, scratch: &str, what: &str) -> S3Error {
    S3Error::new(
        objects.location.clone(),
        S3ErrorKind::Request {
            operation: "PutObject",
            status: 412,
            code: "PreconditionFailed".to_owned(),
            message: format!("{what} of the probe object '{scratch}' was refused"),
        },
    )
}

async fn probe_object(objects: &ObjectClient, scratch: &str) -> Result<ServerFeatures, S3Error> {
    let value = b"dd-store-s3 probe; safe to delete";
    let scratch_record = RecordRef {
        replica: "(probe)",
        key: "(probe)",
        object: scratch,
    };
    if objects
        .put(scratch_record, Revision::FIRST, value, Precondition::Absent)
        .await?
        == Applied::PreconditionFailed
    {
        return Err(refused(
            objects,
            scratch,
            "creating with If-None-Match: * (it cannot exist yet)",
        ));
    }
    let put_if_none_match = objects
        .put(scratch_record, Revision::FIRST, value, Precondition::Absent)
        .await?
        == Applied::PreconditionFailed;
    let put_if_match = objects
        .put(
            scratch_record,
            Revision::FIRST,
            value,
            Precondition::Matches(WRONG_ETAG),
        )
        .await?
        == Applied::PreconditionFailed;
    if put_if_match {
        // A server refusing every If-Match would fail every replace: the right ETag must pass.
        let etag = objects
            .current(scratch_record)
            .await?
            .map(|head| head.etag)
            .ok_or_else(|| refused(objects, scratch, "reading back (it was gone)"))?;
        if objects
            .put(
                scratch_record,
                Revision::FIRST,
                value,
                Precondition::Matches(&etag),
            )
            .await?
            == Applied::PreconditionFailed
        {
            return Err(refused(
                objects,
                scratch,
                &format!("replacing with its own ETag in If-Match: {etag}"),
            ));
        }
    }
    let conditional_delete = match objects.delete(scratch, Some(WRONG_ETAG)).await {
        Ok(applied) => applied == Applied::PreconditionFailed,
        // A server may reject the header outright (e.g. 501 NotImplemented).
        Err(e) => {
            tracing::debug!(error = %e, "DeleteObject with If-Match refused");
            false
        }
    };
    let features = ServerFeatures {
        conditional_put: put_if_none_match && put_if_match,
        put_if_none_match,
        put_if_match,
        conditional_delete,
    };
    tracing::info!(
        location = %objects.location,
        put_if_none_match,
        put_if_match,
        delete_if_match = conditional_delete,
        "probed the S3 server's conditional writes"
    );
    Ok(features)
}
