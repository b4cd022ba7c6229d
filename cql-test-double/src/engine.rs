//! Runs parsed statements against the in-memory [`State`]: analysis (bind variable types,
//! partition key indexes, result columns) for `PREPARE`, and execution for `QUERY`/`EXECUTE`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Bound;

use crate::error::{CqlError, CqlErrorKind};
use crate::parser::{Condition, Literal, Op, Relation, Selection, Statement, TableName, Term};
use crate::schema::{Column, Keyspace, RowValues, State, Table};
use crate::system::{is_system_keyspace, virtual_table};
use crate::types::{CqlType, CqlValue};

/// A value bound to a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundValue {
    /// Bytes.
    Value(Vec<u8>),
    /// `null`.
    Null,
    /// Not set (leaves a column untouched).
    Unset,
}

/// What a statement needs at `PREPARE`.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The keyspace and table (empty for statements without one).
    pub table: (String, String),
    /// One column spec per bind marker.
    pub bind: Vec<Column>,
    /// For each partition key column, the marker binding it (empty if not all are bound).
    pub pk_indexes: Vec<i16>,
    /// The result columns of a `SELECT`; `None` for other statements.
    pub result: Option<Vec<Column>>,
}

/// The result of executing a statement.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// No result.
    Void,
    /// Rows.
    Rows {
        /// Keyspace and table.
        table: (String, String),
        /// The columns.
        columns: Vec<Column>,
        /// The rows.
        rows: Vec<RowValues>,
        /// The paging state of the next page, if there is one.
        paging_state: Option<Vec<u8>>,
    },
    /// `USE` succeeded.
    SetKeyspace(String),
    /// A keyspace or table was created or dropped.
    SchemaChange {
        /// Created (true) or dropped (false).
        created: bool,
        /// The keyspace.
        keyspace: String,
        /// The table, for a table change.
        table: Option<String>,
    },
}

/// Paging parameters of a request.
#[derive(Debug, Clone, Default)]
pub struct Paging {
    /// Rows per page (`None` or non-positive: all).
    pub page_size: Option<i32>,
    /// The state returned with the previous page.
    pub paging_state: Option<Vec<u8>>,
}

/// The context of a statement: the connection's keyspace and the node's address.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The keyspace set with `USE`, if any.
    pub keyspace: Option<&'a str>,
    /// The node's address, reported in `system.local`.
    pub node_ip: IpAddr,
}

/// A table's shape, user or virtual.
struct Shape {
    keyspace: String,
    table: String,
    columns: Vec<Column>,
    partition_key: Vec<usize>,
    clustering: Vec<usize>,
    star: Vec<usize>,
    virtual_rows: Option<Vec<RowValues>>,
}

impl Shape {
    fn index(&self, column: &str) -> Result<usize, CqlError> {
        self.columns
            .iter()
            .position(|c| c.name == column)
            .ok_or_else(|| CqlError::invalid(format!("Undefined column name {column}")))
    }
}

fn keyspace_of(name: &TableName, ctx: &Context<'_>) -> Result<String, CqlError> {
    name.keyspace
        .clone()
        .or_else(|| ctx.keyspace.map(str::to_owned))
        .ok_or_else(|| {
            CqlError::invalid(
                "No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename",
            )
        })
}

fn shape(state: &State, name: &TableName, ctx: &Context<'_>) -> Result<Shape, CqlError> {
    let keyspace = keyspace_of(name, ctx)?;
    if is_system_keyspace(&keyspace) {
        let vt = virtual_table(state, &keyspace, &name.table, ctx.node_ip)
            .ok_or_else(|| CqlError::invalid(format!("unconfigured table {}", name.table)))?;
        return Ok(Shape {
            keyspace,
            table: name.table.clone(),
            star: (0..vt.columns.len()).collect(),
            columns: vt.columns,
            partition_key: Vec::new(),
            clustering: Vec::new(),
            virtual_rows: Some(vt.rows),
        });
    }
    let table = user_table(state, &keyspace, &name.table)?;
    Ok(Shape {
        star: table.star_order(),
        columns: table.columns.clone(),
        partition_key: table.partition_key.clone(),
        clustering: table.clustering.clone(),
        virtual_rows: None,
        keyspace,
        table: name.table.clone(),
    })
}

fn user_table<'s>(state: &'s State, keyspace: &str, table: &str) -> Result<&'s Table, CqlError> {
    state
        .keyspaces
        .get(keyspace)
        .ok_or_else(|| CqlError::invalid(format!("Keyspace {keyspace} does not exist")))?
        .tables
        .get(table)
        .ok_or_else(|| CqlError::invalid(format!("unconfigured table {table}")))
}

fn user_table_mut<'s>(
    state: &'s mut State,
    keyspace: &str,
    table: &str,
) -> Result<&'s mut Table, CqlError> {
    state
        .keyspaces
        .get_mut(keyspace)
        .ok_or_else(|| CqlError::invalid(format!("Keyspace {keyspace} does not exist")))?
        .tables
        .get_mut(table)
        .ok_or_else(|| CqlError::invalid(format!("unconfigured table {table}")))
}

