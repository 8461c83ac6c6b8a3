//! A safety net under the SQL, so a typo or a column one engine lacks fails `cargo test`, not
//! production:
//!
//! * every statement in linli's sources is prepared on each engine the suite runs on (SQLite
//!   always; PostgreSQL too when `TEST_DATABASE_URL` names a server, as in `.ci/run`);
//! * the two migration folders produce the same tables, columns (type, nullability, default or
//!   not), indexes (columns in order, unique, partial) and foreign keys (checked when the suite
//!   runs on PostgreSQL: it needs both engines).
//!
//! Statements are read out of `src/` as the compiler sees them: every string literal that starts
//! like SQL (`SELECT `, `INSERT INTO `, `UPDATE x SET `, `DELETE FROM `, `WITH x AS (`), outside
//! `#[cfg(test)]` code. A statement built with `format!` is expanded the way the code builds it:
//! `{NAME}` from the `const NAME: &str` it names, `{}` from `values_list`/`in_list` arguments,
//! `{local}` from the `let local = …` above it (a literal, a constant, a constant's columns with
//! a table prefix, or the arm of a `match` on the engine). A statement the expansion cannot
//! follow fails the test: write it in one of those shapes.

use std::collections::{BTreeMap, BTreeSet};

use linli::db::{Db, DbOptions, Engine};
use regex::Regex;
use sqlx::{AnyConnection, Executor};

use crate::helpers::{fresh_postgres_database, fresh_sqlite_database, postgres_admin_url};

// ----- reading statements out of the sources --------------------------------------------------

/// One statement as a call site holds it.
#[derive(Debug)]
struct Statement {
    at: String,
    /// The engine it runs on (a statement used on both is read once for each).
    engine: Engine,
    sql: String,
}

/// A string literal in a source file: where it starts and ends (after the closing quote), and
/// its value.
struct Literal {
    start: usize,
    end: usize,
    value: String,
}

/// The value of a (non-raw) string literal's body, as the compiler reads it.
fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\n') => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('u') => {
                let code: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                out.extend(u32::from_str_radix(&code, 16).ok().and_then(char::from_u32));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Every string literal of a Rust source, skipping comments and character literals.
fn literals(src: &str) -> Vec<Literal> {
    let b = src.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'\'' => {
                // A character literal ('x', '\n', '分') or a lifetime ('a).
                let rest = &src[i + 1..];
                let len = rest.chars().next().map_or(1, char::len_utf8);
                if rest.starts_with('\\') {
                    i += 1 + rest.find('\'').map_or(rest.len(), |j| j + 1).max(2);
                    // '\'' itself: the first quote found is the escaped one.
                    if rest.starts_with("\\''") {
                        i += 1;
                    }
                } else if rest.as_bytes().get(len) == Some(&b'\'') {
                    i += len + 2;
                } else {
                    i += 1;
                }
            }
            b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) && (i == 0 || !ident(b[i - 1])) => {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                let open = i + 1 + hashes;
                if b.get(open) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let end = src[open + 1..].find(&close).map_or(b.len(), |j| open + 1 + j);
                out.push(Literal { start: i, end: end + close.len(), value: src[open + 1..end].to_owned() });
                i = end + close.len();
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.push(Literal { start, end: i + 1, value: unescape(&src[start + 1..i]) });
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// A source file's production code (up to its first `#[cfg(test)]`) and its literals.
struct Source {
    path: String,
    text: String,
    literals: Vec<Literal>,
}

impl Source {
    fn line_of(&self, at: usize) -> usize {
        self.text[..at].matches('\n').count() + 1
    }

    /// The first literal starting at or after `at`.
    fn literal_from(&self, at: usize) -> Option<&Literal> {
        self.literals.iter().find(|l| l.start >= at)
    }
}

struct Sources {
    files: Vec<Source>,
    /// `const NAME: &str = "…"` of every file, by file and name.
    consts: BTreeMap<(usize, String), String>,
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !path.file_name().is_some_and(|n| n.to_string_lossy().ends_with("_tests.rs"))
        {
            out.push(path);
        }
    }
}

