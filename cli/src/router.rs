//! `hivemind router`'s flags: run the data plane of a data dir as a process of its own
//! (`serve` starts one when none runs), or replace the running one without dropping a
//! request. The router itself is the server's (`hivemind::local::router`).

use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RouterArgs {
    /// The data dir whose apps it serves: its control socket and last table live there.
    /// [default: ./hivemind-data]
    #[arg(long, env = "HIVEMIND_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Take the listeners, table and counts over from the router that runs now (what
    /// `router upgrade` starts).
    #[arg(long)]
    pub takeover: bool,
    #[command(subcommand)]
    pub command: Option<RouterCommand>,
}

#[derive(Subcommand)]
pub enum RouterCommand {
    /// Replace the running router with this binary's: the new process takes the listening
    /// sockets over, the old one finishes its in-flight requests and exits.
    #[command(
        after_help = "Example, after installing a new hivemind binary:\n  hivemind router upgrade --data-dir /var/lib/hivemind"
    )]
    Upgrade {
        /// [default: ./hivemind-data]
        #[arg(long, env = "HIVEMIND_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}
