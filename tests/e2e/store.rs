//! The store on both dialects: the same calls against a real SQLite file and a real
//! PostgreSQL give the same answers; the two migration directories describe the same
//! tables; and with Postgres a server that lost the lease can write nothing.

use crate::common::postgres::{self, postgres_available};
use hivemind::model::{
    Deployment, DeploymentSpec, HookRuns, Level, Phase, PluginRef, Release, Status, TlsMode, now_ms,
};
use hivemind::store::{ListFilter, StepEvent, StepWrites, Store, Transition};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}

/// A SQLite store in a new data dir, and a Postgres store in a new database.
async fn both() -> Vec<(Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path()).await.unwrap();
    let url = postgres::shared().database();
    let pg = Store::connect(&url).await.unwrap();
    // Postgres refuses writes from a server that does not lead: this one leads, alone.
    lead(&pg, "test-server", Duration::from_secs(60)).await;
    vec![(sqlite, dir), (pg, tempfile::tempdir().unwrap())]
}

async fn lead(store: &Store, holder: &str, lease: Duration) -> i64 {
    let lease_row = store
        .try_acquire(holder, holder, "http://127.0.0.1:1", lease.as_millis() as i64)
        .await
        .unwrap()
        .expect("the lease is free");
    store.fence().lead(holder, lease_row.epoch, Instant::now() + lease);
    lease_row.epoch
}

fn deployment(id: &str, app: &str, created_at_ms: i64) -> Deployment {
    Deployment {
        id: id.into(),
        name: app.into(),
        app: app.into(),
        strategy: "canary".into(),
        spec: DeploymentSpec { strategy: "canary".into(), ..DeploymentSpec::new(app, "img:v2") },
        target_version: "v2".into(),
        previous: Some(Release {
            version: "v1".into(),
            image: "img:v1".into(),
            replicas: 2,
            env: Default::default(),
            secrets: Default::default(),
            resources: Default::default(),
            pinned: Some(format!("img@sha256:{}", "12".repeat(32))),
        }),
        status: Status::InProgress,
        phase: Phase::Deploy,
        progress: 0,
        message: "created".into(),
        error: None,
        plugin: PluginRef { name: "canary".into(), version: "1.0.0".into(), sha256: "ab".repeat(32) },
        attempt: 0,
        phase_started_at_ms: created_at_ms,
        rollback_kind: None,
        promoted: false,
        promotions: 0,
        rollback_of: None,
        last_progress_at_ms: created_at_ms,
        winner: None,
        hook_runs: HookRuns::default(),
        images: Default::default(),
        created_at_ms,
        updated_at_ms: created_at_ms,
    }
}