impl Sources {
    fn read() -> Sources {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths = Vec::new();
        rust_files(&root.join("src"), &mut paths);
        paths.sort();
        let const_re = Regex::new(r"const ([A-Z][A-Z0-9_]*): &str =\s*").unwrap();
        let mut files = Vec::new();
        let mut consts = BTreeMap::new();
        for path in paths {
            let full = std::fs::read_to_string(&path).expect("read a source file");
            let text = match full.find("#[cfg(test)]") {
                Some(k) => full[..k].to_owned(),
                None => full,
            };
            let source = Source {
                path: path.strip_prefix(root).unwrap_or(&path).display().to_string(),
                literals: literals(&text),
                text,
            };
            for m in const_re.captures_iter(&source.text) {
                let whole = m.get(0).unwrap();
                if let Some(l) = source.literal_from(whole.end()).filter(|l| l.start == whole.end()) {
                    consts.insert((files.len(), m[1].to_owned()), l.value.clone());
                }
            }
            files.push(source);
        }
        Sources { files, consts }
    }

    fn constant(&self, file: usize, name: &str) -> Option<String> {
        self.consts
            .get(&(file, name.to_owned()))
            .or_else(|| self.consts.iter().find(|((_, n), _)| n == name).map(|(_, v)| v))
            .cloned()
    }

    /// Every statement, once for each engine it runs on.
    fn statements(&self) -> (Vec<Statement>, Vec<String>) {
        let sql = Regex::new(
            r"^\s*(SELECT\s|INSERT INTO\s|UPDATE\s+\w+\s+SET\s|DELETE FROM\s|WITH\s+\w+(\s*\([^)]*\))?\s+AS\s*\()",
        )
        .unwrap();
        let arm = Regex::new(r"Engine::(Postgres|Sqlite) =>\s*(format!\(\s*)?$").unwrap();
        let (mut out, mut unresolved) = (Vec::new(), Vec::new());
        for (f, source) in self.files.iter().enumerate() {
            for lit in source.literals.iter().filter(|l| sql.is_match(&l.value)) {
                let before = &source.text[lit.start.saturating_sub(80)..lit.start];
                let only =
                    arm.captures(before).map(|c| if &c[1] == "Postgres" { Engine::Postgres } else { Engine::Sqlite });
                let at = format!("{}:{}", source.path, source.line_of(lit.start));
                for engine in [Engine::Sqlite, Engine::Postgres] {
                    if only.is_some_and(|o| o != engine) {
                        continue;
                    }
                    match self.expand(f, lit, engine, 0) {
                        Ok(sql) => out.push(Statement { at: at.clone(), engine, sql: values_tail(sql) }),
                        Err(what) => unresolved.push(format!("{at} ({engine:?}): cannot follow {what}")),
                    }
                }
            }
        }
        (out, unresolved)
    }

