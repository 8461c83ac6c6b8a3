//! The one place SQL lives. SQLite and PostgreSQL sit behind [`Db`], chosen by the URL scheme.
//!
//! Queries are written once, in SQL both engines accept (`$N` placeholders, `RETURNING`,
//! `ON CONFLICT`), and run through sqlx's `Any` driver. Times are unix milliseconds in `BIGINT`
//! columns, money and points are `BIGINT`, so every value crosses the driver as an `i64` or a
//! string. Where the engines differ in meaning, the query is written twice side by side and
//! chosen by [`Db::engine`].
//!
//! SQLite runs with WAL, `synchronous=FULL` and foreign keys on; writes go through a pool of one
//! connection and start with `BEGIN IMMEDIATE`, reads through a separate read-only pool.
//! PostgreSQL uses one pool for both, and is what several linli instances share.
//!
//! Grouped by the contexts of `domain/` (community, loyalty, money, offers, operators, retail,
//! tasks); `group` (group commit), `idempotency`, `limits` (shared rate buckets) and `wechat`
//! (push bookkeeping, access tokens) are the machinery they share.

/// A value stored under a name (a state, a channel, a kind): an enum with the name of each
/// variant. Rows decode it from its column, and a name that is none of them is a decode error —
/// never a default — so an unknown stored value fails the read instead of showing as something
/// it is not.
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $stored:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $stored)] $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name it is stored under.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $stored,)+
                }
            }

            /// The variant stored under `name`, if any.
            pub fn parse(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl sqlx::Type<sqlx::Any> for $name {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <String as sqlx::Type<sqlx::Any>>::type_info()
            }

            fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Any>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Any> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, sqlx::Any>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $name {
            fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let name = <String as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
                Self::parse(&name).ok_or_else(|| Box::new($crate::db::UnknownValue { what: $what, value: name }) as _)
            }
        }
    };
}
/// A flag column (both engines store flags as `BIGINT` 0 or 1), read into a `bool` field with
/// `#[sqlx(try_from = "crate::db::Flag")]`: anything but 0 or 1 fails the read.
#[derive(Clone, Copy, Debug, sqlx::Type)]
#[sqlx(transparent)]
pub struct Flag(i64);

impl TryFrom<Flag> for bool {
    type Error = UnknownValue;

    fn try_from(f: Flag) -> Result<bool, UnknownValue> {
        match f.0 {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(UnknownValue { what: "flag", value: other.to_string() }),
        }
    }
}

/// A stored name that is none of its enum's variants.
#[derive(Debug, thiserror::Error)]
#[error("the stored {what} {value:?} is not one linli knows")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

pub mod accounts;
pub mod community;
pub mod group;
pub mod idempotency;
pub mod limits;
pub mod loyalty;
pub mod money;
pub mod offers;
pub mod operators;
pub mod retail;
pub mod tasks;
pub mod wechat;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolOptions;
use sqlx::{Any, AnyPool, Executor};

/// Which engine a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A write transaction. Commit it or it rolls back when dropped.
pub type Tx = sqlx::Transaction<'static, Any>;

/// A row as the `Any` driver returns it.
pub type Row = AnyRow;