#[test]
fn every_store_call_answers_the_same_on_sqlite_and_postgres() {
    if !postgres_available("store round trip") {
        return;
    }
    block_on(async {
        let mut answers = Vec::new();
        for (store, _dir) in both().await {
            let dialect = store.dialect();
            let app = store.insert_app("web", 9100).await.unwrap();
            assert_eq!((app.port, app.tls, app.sticky), (9100, TlsMode::Manual, false), "{dialect}");
            store
                .set_app_split(
                    "web",
                    &hivemind::model::Split::new(vec![("v1".into(), 90), ("v2".into(), 10)]).unwrap(),
                    true,
                )
                .await
                .unwrap();
            let release = Release {
                version: "v1".into(),
                image: "img:v1".into(),
                replicas: 2,
                env: Default::default(),
                secrets: Default::default(),
                resources: Default::default(),
                pinned: Some(format!("img@sha256:{}", "34".repeat(32))),
            };
            store.set_app_release("web", Some(&release)).await.unwrap();
            assert_eq!(store.next_release_number("web").await.unwrap(), 1, "{dialect}");
            assert_eq!(store.next_release_number("web").await.unwrap(), 2, "{dialect}");

            let now = now_ms();
            store.insert_deployment(&deployment("dep-1", "web", now)).await.unwrap();
            store.insert_deployment(&deployment("dep-2", "web", now + 1)).await.unwrap();
            let writes = StepWrites {
                state: [("step".to_string(), vec![1u8, 2, 3])].into(),
                progress: Some((40, "canary at 10%".into())),
                events: vec![(Level::Info, "traffic: v2 10%".into())],
                plugin_lines: 0,
                progressed: true,
            };
            let outcome = StepEvent::New { level: Level::Debug, message: "step 1: continue".into() };
            let first = store.record_step("dep-1", &writes, &outcome).await.unwrap();
            let repeat = StepEvent::Repeat { id: first, message: "steps 1 to 2: continue (2 times)".into() };
            assert_eq!(store.record_step("dep-1", &StepWrites::default(), &repeat).await.unwrap(), first);
            let d = store.deployment("dep-1").await.unwrap().unwrap();
            assert_eq!((d.attempt, d.progress, d.message.as_str()), (2, 40, "canary at 10%"), "{dialect}");
            assert_eq!(d.previous.as_ref().map(|r| r.version.as_str()), Some("v1"), "{dialect}");
            assert_eq!(store.plugin_state_value("dep-1", "step").await.unwrap(), Some(vec![1, 2, 3]));
            assert_eq!(store.plugin_state_sizes("dep-1").await.unwrap().get("step"), Some(&3), "{dialect}");

            store
                .transition(
                    "dep-1",
                    Transition {
                        phase: Some(Phase::Rollback),
                        promoted: Some(true),
                        level: Level::Warn,
                        error: Some("error rate 12%"),
                        ..Transition::to(Status::RollingBack, "rolling back: error rate 12%")
                    },
                )
                .await
                .unwrap();
            let d = store.deployment("dep-1").await.unwrap().unwrap();
            assert_eq!((d.status, d.phase, d.attempt, d.promotions), (Status::RollingBack, Phase::Rollback, 0, 1));
            store.transition("dep-1", Transition::to(Status::RolledBack, "rolled back")).await.unwrap();
            assert!(store.plugin_state_sizes("dep-1").await.unwrap().is_empty(), "{dialect}: state goes at the end");
            store.set_winner("dep-2", "b", "variant b wins").await.unwrap();
            let pins = [("img:v2".to_string(), format!("img@sha256:{}", "56".repeat(32)))].into();
            store.set_images("dep-2", &pins, &["img:v2 resolved to sha256:5656…".into()]).await.unwrap();
            store.set_message("dep-2", "pulling img:v2: 1/2 layers, 3 of 9 MB").await.unwrap();
            let d2 = store.deployment("dep-2").await.unwrap().unwrap();
            assert_eq!(
                (&d2.images, d2.message.as_str()),
                (&pins, "pulling img:v2: 1/2 layers, 3 of 9 MB"),
                "{dialect}"
            );
            store.set_registry_login("r.example:5000", "ci", "pw1").await.unwrap();
            store.set_registry_login("r.example:5000", "ci", "pw2").await.unwrap();
            let login = store.registry_login("r.example:5000").await.unwrap();
            assert_eq!(login, Some(("ci".to_string(), "pw2".to_string())), "{dialect}: a second login replaces");
            let logins: Vec<String> =
                store.registry_logins().await.unwrap().into_iter().map(|l| l.registry + " " + &l.username).collect();
            assert!(store.remove_registry_login("r.example:5000").await.unwrap(), "{dialect}");
            assert!(!store.remove_registry_login("r.example:5000").await.unwrap(), "{dialect}");

            let events: Vec<(Level, String)> =
                store.events("dep-1", 0).await.unwrap().into_iter().map(|e| (e.level, e.message)).collect();
            store.app_event("web", Level::Warn, "replica web-1 replaced").await.unwrap();
            let app_events = store.app_events("web", 0).await.unwrap();
            assert_eq!(app_events.len(), 1, "{dialect}");
            let filter = ListFilter {
                app: Some("web".into()),
                status: Some(Status::RolledBack),
                limit: 10,
                ..Default::default()
            };
            let listed: Vec<String> =
                store.list_deployments(&filter).await.unwrap().into_iter().map(|d| d.id.to_string()).collect();
            let active: Vec<String> =
                store.active_deployments().await.unwrap().into_iter().map(|d| d.id.to_string()).collect();

            store.put_pipeline("prod", &DeploymentSpec::new("", "")).await.unwrap();
            store.insert_plugin("cd".repeat(32).as_str(), "ramp", "0.1.0", "file ramp.wasm", "").await.unwrap();
            store.insert_plugin("cd".repeat(32).as_str(), "ramp", "0.1.1", "file ramp.wasm", "jobs").await.unwrap();
            store.set_plugin_disabled("canary", true).await.unwrap();
            store.set_plugin_disabled("canary", true).await.unwrap();
            let plugins = store.installed_plugins().await.unwrap();
            let disabled = store.disabled_plugins().await.unwrap();
            let id = store.server_id().await.unwrap();
            assert_eq!(store.server_id().await.unwrap(), id, "{dialect}: the id is made once");

            let app = store.app("web").await.unwrap().unwrap();
            let pruned = store.prune_history("web", 1).await.unwrap();
            store.delete_app("web").await.unwrap();
            assert!(store.app("web").await.unwrap().is_none(), "{dialect}");
            answers.push(format!(
                "{:?}",
                (
                    app.split,
                    app.sticky,
                    app.release.map(|r| (r.version, r.pinned)),
                    logins,
                    events,
                    listed,
                    active,
                    plugins,
                    disabled,
                    pruned,
                    store.pipelines().await.unwrap().len()
                )
            ));
        }
        assert_eq!(answers[0], answers[1], "SQLite and Postgres answer differently");
        assert!(answers[0].contains("rolled back") && answers[0].contains("steps 1 to 2"), "{}", answers[0]);
    });
}