/// Collects the bind markers' specs while walking a statement.
struct Binds {
    specs: Vec<Option<Column>>,
}

impl Binds {
    fn new(markers: usize) -> Self {
        Self {
            specs: vec![None; markers],
        }
    }

    fn note(&mut self, term: &Term, name: &str, ty: CqlType) {
        if let Term::Bind(i) = term
            && let Some(slot) = self.specs.get_mut(*i)
        {
            *slot = Some(Column {
                name: name.to_owned(),
                ty,
            });
        }
    }

    fn finish(self) -> Result<Vec<Column>, CqlError> {
        self.specs
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.ok_or_else(|| CqlError::invalid(format!("bind marker {i} has no known type")))
            })
            .collect()
    }
}

fn note_relations(
    binds: &mut Binds,
    shape: &Shape,
    relations: &[Relation],
) -> Result<(), CqlError> {
    for relation in relations {
        let index = shape.index(&relation.column)?;
        let ty = shape.columns[index].ty.clone();
        let ty = if relation.op == Op::In {
            CqlType::List(Box::new(ty))
        } else {
            ty
        };
        binds.note(&relation.term, &relation.column, ty);
    }
    Ok(())
}

fn pk_indexes(shape: &Shape, relations: &[Relation]) -> Vec<i16> {
    let mut indexes = Vec::new();
    for pk in &shape.partition_key {
        let name = &shape.columns[*pk].name;
        let marker = relations.iter().find_map(|r| match r.term {
            Term::Bind(i) if &r.column == name && r.op == Op::Eq => i16::try_from(i).ok(),
            _ => None,
        });
        match marker {
            Some(i) => indexes.push(i),
            None => return Vec::new(),
        }
    }
    indexes
}

/// Analyses a statement for `PREPARE`.
pub fn analyse(
    state: &State,
    statement: &Statement,
    markers: usize,
    ctx: &Context<'_>,
) -> Result<Analysis, CqlError> {
    let mut binds = Binds::new(markers);
    let (shape, relations, result) = match statement {
        Statement::Select {
            table,
            selection,
            relations,
            limit,
        } => {
            let shape = shape(state, table, ctx)?;
            note_relations(&mut binds, &shape, relations)?;
            if let Some(limit) = limit {
                binds.note(limit, "[limit]", CqlType::Int);
            }
            let result = selected(&shape, selection)?
                .into_iter()
                .map(|i| shape.columns[i].clone())
                .collect();
            (shape, relations.clone(), Some(result))
        }
        Statement::Insert {
            table,
            columns,
            values,
            ..
        } => {
            let shape = shape(state, table, ctx)?;
            let mut relations = Vec::new();
            for (column, term) in columns.iter().zip(values) {
                let index = shape.index(column)?;
                binds.note(term, column, shape.columns[index].ty.clone());
                relations.push(Relation {
                    column: column.clone(),
                    op: Op::Eq,
                    term: term.clone(),
                });
            }
            (shape, relations, None)
        }
        Statement::Update {
            table,
            assignments,
            relations,
            condition,
        } => {
            let shape = shape(state, table, ctx)?;
            for (column, term) in assignments {
                let index = shape.index(column)?;
                binds.note(term, column, shape.columns[index].ty.clone());
            }
            note_relations(&mut binds, &shape, relations)?;
            note_condition(&mut binds, &shape, condition)?;
            (shape, relations.clone(), None)
        }
        Statement::Delete {
            table,
            relations,
            condition,
        } => {
            let shape = shape(state, table, ctx)?;
            note_relations(&mut binds, &shape, relations)?;
            note_condition(&mut binds, &shape, condition)?;
            (shape, relations.clone(), None)
        }
        _ => {
            return Ok(Analysis {
                table: (String::new(), String::new()),
                bind: binds.finish()?,
                pk_indexes: Vec::new(),
                result: None,
            });
        }
    };
    Ok(Analysis {
        pk_indexes: pk_indexes(&shape, &relations),
        table: (shape.keyspace, shape.table),
        bind: binds.finish()?,
        result,
    })
}

fn note_condition(binds: &mut Binds, shape: &Shape, condition: &Condition) -> Result<(), CqlError> {
    if let Condition::Columns(columns) = condition {
        for (column, term) in columns {
            let index = shape.index(column)?;
            binds.note(term, column, shape.columns[index].ty.clone());
        }
    }
    Ok(())
}

fn selected(shape: &Shape, selection: &Selection) -> Result<Vec<usize>, CqlError> {
    match selection {
        Selection::All => Ok(shape.star.clone()),
        Selection::Columns(names) => names.iter().map(|n| shape.index(n)).collect(),
    }
}

/// Resolves terms to values using the bound values.
struct Values<'a> {
    bound: &'a [BoundValue],
}

