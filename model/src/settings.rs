//! The server's settings that the command line names and the server acts on: which
//! runtime runs replicas, where the routers run, which plugins may be installed. The
//! words are here, with their help, so that the CLI crate can parse them without the
//! server; the server gives them their meaning.

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
/// How replicas run.
pub enum RuntimeChoice {
    /// Docker when the engine answers, process otherwise.
    Auto,
    Docker,
    Process,
    /// Services of the Docker Swarm the local engine manages.
    Swarm,
}

/// Where the app routers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RouterMode {
    /// In `hivemind router`, a process of its own that outlives `serve` (started when
    /// none runs for the data dir).
    Process,
    /// In `hivemind router`, run by a supervisor (the systemd unit in deploy/systemd):
    /// `serve` connects to it and never starts one itself.
    External,
    /// Inside `serve`: its restarts take the routes down with it.
    Embedded,
}

/// Whether an unsigned component may be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustMode {
    /// Unsigned components load (shown as unsigned); signed ones must verify.
    #[default]
    Permissive,
    /// Only components signed by a trusted key load.
    RequireSigned,
}