/// Table name to column names, from each dialect's own catalogue.
#[test]
fn the_two_migration_directories_make_the_same_tables() {
    if !postgres_available("schema in step") {
        return;
    }
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path()).await.unwrap();
        let url = postgres::shared().database();
        Store::connect(&url).await.unwrap();

        let sqlite =
            sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("hivemind.db").display())).await.unwrap();
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
        )
        .fetch_all(&sqlite)
        .await
        .unwrap();
        let mut lite: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (table, column) in rows {
            lite.entry(table).or_default().insert(column);
        }
        let pg = sqlx::PgPool::connect(&url).await.unwrap();
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%' AND table_name NOT LIKE 'cluster_%'",
        )
        .fetch_all(&pg)
        .await
        .unwrap();
        let mut postgres: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (table, column) in rows {
            postgres.entry(table).or_default().insert(column);
        }
        assert_eq!(lite, postgres, "store/migrations/sqlite and store/migrations/postgres have drifted apart");
        assert!(lite.len() >= 10, "{lite:?}");

        // The same versions, so that a change to one dialect is made to the other too.
        let versions = |dialect: &str| -> BTreeSet<String> {
            std::fs::read_dir(crate::common::repo_root().join("store/migrations").join(dialect))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().split('_').next().unwrap().to_string())
                .collect()
        };
        let (lite_versions, pg_versions) = (versions("sqlite"), versions("postgres"));
        assert!(lite_versions.is_subset(&pg_versions), "{lite_versions:?} vs {pg_versions:?}");
        // Postgres has the cluster's tables besides (0009): one server has no lease.
        assert_eq!(pg_versions.difference(&lite_versions).count(), 1, "{pg_versions:?}");
    });
}