impl Values<'_> {
    /// The value of `term` for a column of type `ty`; `Ok(None)` for null, `Err` for unset
    /// where a value is required.
    fn get(&self, term: &Term, ty: &CqlType) -> Result<Option<CqlValue>, CqlError> {
        match term {
            Term::Bind(i) => match self.bound.get(*i) {
                Some(BoundValue::Value(bytes)) => ty.decode(bytes).map(Some),
                Some(BoundValue::Null) => Ok(None),
                Some(BoundValue::Unset) => Err(CqlError::invalid(format!(
                    "bind marker {i} is unset where a value is required"
                ))),
                None => Err(CqlError::invalid(format!(
                    "There were more bind markers than the {} bound values",
                    self.bound.len()
                ))),
            },
            Term::Literal(lit) => literal_value(lit, ty),
        }
    }

    fn is_unset(&self, term: &Term) -> bool {
        matches!(term, Term::Bind(i) if matches!(self.bound.get(*i), Some(BoundValue::Unset)))
    }

    fn required(&self, term: &Term, column: &Column) -> Result<CqlValue, CqlError> {
        self.get(term, &column.ty)?.ok_or_else(|| {
            CqlError::invalid(format!("Invalid null value for column {}", column.name))
        })
    }
}

fn literal_value(lit: &Literal, ty: &CqlType) -> Result<Option<CqlValue>, CqlError> {
    let mismatch = || {
        CqlError::invalid(format!(
            "literal {lit:?} is not a valid {} value",
            ty.cql_name()
        ))
    };
    Ok(Some(match (lit, ty) {
        (Literal::Null, _) => return Ok(None),
        (Literal::Str(s), CqlType::Text) => CqlValue::Text(s.clone()),
        (Literal::Int(i), CqlType::Int) => {
            CqlValue::Int(i32::try_from(*i).map_err(|_| mismatch())?)
        }
        (Literal::Int(i), CqlType::BigInt) => CqlValue::BigInt(*i),
        (Literal::Bool(b), CqlType::Boolean) => CqlValue::Boolean(*b),
        (Literal::List(items), CqlType::List(inner) | CqlType::Set(inner)) => CqlValue::List(
            items
                .iter()
                .map(|item| literal_value(item, inner)?.ok_or_else(mismatch))
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(mismatch()),
    }))
}

/// Executes a statement.
pub fn execute(
    state: &mut State,
    statement: &Statement,
    bound: &[BoundValue],
    paging: &Paging,
    ctx: &Context<'_>,
) -> Result<Outcome, CqlError> {
    let values = Values { bound };
    match statement {
        Statement::Select {
            table,
            selection,
            relations,
            limit,
        } => {
            let shape = shape(state, table, ctx)?;
            let limit = match limit {
                Some(term) => {
                    let n = values
                        .get(term, &CqlType::Int)?
                        .ok_or_else(|| CqlError::invalid("Invalid null value of limit"))?;
                    match n {
                        CqlValue::Int(n) if n > 0 => Some(usize::try_from(n).unwrap_or(0)),
                        _ => return Err(CqlError::invalid("LIMIT must be strictly positive")),
                    }
                }
                None => None,
            };
            select(state, &shape, selection, relations, limit, &values, paging)
        }
        Statement::Insert {
            table,
            columns,
            values: terms,
            condition,
        } => {
            let shape = writable(state, table, ctx)?;
            let mut assignments = Vec::new();
            let mut key_relations = Vec::new();
            for (column, term) in columns.iter().zip(terms) {
                let index = shape.index(column)?;
                if shape.partition_key.contains(&index) || shape.clustering.contains(&index) {
                    key_relations.push(Relation {
                        column: column.clone(),
                        op: Op::Eq,
                        term: term.clone(),
                    });
                } else {
                    assignments.push((column.clone(), term.clone()));
                }
            }
            let (pk, ck) = row_key(&shape, &key_relations, &values, true)?;
            let ck = ck.unwrap_or_default();
            let table_ref = user_table_mut(state, &shape.keyspace, &shape.table)?;
            let existing = table_ref.rows.get(&pk).and_then(|p| p.get(&ck)).cloned();
            if *condition == Condition::NotExists
                && let Some(row) = existing
            {
                let star = table_ref.star_order();
                let extra = star
                    .iter()
                    .map(|i| (shape.columns[*i].clone(), row[*i].clone()));
                return Ok(lwt_result(&shape, false, extra.collect()));
            }
            let mut row = existing.unwrap_or_else(|| vec![None; shape.columns.len()]);
            for (index, value) in shape.partition_key.iter().zip(&pk) {
                row[*index] = Some(value.clone());
            }
            for (index, value) in shape.clustering.iter().zip(&ck) {
                row[*index] = Some(value.clone());
            }
            assign(&shape, &mut row, &assignments, &values)?;
            table_ref.rows.entry(pk).or_default().insert(ck, row);
            Ok(if *condition == Condition::NotExists {
                lwt_result(&shape, true, Vec::new())
            } else {
                Outcome::Void
            })
        }
        Statement::Update {
            table,
            assignments,
            relations,
            condition,
        } => {
            let shape = writable(state, table, ctx)?;
            let (pk, ck) = row_key(&shape, relations, &values, true)?;
            let ck = ck.unwrap_or_default();
            let table_ref = user_table_mut(state, &shape.keyspace, &shape.table)?;
            let existing = table_ref.rows.get(&pk).and_then(|p| p.get(&ck)).cloned();
            if let Some(failure) = check_condition(&shape, condition, existing.as_ref(), &values)? {
                return Ok(failure);
            }
            let mut row = existing.unwrap_or_else(|| {
                let mut row = vec![None; shape.columns.len()];
                for (index, value) in shape.partition_key.iter().zip(&pk) {
                    row[*index] = Some(value.clone());
                }
                for (index, value) in shape.clustering.iter().zip(&ck) {
                    row[*index] = Some(value.clone());
                }
                row
            });
            assign(&shape, &mut row, assignments, &values)?;
            table_ref.rows.entry(pk).or_default().insert(ck, row);
            Ok(conditional_success(&shape, condition))
        }
        Statement::Delete {
            table,
            relations,
            condition,
        } => {
            let shape = writable(state, table, ctx)?;
            let (pk, ck) = row_key(&shape, relations, &values, false)?;
            let table_ref = user_table_mut(state, &shape.keyspace, &shape.table)?;
            match ck {
                Some(ck) => {
                    let existing = table_ref.rows.get(&pk).and_then(|p| p.get(&ck)).cloned();
                    if let Some(failure) =
                        check_condition(&shape, condition, existing.as_ref(), &values)?
                    {
                        return Ok(failure);
                    }
                    if let Some(partition) = table_ref.rows.get_mut(&pk) {
                        partition.remove(&ck);
                        if partition.is_empty() {
                            table_ref.rows.remove(&pk);
                        }
                    }
                }
                None => {
                    if *condition != Condition::None {
                        return Err(CqlError::invalid(
                            "conditional deletes of whole partitions are not supported by the CQL test double",
                        ));
                    }
                    table_ref.rows.remove(&pk);
                }
            }
            Ok(conditional_success(&shape, condition))
        }
        Statement::CreateKeyspace {
            name,
            if_not_exists,
            replication,
            durable_writes,
        } => {
            if state.keyspaces.contains_key(name) || is_system_keyspace(name) {
                if *if_not_exists {
                    return Ok(Outcome::Void);
                }
                return Err(CqlError {
                    kind: CqlErrorKind::AlreadyExists {
                        keyspace: name.clone(),
                        table: String::new(),
                    },
                    message: format!("Keyspace {name} already exists"),
                });
            }
            validate_replication(replication)?;
            state.keyspaces.insert(
                name.clone(),
                Keyspace {
                    replication: replication.clone(),
                    durable_writes: *durable_writes,
                    tables: BTreeMap::new(),
                },
            );
            state.schema_generation += 1;
            Ok(Outcome::SchemaChange {
                created: true,
                keyspace: name.clone(),
                table: None,
            })
        }
        Statement::CreateTable {
            table,
            if_not_exists,
            columns,
            partition_key,
            clustering,
        } => {
            let keyspace = keyspace_of(table, ctx)?;
            if is_system_keyspace(&keyspace) {
                return Err(CqlError::invalid(format!(
                    "{keyspace} keyspace is not user-modifiable"
                )));
            }
            let ks = state
                .keyspaces
                .get_mut(&keyspace)
                .ok_or_else(|| CqlError::invalid(format!("Keyspace {keyspace} does not exist")))?;
            if ks.tables.contains_key(&table.table) {
                if *if_not_exists {
                    return Ok(Outcome::Void);
                }
                return Err(CqlError {
                    kind: CqlErrorKind::AlreadyExists {
                        keyspace: keyspace.clone(),
                        table: table.table.clone(),
                    },
                    message: format!("Table {keyspace}.{} already exists", table.table),
                });
            }
            let columns: Vec<Column> = columns
                .iter()
                .map(|(name, ty)| Column {
                    name: name.clone(),
                    ty: ty.clone(),
                })
                .collect();
            let find = |name: &String| {
                columns.iter().position(|c| &c.name == name).ok_or_else(|| {
                    CqlError::invalid(format!(
                        "Unknown definition {name} referenced in PRIMARY KEY"
                    ))
                })
            };
            let partition_key = partition_key
                .iter()
                .map(find)
                .collect::<Result<Vec<_>, _>>()?;
            let clustering = clustering.iter().map(find).collect::<Result<Vec<_>, _>>()?;
            ks.tables.insert(
                table.table.clone(),
                Table {
                    columns,
                    partition_key,
                    clustering,
                    rows: BTreeMap::new(),
                },
            );
            state.schema_generation += 1;
            Ok(Outcome::SchemaChange {
                created: true,
                keyspace,
                table: Some(table.table.clone()),
            })
        }
        Statement::DropKeyspace { name, if_exists } => {
            if state.keyspaces.remove(name).is_none() {
                if *if_exists {
                    return Ok(Outcome::Void);
                }
                return Err(CqlError::invalid(format!(
                    "Cannot drop non existing keyspace '{name}'."
                )));
            }
            state.schema_generation += 1;
            Ok(Outcome::SchemaChange {
                created: false,
                keyspace: name.clone(),
                table: None,
            })
        }
        Statement::DropTable { table, if_exists } => {
            let keyspace = keyspace_of(table, ctx)?;
            let removed = state
                .keyspaces
                .get_mut(&keyspace)
                .and_then(|ks| ks.tables.remove(&table.table));
            if removed.is_none() {
                if *if_exists {
                    return Ok(Outcome::Void);
                }
                return Err(CqlError::invalid(format!(
                    "Table '{keyspace}.{}' doesn't exist",
                    table.table
                )));
            }
            state.schema_generation += 1;
            Ok(Outcome::SchemaChange {
                created: false,
                keyspace,
                table: Some(table.table.clone()),
            })
        }
        Statement::Truncate { table } => {
            let keyspace = keyspace_of(table, ctx)?;
            user_table_mut(state, &keyspace, &table.table)?.rows.clear();
            Ok(Outcome::Void)
        }
        Statement::Use { keyspace } => {
            if !state.keyspaces.contains_key(keyspace) && !is_system_keyspace(keyspace) {
                return Err(CqlError::invalid(format!(
                    "Keyspace '{keyspace}' does not exist"
                )));
            }
            Ok(Outcome::SetKeyspace(keyspace.clone()))
        }
    }
}

fn validate_replication(replication: &[(String, String)]) -> Result<(), CqlError> {
    let class = replication
        .iter()
        .find(|(k, _)| k == "class")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| CqlError {
            kind: CqlErrorKind::Invalid,
            message: "Missing replication strategy class".to_owned(),
        })?;
    let short = class.rsplit('.').next().unwrap_or(class);
    if !matches!(short, "SimpleStrategy" | "NetworkTopologyStrategy") {
        return Err(CqlError::invalid(format!(
            "Unable to find replication strategy class '{class}'"
        )));
    }
    for (k, v) in replication.iter().filter(|(k, _)| k != "class") {
        if v.parse::<u32>().is_err() {
            return Err(CqlError::invalid(format!(
                "replication factor '{v}' of '{k}' is not a number"
            )));
        }
    }
    Ok(())
}

