//! Postgres pools. Every service owns one schema: its pool sets `search_path` to it, so its tables
//! and its `_sqlx_migrations` history live there and services never see each other's migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::PostgresSettings;

/// Failures while preparing a service's database.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The schema name is not a plain lowercase identifier.
    #[error("invalid schema name `{0}`")]
    InvalidSchema(String),
    /// The URL could not be parsed.
    #[error("invalid postgres url")]
    InvalidUrl(#[source] sqlx::Error),
    /// Postgres could not be reached or refused a statement.
    #[error("postgres: {0}")]
    Query(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migrate schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

fn check_schema(schema: &str) -> Result<(), DatabaseError> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema.chars().all(|character| {
            character.is_ascii_lowercase() || character == '_' || character.is_ascii_digit()
        })
        && !schema.starts_with(|character: char| character.is_ascii_digit());
    if valid { Ok(()) } else { Err(DatabaseError::InvalidSchema(schema.to_owned())) }
}

/// Connection options for `schema`, from the configured URL.
pub fn connect_options(settings: &PostgresSettings, schema: &str) -> Result<PgConnectOptions, DatabaseError> {
    check_schema(schema)?;
    let options = PgConnectOptions::from_str(settings.url.expose()).map_err(DatabaseError::InvalidUrl)?;
    Ok(options.options([("search_path", schema)]).application_name("sutazai"))
}

/// Creates the schema if needed, runs the migrations in it, and returns a pool whose connections
/// use it.
///
/// Several migrators may share a schema (a service's own, plus the outbox tables of
/// `sutazai-messaging`); their version numbers must not collide, and each ignores the versions
/// applied by the others.
pub async fn connect_and_migrate(
    settings: &PostgresSettings,
    schema: &str,
    migrators: Vec<Migrator>,
) -> Result<PgPool, DatabaseError> {
    let options = connect_options(settings, schema)?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_with(options)
        .await?;
    // The name was checked above, so quoting it as an identifier is safe.
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).execute(&pool).await?;
    for mut migrator in migrators {
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
    }
    Ok(pool)
}

/// Runs the migrations and closes the pool (`sutazai migrate`).
pub async fn migrate(
    settings: &PostgresSettings,
    schema: &str,
    migrators: Vec<Migrator>,
) -> Result<(), DatabaseError> {
    let pool = connect_and_migrate(settings, schema, migrators).await?;
    pool.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        assert!(check_schema("orchestrator").is_ok());
        assert!(check_schema("auth_2").is_ok());
        assert!(check_schema("Auth").is_err());
        assert!(check_schema("x\"; drop").is_err());
        assert!(check_schema("").is_err());
        assert!(check_schema("1abc").is_err());
    }
}
