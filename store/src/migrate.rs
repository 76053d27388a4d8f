//! `hivemind store migrate --to postgres://...`: copies a SQLite install into an empty
//! Postgres database, table by table in one transaction, ids included, so that the
//! servers on Postgres show the same history (and the same cluster id on the replicas,
//! which they adopt).

use super::{Pool, Store};
use anyhow::{Context, Result, bail};
use sqlx::Row;

/// How a column is read from SQLite and written to Postgres.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    OptText,
    Int,
    OptInt,
    Bool,
    Json,
    OptJson,
    Bytes,
}

use Kind::*;

/// Every table, parents first, with its columns.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    ("settings", &[("key", Text), ("value", Text)]),
    (
        "apps",
        &[
            ("name", Text),
            ("port", Int),
            ("release", OptJson),
            ("split", Json),
            ("sticky", Bool),
            ("release_counter", Int),
            ("created_at_ms", Int),
            ("updated_at_ms", Int),
            ("degraded", OptText),
            ("replica_quota", OptInt),
            ("hosts", Json),
            ("path_prefix", Text),
            ("tls", Text),
            ("redirect_https", Bool),
            ("backend_protocol", Text),
        ],
    ),
    (
        "deployments",
        &[
            ("id", Text),
            ("app", Text),
            ("name", Text),
            ("strategy", Text),
            ("spec", Json),
            ("target_version", Text),
            ("previous", OptJson),
            ("status", Text),
            ("phase", Text),
            ("progress", Int),
            ("message", Text),
            ("error", OptText),
            ("plugin_name", Text),
            ("plugin_version", Text),
            ("plugin_sha256", Text),
            ("attempt", Int),
            ("phase_started_at_ms", Int),
            ("rollback_kind", OptText),
            ("promoted", Bool),
            ("rollback_of", OptText),
            ("last_progress_at_ms", Int),
            ("winner", OptText),
            ("hook_runs", Json),
            ("promotions", Int),
            ("images", Json),
            ("created_at_ms", Int),
            ("updated_at_ms", Int),
        ],
    ),
    ("plugin_state", &[("deployment_id", Text), ("key", Text), ("value", Bytes)]),
    ("events", &[("id", Int), ("deployment_id", Text), ("at_ms", Int), ("level", Text), ("message", Text)]),
    ("app_events", &[("id", Int), ("app", Text), ("at_ms", Int), ("level", Text), ("message", Text)]),
    (
        "replicas",
        &[
            ("id", Text),
            ("app", Text),
            ("version", Text),
            ("deployment_id", Text),
            ("driver", Text),
            ("handle", Text),
            ("address", Text),
            ("health_address", Text),
            ("started_at_ms", Int),
        ],
    ),
    ("pipelines", &[("name", Text), ("spec", Json), ("updated_at_ms", Int)]),
    ("disabled_plugins", &[("name", Text)]),
    (
        "plugins",
        &[
            ("sha256", Text),
            ("name", Text),
            ("version", Text),
            ("installed_at_ms", Int),
            ("source", Text),
            ("grants", Text),
        ],
    ),
    ("registry_logins", &[("registry", Text), ("username", Text), ("password", Text), ("updated_at_ms", Int)]),
];

/// What `copy_to` copied: rows per table.
pub type Copied = Vec<(&'static str, u64)>;

/// Copies everything in the SQLite store `from` into the Postgres store `to`, which must
/// hold no apps, deployments, pipelines, plugins or registry logins yet.
pub async fn copy_to(from: &Store, to: &Store) -> Result<Copied> {
    let (Pool::Sqlite(source), Pool::Postgres(target)) = (&from.pool, &to.pool) else {
        bail!("store migrate copies a SQLite data dir into Postgres");
    };
    for table in ["apps", "deployments", "pipelines", "plugins", "registry_logins"] {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(target).await?;
        if n > 0 {
            bail!(
                "the target database already holds {n} row(s) in {table}: store migrate copies only into an empty database \
                 (create a new one, or drop this one's tables)"
            );
        }
    }
    let mut tx = target.begin().await?;
    let mut copied = Copied::new();
    for (table, columns) in TABLES {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let rows = sqlx::query(&format!("SELECT {} FROM {table}", names.join(", ")))
            .fetch_all(source)
            .await
            .with_context(|| format!("reading {table} from SQLite"))?;
        let placeholders: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| match kind {
                Json | OptJson => format!("${}::jsonb", i + 1),
                _ => format!("${}", i + 1),
            })
            .collect();
        // The cluster id replicas carry is the copied one, whatever the target made.
        let conflict = if *table == "settings" { "ON CONFLICT (key) DO UPDATE SET value = excluded.value" } else { "" };
        let insert =
            format!("INSERT INTO {table} ({}) VALUES ({}) {conflict}", names.join(", "), placeholders.join(", "));
        for row in &rows {
            let mut query = sqlx::query(&insert);
            for (name, kind) in columns.iter() {
                query = match kind {
                    Text | Json => query.bind(row.try_get::<String, _>(*name)?),
                    OptText | OptJson => query.bind(row.try_get::<Option<String>, _>(*name)?),
                    Int => query.bind(row.try_get::<i64, _>(*name)?),
                    OptInt => query.bind(row.try_get::<Option<i64>, _>(*name)?),
                    Bool => query.bind(row.try_get::<bool, _>(*name)?),
                    Bytes => query.bind(row.try_get::<Vec<u8>, _>(*name)?),
                };
            }
            query.execute(&mut *tx).await.with_context(|| format!("writing {table} to Postgres"))?;
        }
        copied.push((table, rows.len() as u64));
    }
    // The identity columns go on from the copied ids.
    for table in ["events", "app_events"] {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(copied)
}