fn writable(state: &State, table: &TableName, ctx: &Context<'_>) -> Result<Shape, CqlError> {
    let shape = shape(state, table, ctx)?;
    if shape.virtual_rows.is_some() {
        return Err(CqlError::invalid(format!(
            "{} keyspace is not user-modifiable",
            shape.keyspace
        )));
    }
    Ok(shape)
}

/// The partition key and (if `require_clustering` or given) clustering key named by `=`
/// relations.
fn row_key(
    shape: &Shape,
    relations: &[Relation],
    values: &Values<'_>,
    require_clustering: bool,
) -> Result<(Vec<CqlValue>, Option<Vec<CqlValue>>), CqlError> {
    for relation in relations {
        let index = shape.index(&relation.column)?;
        if relation.op != Op::Eq {
            return Err(CqlError::invalid(format!(
                "Only = is supported on {} in a modification by the CQL test double",
                relation.column
            )));
        }
        if !shape.partition_key.contains(&index) && !shape.clustering.contains(&index) {
            return Err(CqlError::invalid(format!(
                "Non PRIMARY KEY columns found in where clause: {}",
                relation.column
            )));
        }
    }
    let key_of = |indexes: &[usize]| -> Result<Option<Vec<CqlValue>>, CqlError> {
        let mut key = Vec::new();
        for index in indexes {
            let column = &shape.columns[*index];
            match relations.iter().find(|r| r.column == column.name) {
                Some(r) => key.push(values.required(&r.term, column)?),
                None => return Ok(None),
            }
        }
        Ok(Some(key))
    };
    let pk = key_of(&shape.partition_key)?.ok_or_else(|| {
        CqlError::invalid("Some partition key parts are missing from the WHERE clause")
    })?;
    let ck = key_of(&shape.clustering)?;
    if ck.is_none() && require_clustering {
        return Err(CqlError::invalid(
            "Some clustering keys are missing from the WHERE clause",
        ));
    }
    Ok((pk, ck))
}

