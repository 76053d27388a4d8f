//! Following a deployment from the CLI: a live progress bar on a terminal, one line per
//! event otherwise, until it ends or awaits approval.

use super::client::{CliError, Client};
use super::escape::{escaped, say};
use super::output::{Format, deployment, json};
use crate::api_types::DeploymentView;
use crate::model::{Event, Level, Status};
use std::process::ExitCode;

/// What every command that starts or steers a deployment does next: with `--detach`,
/// print it and return; otherwise follow it until it ends.
pub async fn detach_or_follow(
    client: &Client,
    d: &DeploymentView,
    detach: bool,
    format: Format,
) -> Result<ExitCode, CliError> {
    if detach {
        deployment(d, format);
        return Ok(ExitCode::SUCCESS);
    }
    follow(client, &d.deployment.id, format).await
}

/// Follows a deployment until it ends (or awaits approval), from its server-sent event
/// stream: a live progress bar on a terminal, one line per event otherwise. Exits 0 when
/// it completed (or awaits approval), 1 when it did not.
pub async fn follow(client: &Client, id: &str, format: Format) -> Result<ExitCode, CliError> {
    use std::io::IsTerminal;
    let bar = format == Format::Table && std::io::stdout().is_terminal();
    if format == Format::Table {
        println!("deployment {id}");
    }
    let mut response = client.stream(id).await?;
    let mut buffer = String::new();
    let mut progress = (0u8, String::new());
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) | Err(_) => {
                return Err(CliError::Unreachable(format!(
                    "lost the event stream of {id}; `hivemind deployment status --id {id}` shows where it stands"
                )));
            }
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let mut kind = "";
            let mut data = String::new();
            for line in message.lines() {
                if let Some(k) = line.strip_prefix("event:") {
                    // `series` (the dashboard's figures) is not for the terminal.
                    kind = match k.trim() {
                        "status" => "status",
                        "event" => "event",
                        _ => "",
                    };
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            match kind {
                "event" => {
                    let Ok(e) = serde_json::from_str::<Event>(&data) else { continue };
                    if format == Format::Table && e.level != Level::Debug {
                        if bar {
                            print!("\r\x1b[2K");
                        }
                        say!("  {:<5} {}", e.level, e.message);
                        if bar {
                            draw_bar(progress.0, &progress.1);
                        }
                    }
                }
                "status" => {
                    let Ok(d) = serde_json::from_str::<DeploymentView>(&data) else { continue };
                    let x = &d.deployment;
                    progress = (x.progress, x.message.clone());
                    if bar {
                        draw_bar(progress.0, &progress.1);
                    }
                    if x.status.is_terminal() || x.status == Status::AwaitingApproval {
                        if bar {
                            println!();
                        }
                        match format {
                            Format::Json | Format::Yaml => json(&d, format),
                            Format::Table => say!("{}: {} ({}%)", x.status.as_str(), x.message, x.progress),
                        }
                        let ok = d.successful || x.status == Status::AwaitingApproval;
                        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
                    }
                }
                _ => {}
            }
        }
    }
}

fn draw_bar(percent: u8, message: &str) {
    use std::io::Write;
    let width = 30;
    let filled = (percent as usize * width / 100).min(width);
    let text: String = escaped(message).chars().take(70).collect();
    print!("\r\x1b[2K[{}{}] {percent:>3}%  {text}", "#".repeat(filled), "-".repeat(width - filled));
    let _ = std::io::stdout().flush();
}
