//! A small parser for the CQL statement shapes the double supports.
//!
//! Supported: `SELECT [DISTINCT] cols|* FROM t [WHERE rel AND ...] [LIMIT n|?] [ALLOW FILTERING]`,
//! `INSERT INTO t (cols) VALUES (terms) [IF NOT EXISTS]`,
//! `UPDATE t SET c = term, ... WHERE rels [IF EXISTS | IF c = term AND ...]`,
//! `DELETE FROM t WHERE rels [IF EXISTS | IF c = term AND ...]`,
//! `CREATE KEYSPACE [IF NOT EXISTS] ks WITH replication = {...} [AND durable_writes = b]`,
//! `CREATE TABLE [IF NOT EXISTS] t (c type, ..., PRIMARY KEY (...)) [WITH ...]`,
//! `DROP KEYSPACE|TABLE [IF EXISTS] name`, `TRUNCATE [TABLE] t`, `USE ks`.
//! Relations: `c = term`, `c > term` (also `>=`, `<`, `<=`), `c IN ?` / `c IN (terms)`.
//! Anything else is a syntax error naming what was not understood.

use crate::error::CqlError;
use crate::types::CqlType;

/// A table name, optionally qualified by its keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// The keyspace, if written.
    pub keyspace: Option<String>,
    /// The table.
    pub table: String,
}

/// A literal written in the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// `'text'`.
    Str(String),
    /// An integer.
    Int(i64),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// `(a, b)` or `[a, b]`.
    List(Vec<Literal>),
    /// `{k: v, ...}`.
    Map(Vec<(Literal, Literal)>),
}

/// A value in a statement: a bind marker or a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// The n-th `?` of the statement (0-based).
    Bind(usize),
    /// A literal.
    Literal(Literal),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`.
    Eq,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `IN`.
    In,
}

/// `column op term` in a `WHERE` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The column.
    pub column: String,
    /// The operator.
    pub op: Op,
    /// The right-hand side.
    pub term: Term,
}

/// The `IF` clause of a modification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// No `IF`: an ordinary write.
    None,
    /// `IF EXISTS`.
    Exists,
    /// `IF NOT EXISTS`.
    NotExists,
    /// `IF c = term AND ...`.
    Columns(Vec<(String, Term)>),
}

/// The selected columns of a `SELECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `*`.
    All,
    /// Named columns.
    Columns(Vec<String>),
}

/// A parsed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `SELECT`.
    Select {
        /// The table.
        table: TableName,
        /// The selected columns.
        selection: Selection,
        /// The `WHERE` relations.
        relations: Vec<Relation>,
        /// `LIMIT`.
        limit: Option<Term>,
    },
    /// `INSERT`.
    Insert {
        /// The table.
        table: TableName,
        /// The columns.
        columns: Vec<String>,
        /// The values, one per column.
        values: Vec<Term>,
        /// `IF NOT EXISTS` or none.
        condition: Condition,
    },
    /// `UPDATE`.
    Update {
        /// The table.
        table: TableName,
        /// `SET` assignments.
        assignments: Vec<(String, Term)>,
        /// The `WHERE` relations.
        relations: Vec<Relation>,
        /// The `IF` clause.
        condition: Condition,
    },
    /// `DELETE` (whole rows only).
    Delete {
        /// The table.
        table: TableName,
        /// The `WHERE` relations.
        relations: Vec<Relation>,
        /// The `IF` clause.
        condition: Condition,
    },
    /// `CREATE KEYSPACE`.
    CreateKeyspace {
        /// The keyspace.
        name: String,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
        /// The replication map.
        replication: Vec<(String, String)>,
        /// `durable_writes`.
        durable_writes: bool,
    },
    /// `CREATE TABLE`.
    CreateTable {
        /// The table.
        table: TableName,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
        /// Column names and types in declaration order.
        columns: Vec<(String, CqlType)>,
        /// Partition key columns.
        partition_key: Vec<String>,
        /// Clustering columns (ascending order only).
        clustering: Vec<String>,
    },
    /// `DROP KEYSPACE`.
    DropKeyspace {
        /// The keyspace.
        name: String,
        /// `IF EXISTS`.
        if_exists: bool,
    },
    /// `DROP TABLE`.
    DropTable {
        /// The table.
        table: TableName,
        /// `IF EXISTS`.
        if_exists: bool,
    },
    /// `TRUNCATE`.
    Truncate {
        /// The table.
        table: TableName,
    },
    /// `USE`.
    Use {
        /// The keyspace.
        keyspace: String,
    },
}