fn assign(
    shape: &Shape,
    row: &mut RowValues,
    assignments: &[(String, Term)],
    values: &Values<'_>,
) -> Result<(), CqlError> {
    for (column, term) in assignments {
        let index = shape.index(column)?;
        if shape.partition_key.contains(&index) || shape.clustering.contains(&index) {
            return Err(CqlError::invalid(format!(
                "PRIMARY KEY part {column} found in SET part"
            )));
        }
        if values.is_unset(term) {
            continue;
        }
        row[index] = values.get(term, &shape.columns[index].ty)?;
    }
    Ok(())
}

/// `None` if the condition holds (or there is none), else the failure result.
fn check_condition(
    shape: &Shape,
    condition: &Condition,
    existing: Option<&RowValues>,
    values: &Values<'_>,
) -> Result<Option<Outcome>, CqlError> {
    match (condition, existing) {
        (Condition::None, _) | (Condition::Exists, Some(_)) => Ok(None),
        (Condition::NotExists, None) => Ok(None),
        (Condition::NotExists, Some(row)) => {
            let extra = shape
                .star
                .iter()
                .map(|i| (shape.columns[*i].clone(), row[*i].clone()))
                .collect();
            Ok(Some(lwt_result(shape, false, extra)))
        }
        // As Cassandra: a missing row answers only `[applied] = false`.
        (Condition::Exists | Condition::Columns(_), None) => {
            Ok(Some(lwt_result(shape, false, Vec::new())))
        }
        (Condition::Columns(conditions), Some(row)) => {
            let mut holds = true;
            let mut extra = Vec::new();
            for (column, term) in conditions {
                let index = shape.index(column)?;
                let expected = values.get(term, &shape.columns[index].ty)?;
                holds &= row[index] == expected;
                extra.push((shape.columns[index].clone(), row[index].clone()));
            }
            Ok((!holds).then(|| lwt_result(shape, false, extra)))
        }
    }
}