/// Two servers on one database: the first leads, then is deposed (its lease expired and
/// the second took it). Its writes are refused, in the same transaction as they would
/// have been made, and nothing of them lands.
#[test]
fn a_deposed_leader_writes_nothing() {
    if !postgres_available("fencing") {
        return;
    }
    block_on(async {
        let url = postgres::shared().database();
        let first = Store::connect(&url).await.unwrap();
        let second = Store::connect(&url).await.unwrap();

        // A follower may not write at all.
        let refused = second.insert_app("web", 9200).await.unwrap_err();
        assert!(refused.to_string().contains("only the leader writes"), "{refused:#}");

        let epoch = lead(&first, "first", Duration::from_millis(300)).await;
        first.insert_app("web", 9200).await.unwrap();
        first.insert_deployment(&deployment("dep-1", "web", now_ms())).await.unwrap();
        assert!(second.try_acquire("second", "second", "http://127.0.0.1:2", 10_000).await.unwrap().is_none(), "held");

        tokio::time::sleep(Duration::from_millis(400)).await;
        let taken =
            second.try_acquire("second", "second", "http://127.0.0.1:2", 10_000).await.unwrap().expect("expired");
        assert_eq!(taken.epoch, epoch + 1);
        assert_eq!(taken.failovers, 1, "an expired lease passing on is a failover");
        second.fence().lead("second", taken.epoch, Instant::now() + Duration::from_secs(10));

        // The first server still believes it leads (its own clock says so): the
        // database's check refuses it all the same.
        first.fence().lead("first", epoch, Instant::now() + Duration::from_secs(10));
        let events_before = second.events("dep-1", 0).await.unwrap().len();
        let writes = StepWrites { progress: Some((50, "stale".into())), ..Default::default() };
        let outcome = StepEvent::New { level: Level::Info, message: "a stale step".into() };
        let refused = first.record_step("dep-1", &writes, &outcome).await.unwrap_err();
        assert!(refused.downcast_ref::<hivemind::store::NotLeader>().is_some(), "{refused:#}");
        assert!(refused.to_string().contains(&format!("epoch {epoch}")), "{refused:#}");
        assert!(!first.renew("first", epoch, 10_000).await.unwrap(), "a deposed leader cannot renew");
        assert!(!first.fence().may_act(), "after a refused write the server knows it lost the lease");
        assert!(first.transition("dep-1", Transition::to(Status::Completed, "stale end")).await.is_err());

        let d = second.deployment("dep-1").await.unwrap().unwrap();
        assert_eq!((d.status, d.progress, d.attempt), (Status::InProgress, 0, 0), "nothing stale landed");
        assert_eq!(second.events("dep-1", 0).await.unwrap().len(), events_before);
        // The new leader writes.
        second.record_step("dep-1", &writes, &outcome).await.unwrap();
        assert_eq!(second.deployment("dep-1").await.unwrap().unwrap().attempt, 1);

        // A server that restarts (same name, new process) takes its own lease back at once,
        // under a new epoch: its previous process, were it still alive, is fenced off.
        let back = second.try_acquire("second-again", "second", "http://127.0.0.1:2", 10_000).await.unwrap();
        assert_eq!(back.map(|l| l.epoch), Some(taken.epoch + 1));
        assert!(first.try_acquire("first", "first", "http://127.0.0.1:1", 10_000).await.unwrap().is_none());

        // A server paused past its lease stops on its own clock, before asking anyone.
        second.fence().lead("second", taken.epoch, Instant::now() - Duration::from_millis(1));
        let refused = second.event("dep-1", Level::Info, "late").await.unwrap_err();
        assert!(refused.to_string().contains("not renewed in time"), "{refused:#}");
    });
}

#[test]
fn a_bad_database_url_is_refused_with_what_to_do() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        for (url, says) in [
            ("mysql://root@localhost/db", "only postgres:// URLs are supported"),
            ("sqlite://x.db", "SQLite lives in the data dir"),
            ("postgres://nobody@127.0.0.1:1/none", "connecting to the database postgres://nobody@127.0.0.1:1/none"),
            ("postgres://user:secret@127.0.0.1:1/none", "postgres://user:***@127.0.0.1:1/none"),
        ] {
            let e = Store::open_url(Some(url), dir.path()).await.err().expect(url);
            let text = format!("{e:#}");
            assert!(text.contains(says), "{url}: {text}");
            assert!(!text.contains("secret"), "the password is never shown: {text}");
        }
    });
}
