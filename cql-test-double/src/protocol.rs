//! Native protocol v4 responses built with `cassandra-protocol`'s frame types.

use std::collections::HashMap;

use cassandra_protocol::compression::Compression;
use cassandra_protocol::frame::events::{
    SchemaChange, SchemaChangeOptions, SchemaChangeTarget, SchemaChangeType,
};
use cassandra_protocol::frame::message_result::{
    BodyResResultPrepared, BodyResResultRows, BodyResResultSetKeyspace, ColSpec, PreparedMetadata,
    ResResultBody, RowsMetadata, RowsMetadataFlags, TableSpec,
};
use cassandra_protocol::frame::message_supported::BodyResSupported;
use cassandra_protocol::frame::{Direction, Envelope, Flags, Opcode, Serialize, StreamId, Version};
use cassandra_protocol::types::{CBytes, CBytesShort};

use crate::engine::{Analysis, Outcome};
use crate::error::CqlError;
use crate::schema::Column;

/// The protocol version the double speaks.
pub const VERSION: Version = Version::V4;

/// Encodes a response envelope.
pub fn envelope(stream_id: StreamId, opcode: Opcode, body: Vec<u8>) -> Vec<u8> {
    let envelope = Envelope::new(
        VERSION,
        Direction::Response,
        Flags::empty(),
        opcode,
        stream_id,
        body,
        None,
        Vec::new(),
    );
    // Encoding without compression, tracing or warnings cannot fail; fall back to an empty
    // READY-less frame is never needed, but keep the error path total.
    envelope.encode_with(Compression::None).unwrap_or_default()
}

/// An `ERROR` response.
pub fn error(stream_id: StreamId, error: &CqlError) -> Vec<u8> {
    tracing::debug!(stream_id, %error, "answering with a CQL error");
    envelope(
        stream_id,
        Opcode::Error,
        error.to_body().serialize_to_vec(VERSION),
    )
}

/// A `READY` response.
pub fn ready(stream_id: StreamId) -> Vec<u8> {
    envelope(stream_id, Opcode::Ready, Vec::new())
}

/// The `SUPPORTED` response to `OPTIONS`.
pub fn supported(stream_id: StreamId) -> Vec<u8> {
    let data: HashMap<String, Vec<String>> = [
        ("CQL_VERSION".to_owned(), vec!["3.4.5".to_owned()]),
        ("COMPRESSION".to_owned(), Vec::new()),
        ("PROTOCOL_VERSIONS".to_owned(), vec!["4/v4".to_owned()]),
    ]
    .into_iter()
    .collect();
    envelope(
        stream_id,
        Opcode::Supported,
        BodyResSupported { data }.serialize_to_vec(VERSION),
    )
}

fn col_specs(columns: &[Column]) -> Vec<ColSpec> {
    columns
        .iter()
        .map(|c| ColSpec {
            table_spec: None,
            name: c.name.clone(),
            col_type: c.ty.col_type_option(),
        })
        .collect()
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn rows_metadata(
    table: &(String, String),
    columns: &[Column],
    paging_state: Option<Vec<u8>>,
) -> RowsMetadata {
    if columns.is_empty() {
        // `cassandra-protocol` refuses column-less metadata without NO_METADATA.
        let mut flags = RowsMetadataFlags::NO_METADATA;
        if paging_state.is_some() {
            flags |= RowsMetadataFlags::HAS_MORE_PAGES;
        }
        return RowsMetadata {
            flags,
            columns_count: 0,
            paging_state: paging_state.map(CBytes::new),
            new_metadata_id: None,
            global_table_spec: None,
            col_specs: Vec::new(),
        };
    }
    let mut flags = RowsMetadataFlags::GLOBAL_TABLE_SPACE;
    if paging_state.is_some() {
        flags |= RowsMetadataFlags::HAS_MORE_PAGES;
    }
    RowsMetadata {
        flags,
        columns_count: len_i32(columns.len()),
        paging_state: paging_state.map(CBytes::new),
        new_metadata_id: None,
        global_table_spec: Some(TableSpec {
            ks_name: table.0.clone(),
            table_name: table.1.clone(),
        }),
        col_specs: col_specs(columns),
    }
}

/// A `RESULT` response for an executed statement.
pub fn result(stream_id: StreamId, outcome: Outcome) -> Vec<u8> {
    let body = match outcome {
        Outcome::Void => ResResultBody::Void,
        Outcome::Rows {
            table,
            columns,
            rows,
            paging_state,
        } => ResResultBody::Rows(BodyResResultRows {
            metadata: rows_metadata(&table, &columns, paging_state),
            rows_count: len_i32(rows.len()),
            rows_content: rows
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|v| match v {
                            Some(v) => CBytes::new(v.encode()),
                            None => CBytes::new_null(),
                        })
                        .collect()
                })
                .collect(),
            protocol_version: VERSION,
        }),
        Outcome::SetKeyspace(keyspace) => {
            ResResultBody::SetKeyspace(BodyResResultSetKeyspace::new(keyspace))
        }
        Outcome::SchemaChange {
            created,
            keyspace,
            table,
        } => ResResultBody::SchemaChange(SchemaChange {
            change_type: if created {
                SchemaChangeType::Created
            } else {
                SchemaChangeType::Dropped
            },
            target: if table.is_some() {
                SchemaChangeTarget::Table
            } else {
                SchemaChangeTarget::Keyspace
            },
            options: match table {
                Some(table) => SchemaChangeOptions::TableType(keyspace, table),
                None => SchemaChangeOptions::Keyspace(keyspace),
            },
        }),
    };
    envelope(stream_id, Opcode::Result, body.serialize_to_vec(VERSION))
}

/// The `RESULT` (kind PREPARED) response to `PREPARE`.
pub fn prepared(stream_id: StreamId, id: Vec<u8>, analysis: &Analysis) -> Vec<u8> {
    let global_table_spec = (!analysis.bind.is_empty()).then(|| TableSpec {
        ks_name: analysis.table.0.clone(),
        table_name: analysis.table.1.clone(),
    });
    let body = ResResultBody::Prepared(BodyResResultPrepared {
        id: CBytesShort::new(id),
        result_metadata_id: None,
        metadata: PreparedMetadata {
            pk_indexes: analysis.pk_indexes.clone(),
            global_table_spec,
            col_specs: col_specs(&analysis.bind),
        },
        result_metadata: rows_metadata(
            &analysis.table,
            analysis.result.as_deref().unwrap_or_default(),
            None,
        ),
    });
    envelope(stream_id, Opcode::Result, body.serialize_to_vec(VERSION))
}