fn conditional_success(shape: &Shape, condition: &Condition) -> Outcome {
    if *condition == Condition::None {
        Outcome::Void
    } else {
        lwt_result(shape, true, Vec::new())
    }
}

fn lwt_result(shape: &Shape, applied: bool, extra: Vec<(Column, Option<CqlValue>)>) -> Outcome {
    let mut columns = vec![Column {
        name: "[applied]".to_owned(),
        ty: CqlType::Boolean,
    }];
    let mut row = vec![Some(CqlValue::Boolean(applied))];
    for (column, value) in extra {
        columns.push(column);
        row.push(value);
    }
    Outcome::Rows {
        table: (shape.keyspace.clone(), shape.table.clone()),
        columns,
        rows: vec![row],
        paging_state: None,
    }
}

/// A row's position in a result: (partition key, clustering key).
type Position = (Vec<CqlValue>, Vec<CqlValue>);

fn select(
    state: &State,
    shape: &Shape,
    selection: &Selection,
    relations: &[Relation],
    limit: Option<usize>,
    values: &Values<'_>,
    paging: &Paging,
) -> Result<Outcome, CqlError> {
    let chosen = selected(shape, selection)?;
    // Resolve every relation once: (column index, op, value or values).
    let mut filters = Vec::new();
    for relation in relations {
        let index = shape.index(&relation.column)?;
        let ty = &shape.columns[index].ty;
        let ty = if relation.op == Op::In {
            CqlType::List(Box::new(ty.clone()))
        } else {
            ty.clone()
        };
        let value = values.get(&relation.term, &ty)?.ok_or_else(|| {
            CqlError::invalid(format!(
                "Invalid null value in condition for column {}",
                relation.column
            ))
        })?;
        filters.push((index, relation.op, value));
    }
    let resume = match &paging.paging_state {
        Some(bytes) => Some(decode_paging_state(bytes)?),
        None => None,
    };
    let (already, after) = match resume {
        Some((count, position)) => (count, Some(position)),
        None => (0, None),
    };
    let remaining_limit = limit.map(|l| l.saturating_sub(already));
    let page_size = paging
        .page_size
        .and_then(|p| usize::try_from(p).ok())
        .filter(|p| *p > 0);
    let wanted = match (remaining_limit, page_size) {
        (Some(l), Some(p)) => l.min(p),
        (Some(l), None) => l,
        (None, Some(p)) => p,
        (None, None) => usize::MAX,
    };
    let matches = |row: &RowValues| {
        filters.iter().all(|(index, op, value)| {
            let Some(actual) = &row[*index] else {
                return false;
            };
            match op {
                Op::Eq => actual == value,
                Op::In => matches!(value, CqlValue::List(items) if items.contains(actual)),
                Op::Gt => actual.compare(value).is_some_and(|o| o.is_gt()),
                Op::Ge => actual.compare(value).is_some_and(|o| o.is_ge()),
                Op::Lt => actual.compare(value).is_some_and(|o| o.is_lt()),
                Op::Le => actual.compare(value).is_some_and(|o| o.is_le()),
            }
        })
    };
    let mut rows: Vec<(Position, RowValues)> = Vec::new();
    let mut more = false;
    let mut push = |position: Position, row: &RowValues| -> bool {
        if let Some(after) = &after
            && &position <= after
        {
            return true;
        }
        if !matches(row) {
            return true;
        }
        if rows.len() == wanted {
            more = true;
            return false;
        }
        rows.push((position, chosen.iter().map(|i| row[*i].clone()).collect()));
        true
    };
    let virtual_rows;
    if let Some(vrows) = &shape.virtual_rows {
        virtual_rows = vrows;
        for (i, row) in virtual_rows.iter().enumerate() {
            let position = (
                Vec::new(),
                vec![CqlValue::BigInt(i64::try_from(i).unwrap_or(0))],
            );
            if !push(position, row) {
                break;
            }
        }
    } else {
        let table = user_table(state, &shape.keyspace, &shape.table)?;
        let partitions = restricted_partitions(shape, &filters)?;
        // The first clustering column's lower bound narrows the range read.
        let lower = shape.clustering.first().and_then(|first| {
            filters.iter().find_map(|(index, op, value)| {
                (index == first && matches!(op, Op::Gt | Op::Ge | Op::Eq))
                    .then(|| Bound::Included(vec![value.clone()]))
            })
        });
        let lower = lower.unwrap_or(Bound::Unbounded);
        let mut visit = |pk: &Vec<CqlValue>, partition: &crate::schema::Partition| -> bool {
            if let Some((after_pk, _)) = &after
                && pk < after_pk
            {
                return true;
            }
            for (ck, row) in partition.range((lower.clone(), Bound::Unbounded)) {
                if !push((pk.clone(), ck.clone()), row) {
                    return false;
                }
            }
            true
        };
        match partitions {
            Some(keys) => {
                for pk in keys {
                    if let Some(partition) = table.rows.get(&pk)
                        && !visit(&pk, partition)
                    {
                        break;
                    }
                }
            }
            None => {
                for (pk, partition) in &table.rows {
                    if !visit(pk, partition) {
                        break;
                    }
                }
            }
        }
    }
    let limit_reached = remaining_limit.is_some_and(|l| rows.len() >= l);
    let paging_state = match rows.last() {
        Some((position, _)) if more && !limit_reached => {
            Some(encode_paging_state(already + rows.len(), position))
        }
        _ => None,
    };
    Ok(Outcome::Rows {
        table: (shape.keyspace.clone(), shape.table.clone()),
        columns: chosen.iter().map(|i| shape.columns[*i].clone()).collect(),
        rows: rows.into_iter().map(|(_, row)| row).collect(),
        paging_state,
    })
}