/// Errors of the storage layer. Constraint violations are told apart so callers can answer
/// 409/422 from the error kind instead of checking before inserting.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unique constraint violated")]
    UniqueViolation,
    #[error("foreign key constraint violated")]
    ForeignKeyViolation,
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Sqlx(#[source] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported DATABASE_URL scheme (use sqlite:// or postgres://)")]
    UnsupportedScheme,
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => DbError::UniqueViolation,
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => DbError::ForeignKeyViolation,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => DbError::Unavailable(err),
            _ => DbError::Sqlx(err),
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// How to size and time the pools.
#[derive(Clone, Debug)]
pub struct DbOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

/// A pool's occupancy, for `/metrics`.
#[derive(Clone, Debug)]
pub struct PoolStats {
    pub name: &'static str,
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// The database handle: cheap to clone, shared by every request and worker.
#[derive(Clone, Debug)]
pub struct Db {
    engine: Engine,
    write: AnyPool,
    read: AnyPool,
    write_max: u32,
    read_max: u32,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";

impl Db {
    /// Connects to `url` (`sqlite://path`, `sqlite::memory:`, `postgres://…`).
    pub async fn connect(url: &str, options: &DbOptions) -> DbResult<Db> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, options).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = Self::pool_options(options.max_connections, options)
                .connect(url)
                .await
                .map_err(DbError::Unavailable)?;
            Ok(Db {
                engine: Engine::Postgres,
                write: pool.clone(),
                read: pool,
                write_max: options.max_connections,
                read_max: options.max_connections,
            })
        } else {
            Err(DbError::UnsupportedScheme)
        }
    }

    async fn connect_sqlite(url: &str, options: &DbOptions) -> DbResult<Db> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // Create the file on first start unless the URL says otherwise.
        let url = if in_memory || url.contains("mode=") {
            url.to_owned()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        let write = Self::pool_options(1, options)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(sqlx::raw_sql(SQLITE_PRAGMAS)).await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(DbError::Unavailable)?;
        if in_memory {
            // Each in-memory connection is its own database: reads must share the writer.
            return Ok(Db { engine: Engine::Sqlite, read: write.clone(), write, write_max: 1, read_max: 1 });
        }
        let read = Self::pool_options(options.max_connections, options)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(sqlx::raw_sql(SQLITE_PRAGMAS)).await?;
                    conn.execute(sqlx::raw_sql("PRAGMA query_only = ON;")).await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(DbError::Unavailable)?;
        Ok(Db { engine: Engine::Sqlite, write, read, write_max: 1, read_max: options.max_connections })
    }

    fn pool_options(max: u32, options: &DbOptions) -> PoolOptions<Any> {
        AnyPoolOptions::new().max_connections(max).min_connections(0).acquire_timeout(options.acquire_timeout)
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Applies the pending migrations of this engine. On PostgreSQL an advisory lock keeps
    /// several instances starting at once from racing.
    pub async fn migrate(&self) -> DbResult<()> {
        let migrator = match self.engine {
            Engine::Sqlite => &SQLITE_MIGRATOR,
            Engine::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator.run(&self.write).await?;
        Ok(())
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite, so the write lock is taken up
    /// front and a transaction never fails half-way on a lock upgrade.
    pub async fn begin(&self) -> DbResult<Tx> {
        let tx = match self.engine {
            Engine::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.write.begin().await,
        };
        tx.map_err(DbError::from)
    }

    /// The pool for single-statement writes outside a transaction (on SQLite, the one writer).
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// The pool for reads outside a transaction.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Checks both pools answer.
    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        sqlx::query("SELECT 1").execute(&self.write).await?;
        Ok(())
    }

    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let stat = |name, pool: &AnyPool, max| PoolStats { name, size: pool.size(), idle: pool.num_idle() as u32, max };
        match self.engine {
            Engine::Postgres => vec![stat("main", &self.write, self.write_max)],
            Engine::Sqlite => vec![stat("write", &self.write, self.write_max), stat("read", &self.read, self.read_max)],
        }
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Now, as stored: unix milliseconds, UTC.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Rows per multi-row statement: with at most a dozen values a row, far below both engines'
/// limits on bound values (SQLite 32,766, PostgreSQL 65,535).
pub const ROWS_PER_STATEMENT: usize = 400;

/// The `VALUES` list of a multi-row insert: `rows` tuples of `cols` numbered placeholders, the
/// first being `$first`, e.g. `($1, $2), ($3, $4)`. Bind the values row by row in the same order.
pub fn values_list(rows: usize, cols: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(first + r * cols + c).to_string());
        }
        out.push(')');
    }
    out
}

