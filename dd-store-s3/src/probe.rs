//! The open-time probe: does the server honour conditional writes?

use dd_core::store::Revision;

use crate::error::{S3Error, S3ErrorKind};
use crate::layout::ObjectLayout;
use crate::objects::{Applied, ObjectClient, Precondition, RecordRef};

/// A non-matching ETag for the conditional delete probe.
const WRONG_ETAG: &str = "\"00000000000000000000000000000000\"";

/// What the server supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFeatures {
    /// PutObject honours `If-None-Match: *` (and, by the same support, `If-Match`).
    pub conditional_put: bool,
    /// DeleteObject honours `If-Match`.
    pub conditional_delete: bool,
}

/// Writes a scratch object under the prefix twice with `If-None-Match: *`, then deletes it with a
/// wrong `If-Match`, and removes it again.
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

async fn probe_object(objects: &ObjectClient, scratch: &str) -> Result<ServerFeatures, S3Error> {
    let value = b"dd-store-s3 probe; safe to delete";
    let scratch_record = RecordRef {
        replica: "(probe)",
        key: "(probe)",
        object: scratch,
    };
    match objects
        .put(scratch_record, Revision::FIRST, value, Precondition::Absent)
        .await?
    {
        Applied::Yes => {}
        Applied::PreconditionFailed => {
            return Err(S3Error::new(
                objects.location.clone(),
                S3ErrorKind::Request {
                    operation: "PutObject",
                    status: 412,
                    code: "PreconditionFailed".to_owned(),
                    message: format!(
                        "creating the fresh probe object '{scratch}' with If-None-Match: * was \
                         refused although it cannot exist"
                    ),
                },
            ));
        }
    }
    let conditional_put = objects
        .put(scratch_record, Revision::FIRST, value, Precondition::Absent)
        .await?
        == Applied::PreconditionFailed;
    let conditional_delete = match objects.delete(scratch, Some(WRONG_ETAG)).await {
        Ok(applied) => applied == Applied::PreconditionFailed,
        // A server may reject the header outright (e.g. 501 NotImplemented).
        Err(e) => {
            tracing::debug!(error = %e, "DeleteObject with If-Match refused");
            false
        }
    };
    let features = ServerFeatures {
        conditional_put,
        conditional_delete,
    };
    tracing::debug!(location = %objects.location, ?features, "probed S3 server");
    Ok(features)
}
