//! `hivemind store`: the server's database, handled offline.

use hivemind_cli::{CliError, StoreCommand};
use std::process::ExitCode;

pub async fn run(command: StoreCommand) -> Result<ExitCode, CliError> {
    match command {
        StoreCommand::Migrate { data_dir, to } => {
            if !data_dir.join("hivemind.db").exists() {
                return Err(CliError::Usage(format!(
                    "{} holds no hivemind.db: give the data dir of the server to migrate with --data-dir",
                    data_dir.display()
                )));
            }
            if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
                return Err(CliError::Usage(format!(
                    "--to {}: store migrate copies into Postgres; give a postgres:// URL",
                    crate::store::redact(&to)
                )));
            }
            let from = crate::store::Store::open(&data_dir).await.map_err(CliError::Other)?;
            let into = crate::store::Store::connect(&to).await.map_err(CliError::Other)?;
            let copied = crate::store::copy_to(&from, &into).await.map_err(CliError::Other)?;
            let total: u64 = copied.iter().map(|(_, n)| n).sum();
            for (table, n) in &copied {
                println!("{table:<18} {n:>8} rows");
            }
            println!(
                "copied {total} rows from {} into {}; start the servers with --database-url and --data-dir {}",
                data_dir.join("hivemind.db").display(),
                crate::store::redact(&to),
                data_dir.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