    /// A literal with its `format!` placeholders filled in as the code fills them.
    fn expand(&self, f: usize, lit: &Literal, engine: Engine, depth: usize) -> Result<String, String> {
        if depth > 4 {
            return Err("a placeholder nested too deeply".into());
        }
        let source = &self.files[f];
        let placeholder = Regex::new(r"\{([A-Za-z_][A-Za-z0-9_]*)?\}").unwrap();
        let mut positional = format_args_after(&source.text, lit.end).into_iter();
        let mut out = String::with_capacity(lit.value.len());
        let mut last = 0;
        for m in placeholder.captures_iter(&lit.value) {
            let whole = m.get(0).unwrap();
            out.push_str(&lit.value[last..whole.start()]);
            last = whole.end();
            let value = match m.get(1).map(|n| n.as_str()) {
                None => {
                    let arg = positional.next().ok_or("a `{}` without an argument")?;
                    list_argument(&arg).ok_or_else(|| format!("the argument `{arg}`"))?
                }
                Some(name) if name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') => {
                    let value = self.constant(f, name).ok_or_else(|| format!("the constant {name}"))?;
                    // A constant may itself name constants.
                    self.expand(f, &Literal { start: lit.start, end: lit.start, value }, engine, depth + 1)?
                }
                Some(name) => self.local(f, lit.start, name, engine, depth)?,
            };
            out.push_str(&value);
        }
        out.push_str(&lit.value[last..]);
        Ok(out)
    }

    /// The value of `let name = …` nearest above `at`.
    fn local(&self, f: usize, at: usize, name: &str, engine: Engine, depth: usize) -> Result<String, String> {
        let source = &self.files[f];
        let binding = Regex::new(&format!(r"let\s+(mut\s+)?{name}\b[^=;]*=\s*")).unwrap();
        let from = binding
            .find_iter(&source.text[..at])
            .last()
            .map(|m| m.end())
            .ok_or_else(|| format!("`{{{name}}}` (no `let {name}` above it)"))?;
        let rest = &source.text[from..];
        // A constant's columns with a table prefix: `CONST.split(", ").map(|c| format!("t.{}", …))`.
        let prefixed =
            Regex::new(r#"^([A-Z][A-Z0-9_]*)\.split\(", "\)\.map\(\|c\| format!\("(\w+)\.\{\}", c\.trim\(\)\)\)"#)
                .unwrap();
        if let Some(c) = prefixed.captures(rest) {
            let columns = self.constant(f, &c[1]).ok_or_else(|| format!("the constant {}", &c[1]))?;
            return Ok(columns
                .split(", ")
                .map(|col| format!("{}.{}", &c[2], col.trim()))
                .collect::<Vec<_>>()
                .join(", "));
        }
        let mut from = from;
        if rest.starts_with("match engine") {
            let arm = match engine {
                Engine::Postgres => "Engine::Postgres =>",
                Engine::Sqlite => "Engine::Sqlite =>",
            };
            from += rest.find(arm).ok_or_else(|| format!("`{{{name}}}` (no arm for {engine:?})"))? + arm.len();
        }
        // The first literal or constant of the binding.
        let constant = Regex::new(r"\b([A-Z][A-Z0-9_]{2,})\b").unwrap();
        let lit = source.literal_from(from);
        let name_at = constant.captures_at(&source.text, from).map(|c| c.get(1).unwrap());
        match (lit, name_at) {
            (_, Some(c)) if lit.is_none_or(|l| c.start() < l.start) => {
                let value = self.constant(f, c.as_str()).ok_or_else(|| format!("the constant {}", c.as_str()))?;
                self.expand(f, &Literal { start: from, end: from, value }, engine, depth + 1)
            }
            (Some(l), _) => self.expand(f, l, engine, depth + 1),
            _ => Err(format!("`{{{name}}}`")),
        }
    }
}

