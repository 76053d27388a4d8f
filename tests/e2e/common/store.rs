//! The store a test server uses: SQLite in its data dir, or a Postgres database of its own
//! in the suite's Postgres pass.

use std::path::Path;

use super::postgres;

/// The Postgres database of a data dir in the suite's Postgres pass (made at first use).
pub fn test_database(data_dir: &Path) -> String {
    let file = data_dir.join("test-database-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url.trim().to_string();
    }
    let url = postgres::shared().database();
    std::fs::write(&file, &url).unwrap();
    url
}

/// The store of a data dir as its server sees it: SQLite, or the Postgres database of the
/// suite's Postgres pass.
pub async fn open_store(data_dir: &Path) -> anyhow::Result<hivemind::store::Store> {
    let url = std::fs::read_to_string(data_dir.join("test-database-url")).ok();
    hivemind::store::Store::open_url(url.as_deref().map(str::trim), data_dir).await
}
