//! `hivemind router`: run the data plane of a data dir as a process of its own (`serve`
//! starts one when none runs), or replace the running one without dropping a request.

use crate::router::control::{Connection, Paths, Request, Response};
use hivemind_cli::{CliError, RouterArgs, RouterCommand};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn data_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| PathBuf::from("./hivemind-data"))
}

pub async fn run(args: RouterArgs) -> Result<ExitCode, CliError> {
    match args.command {
        None => {
            let dir = data_dir(args.data_dir);
            super::private::data_dir(&dir).map_err(CliError::Other)?;
            crate::router::process::run(&dir, args.takeover).await.map_err(CliError::Other)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(RouterCommand::Upgrade { data_dir: dir }) => upgrade(&data_dir(dir)).await,
    }
}

/// The pid of the router that answers at `socket`.
async fn router_pid(socket: &Path) -> anyhow::Result<u32> {
    match Connection::connect(socket).await?.ask(&Request::Hello).await? {
        Response::Hello { pid, .. } => Ok(pid),
        other => anyhow::bail!("the router answered {other:?}"),
    }
}

async fn upgrade(data_dir: &Path) -> Result<ExitCode, CliError> {
    let paths = Paths::of(data_dir);
    let old = router_pid(&paths.socket).await.map_err(|e| {
        CliError::Usage(format!(
            "no router answers for {} ({e:#}); start one with `hivemind router`",
            data_dir.display()
        ))
    })?;
    let exe = std::env::current_exe().map_err(|e| CliError::Other(e.into()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .map_err(|e| CliError::Other(e.into()))?;
    let log_err = log.try_clone().map_err(|e| CliError::Other(e.into()))?;
    std::process::Command::new(exe)
        .args(["router", "--takeover", "--data-dir"])
        .arg(data_dir)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::Other(e.into()))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match router_pid(&paths.socket).await {
            Ok(new) if new != old => {
                println!(
                    "the router of {} is now pid {new} (was {old}); the old one finishes its in-flight requests and exits",
                    data_dir.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            _ if Instant::now() > deadline => {
                return Err(CliError::Other(anyhow::anyhow!(
                    "the new router did not take over within 15 s; see {}",
                    paths.log.display()
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