/// The text of a statement with many values as the transaction's engine binds it fastest.
/// SQLite looks a numbered parameter up by a linear scan of the statement's names, once per
/// parameter as sqlx binds them, so a statement with a few thousand `$N` costs milliseconds to
/// bind; anonymous `?` parameters cost nothing to look up. On SQLite every `$N` becomes `?`,
/// which binds the same values as long as each `$N` appears once and in order (checked in debug
/// builds); PostgreSQL keeps `$N`.
pub fn positional(tx: &mut Tx, sql: String) -> String {
    let conn: &mut sqlx::AnyConnection = tx;
    if conn.backend_name() != "SQLite" {
        return sql;
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut expected = 1u64;
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            let mut n = 0u64;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n * 10 + u64::from(d);
                chars.next();
            }
            debug_assert_eq!(n, expected, "parameters must appear once each, in order: {sql}");
            expected += 1;
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// `$first, …` for an `IN (…)` list of `n` values.
pub fn in_list(n: usize, first: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// A `LIKE` pattern matching `needle` anywhere, with `%`, `_` and `\` escaped.
/// Use it with `LIKE $n ESCAPE '\'`.
pub fn like_contains(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// A `LIKE` pattern matching every org path under `path` (itself included).
pub fn subtree_pattern(path: &str) -> String {
    // Paths hold only digits and '/', so nothing needs escaping.
    format!("{path}%")
}

/// One page of a list: 1-based page number and a size.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub page: u32,
    pub page_size: u32,
}

impl PageRequest {
    pub fn limit(&self) -> i64 {
        i64::from(self.page_size)
    }
    pub fn offset(&self) -> i64 {
        i64::from(self.page.saturating_sub(1)) * i64::from(self.page_size)
    }

    /// This page of a list filtered in memory (rules that SQL cannot express, such as an
    /// audience), in the list's order.
    pub fn slice<T>(&self, items: Vec<T>) -> Vec<T> {
        let skip = usize::try_from(self.offset()).unwrap_or(usize::MAX);
        items.into_iter().skip(skip).take(self.page_size as usize).collect()
    }
}

/// A page of results and the total number of matches.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("a%b_c\\"), "%a\\%b\\_c\\\\%");
        assert_eq!(subtree_pattern("/1/4/"), "/1/4/%");
    }

    #[test]
    fn placeholder_lists_number_every_value_once() {
        assert_eq!(values_list(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_list(1, 2, 4), "($4, $5)");
        assert_eq!(in_list(3, 2), "$2, $3, $4");
    }

    #[tokio::test]
    async fn numbered_parameters_become_anonymous_on_sqlite_only() {
        let db = Db::connect("sqlite::memory:", &DbOptions::default()).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        let sql = positional(&mut tx, format!("SELECT $1 + $2, {}", values_list(1, 2, 3)));
        assert_eq!(sql, "SELECT ? + ?, (?, ?)");
        let (n,): (i64,) = sqlx::query_as(&positional(&mut tx, "SELECT $1 * 10 + $2".to_owned()))
            .bind(4i64)
            .bind(2i64)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 42, "the values bind in order");
    }

    #[test]
    fn pages_start_at_one() {
        let p = PageRequest { page: 3, page_size: 20 };
        assert_eq!((p.limit(), p.offset()), (20, 40));
        let p = PageRequest { page: 0, page_size: 20 };
        assert_eq!(p.offset(), 0);
    }
}

#[cfg(test)]
mod flag_tests {
    use super::Flag;

    #[test]
    fn a_flag_is_zero_or_one_and_nothing_else() {
        assert!(!bool::try_from(Flag(0)).unwrap());
        assert!(bool::try_from(Flag(1)).unwrap());
        for other in [2, -1, i64::MIN, i64::MAX] {
            assert!(bool::try_from(Flag(other)).is_err(), "{other} read as a flag");
        }
    }
}