/// The partition keys a `SELECT` is restricted to, in ascending order; `None` for a full scan.
fn restricted_partitions(
    shape: &Shape,
    filters: &[(usize, Op, CqlValue)],
) -> Result<Option<Vec<Vec<CqlValue>>>, CqlError> {
    let mut per_column = Vec::new();
    for pk in &shape.partition_key {
        let choices = filters.iter().find_map(|(index, op, value)| match op {
            Op::Eq if index == pk => Some(vec![value.clone()]),
            Op::In if index == pk => match value {
                CqlValue::List(items) => Some(items.clone()),
                _ => None,
            },
            _ => None,
        });
        per_column.push(choices);
    }
    if per_column.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut keys: Vec<Vec<CqlValue>> = vec![Vec::new()];
    for (i, choices) in per_column.into_iter().enumerate() {
        let choices = choices.ok_or_else(|| {
            CqlError::invalid(format!(
                "Cannot execute this query as it might involve data filtering: partition key part {} must be restricted",
                shape.columns[shape.partition_key[i]].name
            ))
        })?;
        keys = keys
            .into_iter()
            .flat_map(|prefix| {
                choices.iter().map(move |c| {
                    let mut key = prefix.clone();
                    key.push(c.clone());
                    key
                })
            })
            .collect();
    }
    keys.sort();
    keys.dedup();
    Ok(Some(keys))
}

const PAGING_MAGIC: &[u8; 4] = b"cqtd";

fn encode_paging_state(count: usize, position: &Position) -> Vec<u8> {
    let mut out = PAGING_MAGIC.to_vec();
    out.extend_from_slice(&u64::try_from(count).unwrap_or(u64::MAX).to_be_bytes());
    for part in [&position.0, &position.1] {
        out.extend_from_slice(&u16::try_from(part.len()).unwrap_or(0).to_be_bytes());
        for value in part {
            let tag = match value {
                CqlValue::Text(_) => 0u8,
                CqlValue::Int(_) => 1,
                CqlValue::BigInt(_) => 2,
                CqlValue::Blob(_) => 3,
                CqlValue::Boolean(_) => 4,
                CqlValue::Uuid(_) => 5,
                CqlValue::Inet(_) => 6,
                CqlValue::List(_) | CqlValue::Map(_) => 7,
            };
            let bytes = value.encode();
            out.push(tag);
            out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&bytes);
        }
    }
    out
}