/// A parsed statement and its number of bind markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The statement.
    pub statement: Statement,
    /// How many `?` it has.
    pub markers: usize,
}

/// Parses one statement.
pub fn parse(cql: &str) -> Result<Parsed, CqlError> {
    let tokens = lex(cql)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        markers: 0,
        cql,
    };
    let statement = parser.statement()?;
    parser.eat_punct(";");
    if let Some(token) = parser.peek() {
        return Err(parser.error(&format!(
            "unexpected '{}' after the statement",
            token.text()
        )));
    }
    Ok(Parsed {
        statement,
        markers: parser.markers,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An unquoted identifier or keyword (lower-cased) .
    Word(String),
    /// A `"quoted"` identifier (case kept).
    Quoted(String),
    Str(String),
    Int(i64),
    Punct(&'static str),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Quoted(q) => format!("\"{q}\""),
            Token::Str(s) => format!("'{s}'"),
            Token::Int(i) => i.to_string(),
            Token::Punct(p) => (*p).to_owned(),
        }
    }
}

const PUNCTS: [&str; 16] = [
    ">=", "<=", "!=", "(", ")", ",", "=", ">", "<", "?", "{", "}", ":", ".", ";", "*",
];

fn lex(cql: &str) -> Result<Vec<Token>, CqlError> {
    let mut tokens = Vec::new();
    let mut rest = cql;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else {
            return Ok(tokens);
        };
        if c == '\'' {
            let mut value = String::new();
            let mut chars = rest[1..].char_indices();
            let mut end = None;
            while let Some((i, ch)) = chars.next() {
                if ch == '\'' {
                    if rest[1 + i + 1..].starts_with('\'') {
                        value.push('\'');
                        chars.next();
                    } else {
                        end = Some(1 + i + 1);
                        break;
                    }
                } else {
                    value.push(ch);
                }
            }
            let end = end.ok_or_else(|| CqlError::syntax("unterminated string literal"))?;
            tokens.push(Token::Str(value));
            rest = &rest[end..];
        } else if c == '"' {
            let close = rest[1..]
                .find('"')
                .ok_or_else(|| CqlError::syntax("unterminated quoted identifier"))?;
            tokens.push(Token::Quoted(rest[1..1 + close].to_owned()));
            rest = &rest[close + 2..];
        } else if c.is_ascii_digit()
            || (c == '-' && rest[1..].starts_with(|d: char| d.is_ascii_digit()))
        {
            let len = 1 + rest[1..]
                .find(|d: char| !d.is_ascii_digit())
                .unwrap_or(rest.len() - 1);
            let n = rest[..len]
                .parse::<i64>()
                .map_err(|_| CqlError::syntax(format!("bad number '{}'", &rest[..len])))?;
            tokens.push(Token::Int(n));
            rest = &rest[len..];
        } else if c.is_alphabetic() || c == '_' {
            let len = rest
                .find(|d: char| !(d.is_alphanumeric() || d == '_'))
                .unwrap_or(rest.len());
            tokens.push(Token::Word(rest[..len].to_ascii_lowercase()));
            rest = &rest[len..];
        } else if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            tokens.push(Token::Punct(p));
            rest = &rest[p.len()..];
        } else {
            return Err(CqlError::syntax(format!("unexpected character '{c}'")));
        }
    }
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    markers: usize,
    cql: &'a str,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> CqlError {
        CqlError::syntax(format!(
            "{what} in '{}' (the CQL test double supports only a few statement shapes)",
            self.cql
        ))
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.is_word(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_words(&mut self, words: &[&str]) -> bool {
        let matches = words.iter().enumerate().all(
            |(i, word)| matches!(self.tokens.get(self.pos + i), Some(Token::Word(w)) if w == word),
        );
        if matches {
            self.pos += words.len();
        }
        matches
    }

    fn expect_word(&mut self, word: &str) -> Result<(), CqlError> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", word.to_ascii_uppercase())))
        }
    }

    fn eat_punct(&mut self, punct: &str) -> bool {
        if matches!(self.peek(), Some(Token::Punct(p)) if *p == punct) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, punct: &str) -> Result<(), CqlError> {
        if self.eat_punct(punct) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{punct}'")))
        }
    }

    fn identifier(&mut self) -> Result<String, CqlError> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            Some(Token::Quoted(q)) => Ok(q),
            _ => {
                self.pos -= 1;
                Err(self.error("expected a name"))
            }
        }
    }

    fn table_name(&mut self) -> Result<TableName, CqlError> {
        let first = self.identifier()?;
        if self.eat_punct(".") {
            Ok(TableName {
                keyspace: Some(first),
                table: self.identifier()?,
            })
        } else {
            Ok(TableName {
                keyspace: None,
                table: first,
            })
        }
    }

    fn statement(&mut self) -> Result<Statement, CqlError> {
        if self.eat_word("select") {
            self.select()
        } else if self.eat_word("insert") {
            self.insert()
        } else if self.eat_word("update") {
            self.update()
        } else if self.eat_word("delete") {
            self.delete()
        } else if self.eat_word("create") {
            if self.eat_word("keyspace") {
                self.create_keyspace()
            } else if self.eat_word("table") || self.eat_words(&["columnfamily"]) {
                self.create_table()
            } else {
                Err(self.error("expected KEYSPACE or TABLE after CREATE"))
            }
        } else if self.eat_word("drop") {
            let keyspace = if self.eat_word("keyspace") {
                true
            } else if self.eat_word("table") {
                false
            } else {
                return Err(self.error("expected KEYSPACE or TABLE after DROP"));
            };
            let if_exists = self.eat_words(&["if", "exists"]);
            if keyspace {
                Ok(Statement::DropKeyspace {
                    name: self.identifier()?,
                    if_exists,
                })
            } else {
                Ok(Statement::DropTable {
                    table: self.table_name()?,
                    if_exists,
                })
            }
        } else if self.eat_word("truncate") {
            self.eat_word("table");
            Ok(Statement::Truncate {
                table: self.table_name()?,
            })
        } else if self.eat_word("use") {
            Ok(Statement::Use {
                keyspace: self.identifier()?,
            })
        } else {
            Err(self.error("unsupported statement"))
        }
    }

    fn select(&mut self) -> Result<Statement, CqlError> {
        self.eat_word("distinct");
        let selection = if self.eat_punct("*") {
            Selection::All
        } else {
            let mut columns = vec![self.identifier()?];
            while self.eat_punct(",") {
                columns.push(self.identifier()?);
            }
            Selection::Columns(columns)
        };
        self.expect_word("from")?;
        let table = self.table_name()?;
        let relations = if self.eat_word("where") {
            self.relations()?
        } else {
            Vec::new()
        };
        let limit = if self.eat_word("limit") {
            Some(self.term()?)
        } else {
            None
        };
        self.eat_words(&["allow", "filtering"]);
        Ok(Statement::Select {
            table,
            selection,
            relations,
            limit,
        })
    }

    fn insert(&mut self) -> Result<Statement, CqlError> {
        self.expect_word("into")?;
        let table = self.table_name()?;
        self.expect_punct("(")?;
        let mut columns = vec![self.identifier()?];
        while self.eat_punct(",") {
            columns.push(self.identifier()?);
        }
        self.expect_punct(")")?;
        self.expect_word("values")?;
        self.expect_punct("(")?;
        let mut values = vec![self.term()?];
        while self.eat_punct(",") {
            values.push(self.term()?);
        }
        self.expect_punct(")")?;
        if columns.len() != values.len() {
            return Err(self.error("the numbers of columns and values differ"));
        }
        let condition = if self.eat_words(&["if", "not", "exists"]) {
            Condition::NotExists
        } else {
            Condition::None
        };
        Ok(Statement::Insert {
            table,
            columns,
            values,
            condition,
        })
    }

    fn update(&mut self) -> Result<Statement, CqlError> {
        let table = self.table_name()?;
        self.expect_word("set")?;
        let mut assignments = Vec::new();
        loop {
            let column = self.identifier()?;
            self.expect_punct("=")?;
            assignments.push((column, self.term()?));
            if !self.eat_punct(",") {
                break;
            }
        }
        self.expect_word("where")?;
        let relations = self.relations()?;
        let condition = self.condition()?;
        Ok(Statement::Update {
            table,
            assignments,
            relations,
            condition,
        })
    }

    fn delete(&mut self) -> Result<Statement, CqlError> {
        self.expect_word("from")?;
        let table = self.table_name()?;
        self.expect_word("where")?;
        let relations = self.relations()?;
        let condition = self.condition()?;
        Ok(Statement::Delete {
            table,
            relations,
            condition,
        })
    }

    fn condition(&mut self) -> Result<Condition, CqlError> {
        if !self.eat_word("if") {
            return Ok(Condition::None);
        }
        if self.eat_word("exists") {
            return Ok(Condition::Exists);
        }
        let mut columns = Vec::new();
        loop {
            let column = self.identifier()?;
            self.expect_punct("=")?;
            columns.push((column, self.term()?));
            if !self.eat_word("and") {
                break;
            }
        }
        Ok(Condition::Columns(columns))
    }

    fn relations(&mut self) -> Result<Vec<Relation>, CqlError> {
        let mut relations = Vec::new();
        loop {
            let column = self.identifier()?;
            let op = match self.next() {
                Some(Token::Punct("=")) => Op::Eq,
                Some(Token::Punct(">")) => Op::Gt,
                Some(Token::Punct(">=")) => Op::Ge,
                Some(Token::Punct("<")) => Op::Lt,
                Some(Token::Punct("<=")) => Op::Le,
                Some(Token::Word(w)) if w == "in" => Op::In,
                _ => {
                    self.pos -= 1;
                    return Err(self.error("expected =, >, >=, <, <= or IN"));
                }
            };
            relations.push(Relation {
                column,
                op,
                term: self.term()?,
            });
            if !self.eat_word("and") {
                return Ok(relations);
            }
        }
    }

    fn term(&mut self) -> Result<Term, CqlError> {
        if self.eat_punct("?") {
            self.markers += 1;
            return Ok(Term::Bind(self.markers - 1));
        }
        Ok(Term::Literal(self.literal()?))
    }

    fn literal(&mut self) -> Result<Literal, CqlError> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Literal::Str(s)),
            Some(Token::Int(i)) => Ok(Literal::Int(i)),
            Some(Token::Word(w)) if w == "true" => Ok(Literal::Bool(true)),
            Some(Token::Word(w)) if w == "false" => Ok(Literal::Bool(false)),
            Some(Token::Word(w)) if w == "null" => Ok(Literal::Null),
            Some(Token::Punct("(")) => {
                let mut items = Vec::new();
                if !self.eat_punct(")") {
                    loop {
                        items.push(self.literal()?);
                        if self.eat_punct(")") {
                            break;
                        }
                        self.expect_punct(",")?;
                    }
                }
                Ok(Literal::List(items))
            }
            Some(Token::Punct("{")) => {
                let mut entries = Vec::new();
                if !self.eat_punct("}") {
                    loop {
                        let key = self.literal()?;
                        self.expect_punct(":")?;
                        entries.push((key, self.literal()?));
                        if self.eat_punct("}") {
                            break;
                        }
                        self.expect_punct(",")?;
                    }
                }
                Ok(Literal::Map(entries))
            }
            _ => {
                self.pos -= 1;
                Err(self.error("expected a value or '?'"))
            }
        }
    }

    fn create_keyspace(&mut self) -> Result<Statement, CqlError> {
        let if_not_exists = self.eat_words(&["if", "not", "exists"]);
        let name = self.identifier()?;
        self.expect_word("with")?;
        let mut replication = None;
        let mut durable_writes = true;
        loop {
            let option = self.identifier()?;
            self.expect_punct("=")?;
            match (option.as_str(), self.literal()?) {
                ("replication", Literal::Map(entries)) => {
                    let mut map = Vec::new();
                    for (k, v) in entries {
                        let text = |l: Literal| match l {
                            Literal::Str(s) => Some(s),
                            Literal::Int(i) => Some(i.to_string()),
                            _ => None,
                        };
                        match (text(k), text(v)) {
                            (Some(k), Some(v)) => map.push((k, v)),
                            _ => return Err(self.error("bad replication map entry")),
                        }
                    }
                    replication = Some(map);
                }
                ("durable_writes", Literal::Bool(b)) => durable_writes = b,
                _ => return Err(self.error(&format!("unsupported keyspace option '{option}'"))),
            }
            if !self.eat_word("and") {
                break;
            }
        }
        let replication = replication.ok_or_else(|| self.error("missing replication"))?;
        Ok(Statement::CreateKeyspace {
            name,
            if_not_exists,
            replication,
            durable_writes,
        })
    }

    fn create_table(&mut self) -> Result<Statement, CqlError> {
        let if_not_exists = self.eat_words(&["if", "not", "exists"]);
        let table = self.table_name()?;
        self.expect_punct("(")?;
        let mut columns = Vec::new();
        let mut primary_key: Option<(Vec<String>, Vec<String>)> = None;
        loop {
            if self.eat_words(&["primary", "key"]) {
                self.expect_punct("(")?;
                let partition_key = if self.eat_punct("(") {
                    let mut names = vec![self.identifier()?];
                    while self.eat_punct(",") {
                        names.push(self.identifier()?);
                    }
                    self.expect_punct(")")?;
                    names
                } else {
                    vec![self.identifier()?]
                };
                let mut clustering = Vec::new();
                while self.eat_punct(",") {
                    clustering.push(self.identifier()?);
                }
                self.expect_punct(")")?;
                primary_key = Some((partition_key, clustering));
            } else {
                let name = self.identifier()?;
                let ty = self.column_type()?;
                if self.eat_words(&["primary", "key"]) {
                    primary_key = Some((vec![name.clone()], Vec::new()));
                }
                columns.push((name, ty));
            }
            if self.eat_punct(")") {
                break;
            }
            self.expect_punct(",")?;
        }
        let (partition_key, clustering) =
            primary_key.ok_or_else(|| self.error("missing PRIMARY KEY"))?;
        if self.eat_word("with") {
            self.table_options()?;
        }
        Ok(Statement::CreateTable {
            table,
            if_not_exists,
            columns,
            partition_key,
            clustering,
        })
    }

    /// `WITH CLUSTERING ORDER BY (c ASC) AND option = literal ...`: accepted and ignored except
    /// that a descending clustering order is refused (the double keeps ascending order only).
    fn table_options(&mut self) -> Result<(), CqlError> {
        loop {
            if self.eat_words(&["clustering", "order", "by"]) {
                self.expect_punct("(")?;
                loop {
                    self.identifier()?;
                    if self.eat_word("desc") {
                        return Err(self.error("descending clustering order is not supported"));
                    }
                    self.eat_word("asc");
                    if !self.eat_punct(",") {
                        break;
                    }
                }
                self.expect_punct(")")?;
            } else {
                self.identifier()?;
                self.expect_punct("=")?;
                self.literal()?;
            }
            if !self.eat_word("and") {
                return Ok(());
            }
        }
    }

    fn column_type(&mut self) -> Result<CqlType, CqlError> {
        let name = self.identifier()?;
        let collection = |p: &mut Self, make: fn(Box<CqlType>) -> CqlType| {
            p.expect_punct("<")?;
            let inner = p.column_type()?;
            p.expect_punct(">")?;
            Ok::<_, CqlError>(make(Box::new(inner)))
        };
        match name.as_str() {
            "list" => collection(self, CqlType::List),
            "set" => collection(self, CqlType::Set),
            "map" => {
                self.expect_punct("<")?;
                let key = self.column_type()?;
                self.expect_punct(",")?;
                let value = self.column_type()?;
                self.expect_punct(">")?;
                Ok(CqlType::Map(Box::new(key), Box::new(value)))
            }
            other => CqlType::from_name(other)
                .ok_or_else(|| self.error(&format!("unsupported column type '{other}'"))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_lwt_update() {
        let parsed = parse(
            "UPDATE ks.t SET value = ?, revision = ? WHERE replica = ? AND bucket = ? AND key = ? IF revision = ?",
        )
        .unwrap();
        assert_eq!(parsed.markers, 6);
        let Statement::Update { condition, .. } = parsed.statement else {
            panic!("not an update")
        };
        assert_eq!(
            condition,
            Condition::Columns(vec![("revision".into(), Term::Bind(5))])
        );
    }

    #[test]
    fn parses_create_table_and_system_select() {
        let parsed = parse(
            "CREATE TABLE IF NOT EXISTS \"Ks\".t (replica text, bucket int, key text, revision bigint, \
             value blob, PRIMARY KEY ((replica, bucket), key)) WITH CLUSTERING ORDER BY (key ASC)",
        )
        .unwrap();
        let Statement::CreateTable {
            table,
            partition_key,
            clustering,
            ..
        } = parsed.statement
        else {
            panic!("not a create table")
        };
        assert_eq!(table.keyspace.as_deref(), Some("Ks"));
        assert_eq!(partition_key, vec!["replica", "bucket"]);
        assert_eq!(clustering, vec!["key"]);
        let parsed = parse("SELECT schema_version FROM system.local WHERE key='local'").unwrap();
        assert_eq!(parsed.markers, 0);
        assert!(parse("SELECT x FROM t WHERE it's").is_err());
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        let err = parse("ALTER TABLE t ADD c int").unwrap_err();
        assert!(err.message.contains("unsupported statement"), "{err}");
        assert!(parse("SELECT a FROM t WHERE a = ? ORDER BY a").is_err());
    }
}