/// The arguments of the `format!` whose format string ends at `end`, split at top-level commas.
fn format_args_after(text: &str, end: usize) -> Vec<String> {
    let (mut args, mut current, mut depth) = (Vec::new(), String::new(), 0usize);
    let mut chars = text[end..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                current.push(c);
                let mut escaped = false;
                for d in chars.by_ref() {
                    current.push(d);
                    if d == '"' && !escaped {
                        break;
                    }
                    escaped = d == '\\' && !escaped;
                }
                continue;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => break,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                args.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    args.push(current);
    args.into_iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect()
}

/// A `values_list(rows, cols, first)` or `in_list(n, first)` argument, for one row.
fn list_argument(arg: &str) -> Option<String> {
    let values = Regex::new(r"values_list\([^,]+,\s*(\d+),\s*(\d+)\)").unwrap();
    let list = Regex::new(r"in_list\([^,]+,\s*(\d+)\)").unwrap();
    if let Some(c) = values.captures(arg) {
        return Some(linli::db::values_list(1, c[1].parse().ok()?, c[2].parse().ok()?));
    }
    list.captures(arg).and_then(|c| Some(linli::db::in_list(1, c[1].parse().ok()?)))
}

/// A statement whose rows are pushed on in a loop (`… (a, b) VALUES ` then `push_str`) gets one
/// row of fresh parameters.
fn values_tail(sql: String) -> String {
    let tail = Regex::new(r"\(([^()]*)\)\s*VALUES\s*$").unwrap();
    let Some(c) = tail.captures(&sql) else { return sql };
    let columns = c[1].split(',').count();
    let next = highest_parameter(&sql) + 1;
    format!("{} {}", sql.trim_end(), linli::db::values_list(1, columns, next))
}

fn highest_parameter(sql: &str) -> usize {
    Regex::new(r"\$(\d+)").unwrap().captures_iter(sql).filter_map(|c| c[1].parse().ok()).max().unwrap_or(0)
}

// ----- preparing them ------------------------------------------------------------------------

async fn migrated(url: &str) -> Db {
    let db = Db::connect(url, &DbOptions::default()).await.expect("connect");
    db.migrate().await.expect("migrate");
    db
}

/// SQLite compiles the statement against the schema: an unknown table or column, or a syntax
/// error, fails here.
async fn prepare_sqlite(conn: &mut AnyConnection, sql: &str) -> Result<(), String> {
    conn.prepare(sql).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Whether PostgreSQL refused a statement only for a parameter's type: without the values the
/// code binds, `$2 IS NULL OR kind = $2` is decided, `$3 - $5` is not.
fn undecided_type(code: &str) -> bool {
    // indeterminate datatype, ambiguous function, undefined function/operator, datatype mismatch.
    matches!(code, "42P18" | "42725" | "42883" | "42804")
}

/// What preparing a statement on PostgreSQL came to.
enum Prepared {
    Yes,
    /// Every name in it resolved, but a parameter's type could not be chosen without its value.
    TypeUndecided(String),
}

/// PostgreSQL parses and analyses the statement (`PREPARE`): unknown tables and columns, syntax
/// errors and an `ON CONFLICT` without its unique index fail here. A parameter whose type the
/// statement alone does not decide is declared `bigint`, then `text`, as linli binds only those.
async fn prepare_postgres(conn: &mut AnyConnection, sql: &str) -> Result<Prepared, String> {
    let params = highest_parameter(sql);
    let mut types = vec!["unknown"; params];
    let indeterminate = Regex::new(r"could not determine data type of parameter \$(\d+)").unwrap();
    for _ in 0..=(2 * params + 1) {
        let declared =
            if types.iter().all(|t| *t == "unknown") { String::new() } else { format!("({})", types.join(", ")) };
        let prepare = format!("PREPARE linli_statement_check{declared} AS {sql}");
        let err = match conn.execute(sqlx::raw_sql(&prepare)).await {
            Ok(_) => {
                conn.execute(sqlx::raw_sql("DEALLOCATE linli_statement_check")).await.map_err(|e| e.to_string())?;
                return Ok(Prepared::Yes);
            }
            Err(e) => e,
        };
        let message = err.to_string();
        let code = err.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()).unwrap_or_default();
        if let Some(c) = indeterminate.captures(&message) {
            let k: usize = c[1].parse().unwrap_or(1);
            let t = &mut types[k.saturating_sub(1).min(params.saturating_sub(1))];
            if *t != "text" {
                *t = if *t == "unknown" { "bigint" } else { "text" };
                continue;
            }
        }
        if undecided_type(&code) && params > 0 {
            // A guess may have been wrong: the last guessed bigint becomes text and it is tried again.
            if let Some(t) = types.iter_mut().rev().find(|t| **t == "bigint") {
                *t = "text";
                continue;
            }
            return Ok(Prepared::TypeUndecided(message));
        }
        return Err(format!("{code}: {message}"));
    }
    Ok(Prepared::TypeUndecided("no choice of parameter types prepared it".into()))
}

#[tokio::test]
async fn every_statement_in_the_sources_prepares_on_each_engine() {
    let (statements, unresolved) = Sources::read().statements();
    assert!(unresolved.is_empty(), "statements the check cannot follow:\n{}", unresolved.join("\n"));
    // The reader must find what is there: a few hundred statements, on both engines.
    let on = |e: Engine| statements.iter().filter(|s| s.engine == e).count();
    assert!(on(Engine::Sqlite) > 200 && on(Engine::Postgres) > 200, "{} statements read", statements.len());

    let mut failed = Vec::new();
    let (url, _sqlite) = fresh_sqlite_database();
    let db = migrated(&url).await;
    let mut conn = db.writer().acquire().await.unwrap();
    for s in statements.iter().filter(|s| s.engine == Engine::Sqlite) {
        if let Err(e) = prepare_sqlite(&mut conn, &s.sql).await {
            failed.push(format!("SQLite {}: {e}\n    {}", s.at, s.sql));
        }
    }
    drop(conn);

    let mut undecided = Vec::new();
    if let Some(admin) = postgres_admin_url() {
        let (url, _postgres) = fresh_postgres_database(admin).await;
        let db = migrated(&url).await;
        let mut conn = db.writer().acquire().await.unwrap();
        for s in statements.iter().filter(|s| s.engine == Engine::Postgres) {
            match prepare_postgres(&mut conn, &s.sql).await {
                Ok(Prepared::Yes) => {}
                Ok(Prepared::TypeUndecided(why)) => undecided.push(format!("{}: {why}", s.at)),
                Err(e) => failed.push(format!("PostgreSQL {}: {e}\n    {}", s.at, s.sql)),
            }
        }
        drop(conn);
        db.close().await;
    } else {
        eprintln!("PostgreSQL: not checked (set TEST_DATABASE_URL, as .ci/run does)");
    }
    if !undecided.is_empty() {
        eprintln!("PostgreSQL: {} statements whose parameter types need the bound values:", undecided.len());
        for u in &undecided {
            eprintln!("  {u}");
        }
    }
    assert!(failed.is_empty(), "{} statements do not prepare:\n{}", failed.len(), failed.join("\n"));
    // Nearly every statement is decided in full; a growing list means the check is losing sight.
    assert!(undecided.len() <= 12, "{} statements left undecided", undecided.len());
}

#[test]
fn the_reader_follows_the_shapes_statements_are_written_in() {
    let src = r#####"
const COLS: &str = "id, name";
fn f(engine: Engine) {
    let cols = COLS.split(", ").map(|c| format!("t.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let pick = match engine {
        Engine::Postgres => "SELECT id FROM t FOR UPDATE",
        Engine::Sqlite => "SELECT id FROM t",
    };
    let a = format!("SELECT {cols} FROM t WHERE id IN ({pick}) AND x IN ({})", super::in_list(n, 2));
    let b = format!("INSERT INTO t (a, b) VALUES {} RETURNING {COLS}", values_list(n, 2, 1));
    let c = 'x'; let d = '"'; let e = "a \" b"; // "SELECT nothing FROM comments"
}
"#####;
    let sources = Sources {
        files: vec![Source { path: "x.rs".into(), literals: literals(src), text: src.into() }],
        consts: BTreeMap::from([((0, "COLS".to_owned()), "id, name".to_owned())]),
    };
    let (statements, unresolved) = sources.statements();
    assert!(unresolved.is_empty(), "{unresolved:?}");
    let texts: Vec<(Engine, &str)> = statements.iter().map(|s| (s.engine, s.sql.as_str())).collect();
    assert!(
        texts.contains(&(Engine::Sqlite, "SELECT t.id, t.name FROM t WHERE id IN (SELECT id FROM t) AND x IN ($2)"))
    );
    assert!(texts.contains(&(
        Engine::Postgres,
        "SELECT t.id, t.name FROM t WHERE id IN (SELECT id FROM t FOR UPDATE) AND x IN ($2)"
    )));
    assert!(texts.contains(&(Engine::Postgres, "SELECT id FROM t FOR UPDATE")));
    assert!(!texts.contains(&(Engine::Sqlite, "SELECT id FROM t FOR UPDATE")), "an arm's engine only");
    assert!(texts.contains(&(Engine::Sqlite, "INSERT INTO t (a, b) VALUES ($1, $2) RETURNING id, name")));
    assert!(!texts.iter().any(|(_, s)| s.contains("comments")), "comments are not code");
    assert_eq!(values_tail("INSERT INTO t (a, b) VALUES ".into()), "INSERT INTO t (a, b) VALUES ($1, $2)");
}

// ----- the two migration folders -------------------------------------------------------------

/// A table as both engines can describe it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    /// name → (type family, not null, has a default value)
    columns: BTreeMap<String, (&'static str, bool, bool)>,
    /// Columns the database numbers itself: PostgreSQL's serial columns, SQLite's rowid keys.
    numbered: BTreeSet<String>,
    /// (unique, columns in order, partial)
    indexes: BTreeSet<(bool, Vec<String>, bool)>,
    /// (columns, referenced table, on delete)
    foreign_keys: BTreeSet<(Vec<String>, String, String)>,
}

fn family(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") || t == "boolean" {
        "integer"
    } else if t.contains("char") || t.contains("text") {
        "text"
    } else if t.contains("real") || t.contains("double") || t.contains("float") || t.contains("numeric") {
        "real"
    } else {
        "other"
    }
}

async fn sqlite_schema(conn: &mut AnyConnection) -> BTreeMap<String, Table> {
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for (name,) in names {
        let mut t = Table::default();
        let columns: Vec<(String, String, i64, Option<String>, i64)> = sqlx::query_as(&format!(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo('{name}')"
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let mut key: Vec<(i64, String)> = Vec::new();
        let key_columns = columns.iter().filter(|c| c.4 > 0).count();
        for (column, declared, not_null, default, pk) in columns {
            // A lone INTEGER PRIMARY KEY is the rowid: never null, and numbered as PostgreSQL's
            // serial column is.
            if pk > 0 && key_columns == 1 && declared.eq_ignore_ascii_case("INTEGER") {
                t.numbered.insert(column.clone());
            }
            t.columns.insert(column.clone(), (family(&declared), not_null != 0 || pk > 0, default.is_some()));
            if pk > 0 {
                key.push((pk, column));
            }
        }
        let indexes: Vec<(String, i64, i64)> =
            sqlx::query_as(&format!("SELECT name, \"unique\", partial FROM pragma_index_list('{name}')"))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        for (index, unique, partial) in indexes {
            let columns: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT name FROM pragma_index_info('{index}') ORDER BY seqno"))
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            t.indexes.insert((unique != 0, columns.into_iter().map(|(c,)| c).collect(), partial != 0));
        }
        key.sort();
        let key: Vec<String> = key.into_iter().map(|(_, c)| c).collect();
        // A rowid primary key has no index of its own in SQLite; PostgreSQL's has one.
        if !key.is_empty() && !t.indexes.iter().any(|(u, c, p)| *u && !*p && *c == key) {
            t.indexes.insert((true, key, false));
        }
        let fks: Vec<(i64, String, String, String)> = sqlx::query_as(&format!(
            "SELECT id, \"table\", \"from\", on_delete FROM pragma_foreign_key_list('{name}') ORDER BY id, seq"
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, (Vec<String>, String, String)> = BTreeMap::new();
        for (id, table, from, on_delete) in fks {
            let e = by_id.entry(id).or_insert_with(|| (Vec::new(), table, on_delete));
            e.0.push(from);
        }
        t.foreign_keys = by_id.into_values().collect();
        out.insert(name, t);
    }
    out
}

async fn postgres_schema(conn: &mut AnyConnection) -> BTreeMap<String, Table> {
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for (name,) in names {
        let mut t = Table::default();
        let columns: Vec<(String, String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text, is_identity::text \
             FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        for (column, declared, nullable, default, identity) in columns {
            let serial = identity == "YES" || default.as_deref().is_some_and(|d| d.starts_with("nextval("));
            if serial {
                t.numbered.insert(column.clone());
            }
            t.columns.insert(column, (family(&declared), nullable == "NO", default.is_some() && !serial));
        }
        let indexes: Vec<(i32, Option<String>, i32)> = sqlx::query_as(
            "SELECT i.indisunique::int, \
                    (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) \
                     FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum), \
                    (i.indpred IS NOT NULL)::int \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = $1",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        for (unique, columns, partial) in indexes {
            let columns = columns.unwrap_or_else(|| "(an expression)".into());
            t.indexes.insert((unique != 0, columns.split(',').map(str::to_owned).collect(), partial != 0));
        }
        let fks: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) \
                     FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord) \
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum), \
                    cf.relname::text, con.confdeltype::text \
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_class cf ON cf.oid = con.confrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE con.contype = 'f' AND n.nspname = 'public' AND c.relname = $1",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        for (columns, table, on_delete) in fks {
            let action = match on_delete.as_str() {
                "c" => "CASCADE",
                "n" => "SET NULL",
                "d" => "SET DEFAULT",
                "r" => "RESTRICT",
                _ => "NO ACTION",
            };
            t.foreign_keys.insert((columns.split(',').map(str::to_owned).collect(), table, action.to_owned()));
        }
        out.insert(name, t);
    }
    out
}

/// What differs between two schemas, one line each.
fn differences(sqlite: &BTreeMap<String, Table>, postgres: &BTreeMap<String, Table>) -> Vec<String> {
    let mut out = Vec::new();
    for name in sqlite.keys().chain(postgres.keys()).collect::<BTreeSet<_>>() {
        let (Some(s), Some(p)) = (sqlite.get(name), postgres.get(name)) else {
            let on = if sqlite.contains_key(name) { "SQLite" } else { "PostgreSQL" };
            out.push(format!("table {name}: only on {on}"));
            continue;
        };
        for column in s.columns.keys().chain(p.columns.keys()).collect::<BTreeSet<_>>() {
            if s.columns.get(column) != p.columns.get(column) {
                out.push(format!(
                    "{name}.{column}: SQLite {:?}, PostgreSQL {:?} (type, not null, default)",
                    s.columns.get(column),
                    p.columns.get(column)
                ));
            }
        }
        // Every column PostgreSQL numbers SQLite numbers too. (SQLite numbers every lone INTEGER
        // PRIMARY KEY; linli always writes the ones PostgreSQL does not number.)
        for column in p.numbered.difference(&s.numbered) {
            out.push(format!("{name}.{column}: numbered by PostgreSQL only"));
        }
        for i in s.indexes.symmetric_difference(&p.indexes) {
            let on = if s.indexes.contains(i) { "SQLite" } else { "PostgreSQL" };
            out.push(format!("{name}: index {i:?} (unique, columns, partial) only on {on}"));
        }
        for k in s.foreign_keys.symmetric_difference(&p.foreign_keys) {
            let on = if s.foreign_keys.contains(k) { "SQLite" } else { "PostgreSQL" };
            out.push(format!("{name}: foreign key {k:?} only on {on}"));
        }
    }
    out
}

#[tokio::test]
async fn the_two_migration_folders_make_the_same_schema() {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("migration parity: not checked (it needs PostgreSQL: set TEST_DATABASE_URL, as .ci/run does)");
        return;
    };
    let (url, _sqlite) = fresh_sqlite_database();
    let db = migrated(&url).await;
    let sqlite = sqlite_schema(&mut db.writer().acquire().await.unwrap()).await;
    let (url, _postgres) = fresh_postgres_database(admin).await;
    let pg = migrated(&url).await;
    let postgres = postgres_schema(&mut pg.writer().acquire().await.unwrap()).await;
    pg.close().await;
    assert!(sqlite.len() > 40, "{} tables read", sqlite.len());
    let diff = differences(&sqlite, &postgres);
    assert!(diff.is_empty(), "the migration folders differ:\n{}", diff.join("\n"));
}

#[test]
fn a_difference_between_the_schemas_is_named() {
    let table = |columns: &[(&str, &'static str)]| Table {
        columns: columns.iter().map(|(c, t)| ((*c).to_owned(), (*t, true, false))).collect(),
        numbered: BTreeSet::new(),
        indexes: BTreeSet::from([(true, vec!["id".to_owned()], false)]),
        foreign_keys: BTreeSet::new(),
    };
    let a = BTreeMap::from([("t".to_owned(), table(&[("id", "integer"), ("name", "text")]))]);
    assert!(differences(&a, &a).is_empty());
    let b = BTreeMap::from([("t".to_owned(), table(&[("id", "integer")]))]);
    assert_eq!(differences(&a, &b).len(), 1, "a column one engine lacks");
    let mut c = BTreeMap::from([("t".to_owned(), table(&[("id", "integer"), ("name", "text")]))]);
    c.get_mut("t").unwrap().indexes.insert((false, vec!["name".to_owned()], false));
    assert_eq!(differences(&a, &c).len(), 1, "an index one engine lacks");
}
