//! `hivemind store`'s flags: the server's database, handled offline (by
//! `hivemind::local::store`).

use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy a SQLite install (apps, deployments and their events, plugins, pipelines,
    /// replicas) into an empty Postgres database; then start the servers with
    /// --database-url and the same data dir (it keeps the token, the plugins' bytes and
    /// the certificates). Stop `hivemind serve` first.
    #[command(
        after_help = "Example:\n  hivemind store migrate --data-dir ./hivemind-data --to postgres://hivemind:secret@db:5432/hivemind"
    )]
    Migrate {
        /// The data dir whose hivemind.db is copied. [default: ./hivemind-data]
        #[arg(long, env = "HIVEMIND_DATA_DIR", default_value = "./hivemind-data")]
        data_dir: PathBuf,
        /// The Postgres database to copy into; it must hold no apps, deployments, plugins
        /// or pipelines yet.
        #[arg(long)]
        to: String,
    },
}