fn decode_paging_state(bytes: &[u8]) -> Result<(usize, Position), CqlError> {
    let bad = || CqlError::protocol("invalid paging state (not one this server returned)");
    let rest = bytes
        .strip_prefix(PAGING_MAGIC.as_slice())
        .ok_or_else(bad)?;
    let (count, mut rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
    let count = usize::try_from(u64::from_be_bytes(*count)).map_err(|_| bad())?;
    let mut parts = Vec::new();
    for _ in 0..2 {
        let (n, tail) = rest.split_first_chunk::<2>().ok_or_else(bad)?;
        rest = tail;
        let mut part = Vec::new();
        for _ in 0..u16::from_be_bytes(*n) {
            let (tag, tail) = rest.split_first().ok_or_else(bad)?;
            let (len, tail) = tail.split_first_chunk::<4>().ok_or_else(bad)?;
            let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| bad())?;
            if tail.len() < len {
                return Err(bad());
            }
            let (value, tail) = tail.split_at(len);
            rest = tail;
            let ty = match tag {
                0 => CqlType::Text,
                1 => CqlType::Int,
                2 => CqlType::BigInt,
                3 => CqlType::Blob,
                4 => CqlType::Boolean,
                5 => CqlType::Uuid,
                6 => CqlType::Inet,
                _ => return Err(bad()),
            };
            part.push(ty.decode(value).map_err(|_| bad())?);
        }
        parts.push(part);
    }
    let ck = parts.pop().ok_or_else(bad)?;
    let pk = parts.pop().ok_or_else(bad)?;
    Ok((count, (pk, ck)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::parser::parse;

    fn ctx() -> Context<'static> {
        Context {
            keyspace: None,
            node_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    fn run(state: &mut State, cql: &str, bound: &[BoundValue], paging: &Paging) -> Outcome {
        let parsed = parse(cql).unwrap();
        execute(state, &parsed.statement, bound, paging, &ctx()).unwrap()
    }

    fn text(s: &str) -> BoundValue {
        BoundValue::Value(s.as_bytes().to_vec())
    }

    fn int(i: i32) -> BoundValue {
        BoundValue::Value(i.to_be_bytes().to_vec())
    }

    fn setup() -> State {
        let mut state = State::default();
        let none = Paging::default();
        run(
            &mut state,
            "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
            &[],
            &none,
        );
        run(
            &mut state,
            "CREATE TABLE ks.t (p text, b int, k text, v text, PRIMARY KEY ((p, b), k))",
            &[],
            &none,
        );
        for b in 0..3 {
            for k in ["a", "b", "c", "d"] {
                run(
                    &mut state,
                    "INSERT INTO ks.t (p, b, k, v) VALUES (?, ?, ?, ?)",
                    &[text("r"), int(b), text(k), text("v")],
                    &none,
                );
            }
        }
        state
    }

    fn keys(outcome: &Outcome) -> (Vec<Option<CqlValue>>, Option<Vec<u8>>) {
        match outcome {
            Outcome::Rows {
                rows, paging_state, ..
            } => (
                rows.iter().map(|r| r[0].clone()).collect(),
                paging_state.clone(),
            ),
            other => panic!("not rows: {other:?}"),
        }
    }

    #[test]
    fn full_scan_pages_across_partitions() {
        let mut state = setup();
        let mut paging = Paging {
            page_size: Some(5),
            paging_state: None,
        };
        let mut total = 0;
        for _ in 0..10 {
            let outcome = run(&mut state, "SELECT k FROM ks.t", &[], &paging);
            let (rows, next) = keys(&outcome);
            total += rows.len();
            match next {
                Some(state) => paging.paging_state = Some(state),
                None => break,
            }
        }
        assert_eq!(total, 12);
    }

    #[test]
    fn in_restriction_limit_and_range() {
        let mut state = setup();
        let list = CqlValue::List(vec![CqlValue::Int(2), CqlValue::Int(0)]);
        let outcome = run(
            &mut state,
            "SELECT k FROM ks.t WHERE p = ? AND b IN ? AND k >= ? LIMIT 3",
            &[text("r"), BoundValue::Value(list.encode()), text("c")],
            &Paging::default(),
        );
        let (rows, next) = keys(&outcome);
        // Partition b=0 first (sorted), then b=2; k >= 'c' leaves c, d in each; LIMIT 3.
        assert_eq!(
            rows,
            vec![
                Some(CqlValue::Text("c".into())),
                Some(CqlValue::Text("d".into())),
                Some(CqlValue::Text("c".into())),
            ]
        );
        assert_eq!(next, None);
    }

    #[test]
    fn bad_requests_are_clear_errors() {
        let mut state = setup();
        let parsed = parse("SELECT k FROM ks.t WHERE p = ?").unwrap();
        let err = execute(
            &mut state,
            &parsed.statement,
            &[text("r")],
            &Paging::default(),
            &ctx(),
        )
        .unwrap_err();
        assert!(err.message.contains("must be restricted"), "{err}");
        let parsed = parse("SELECT k FROM ks.t").unwrap();
        let err = execute(
            &mut state,
            &parsed.statement,
            &[],
            &Paging {
                page_size: Some(1),
                paging_state: Some(b"garbage".to_vec()),
            },
            &ctx(),
        )
        .unwrap_err();
        assert!(err.message.contains("paging state"), "{err}");
        let parsed = parse("UPDATE system.local SET key = ? WHERE key = ?").unwrap();
        let err = execute(
            &mut state,
            &parsed.statement,
            &[text("x"), text("y")],
            &Paging::default(),
            &ctx(),
        )
        .unwrap_err();
        assert!(err.message.contains("not user-modifiable"), "{err}");
        let parsed = parse("SELECT nope FROM ks.t").unwrap();
        let err = analyse(&state, &parsed.statement, 0, &ctx()).unwrap_err();
        assert!(err.message.contains("Undefined column name nope"), "{err}");
    }
}
