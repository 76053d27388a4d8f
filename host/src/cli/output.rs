//! How the CLI prints: aligned tables for people, JSON for scripts.

use super::client::{CliError, Client};
use crate::api::{DeploymentView, PluginView, StatusView};
use crate::model::{Event, rfc3339};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

fn json<T: Serialize + ?Sized>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Prints rows as columns padded to their widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        println!("{k:<width$}  {v}");
    }
}

pub fn deployment(d: &DeploymentView, format: Format) {
    if format == Format::Json {
        return json(d);
    }
    let x = &d.deployment;
    fields(&[
        ("id", x.id.clone()),
        ("name", x.name.clone()),
        ("app", x.app.clone()),
        ("image", x.spec.image.clone()),
        ("replicas", x.spec.replicas.to_string()),
        ("strategy", format!("{} {} (sha256 {})", x.plugin.name, x.plugin.version, x.plugin.sha256)),
        ("version", x.target_version.clone()),
        ("previous", x.previous.as_ref().map(|p| format!("{} ({})", p.version, p.image)).unwrap_or_else(|| "-".into())),
        ("status", x.status.as_str().to_string()),
        ("progress", format!("{}%", x.progress)),
        ("message", x.message.clone()),
        ("error", x.error.clone().unwrap_or_else(|| "-".into())),
        ("created", d.created_at.clone()),
        ("updated", d.updated_at.clone()),
    ]);
}

pub fn deployments(list: &[DeploymentView], format: Format) {
    if format == Format::Json {
        return json(list);
    }
    let rows = list
        .iter()
        .map(|d| {
            let x = &d.deployment;
            vec![
                x.id.clone(),
                x.app.clone(),
                x.target_version.clone(),
                x.strategy.clone(),
                x.status.as_str().to_string(),
                format!("{}%", x.progress),
                d.created_at.clone(),
                x.spec.image.clone(),
            ]
        })
        .collect();
    table(&["ID", "APP", "VERSION", "STRATEGY", "STATUS", "PROGRESS", "CREATED", "IMAGE"], rows);
}

pub fn status(s: &StatusView, format: Format) {
    if format == Format::Json {
        return json(s);
    }
    fields(&[
        ("id", s.id.clone()),
        ("app", s.app.clone()),
        ("status", s.status.clone()),
        ("progress", format!("{}%", s.progress)),
        ("message", s.message.clone()),
        ("completed", s.completed.to_string()),
        ("successful", s.successful.to_string()),
        ("created", s.created_at.clone()),
        ("updated", s.updated_at.clone()),
    ]);
}

pub fn events(list: &[Event], format: Format) {
    if format == Format::Json {
        return json(list);
    }
    for e in list {
        println!("{}  {:<5}  {}", rfc3339(e.at_ms), e.level, e.message);
    }
}

pub fn apps(list: &[serde_json::Value], format: Format) {
    if format == Format::Json {
        return json(list);
    }
    let rows = list
        .iter()
        .map(|a| {
            let release = &a["release"];
            let replicas = a["replicas"].as_array().map(|r| r.len()).unwrap_or(0);
            let healthy =
                a["replicas"].as_array().map(|r| r.iter().filter(|x| x["healthy"] == true).count()).unwrap_or(0);
            vec![
                a["name"].as_str().unwrap_or_default().to_string(),
                a["port"].to_string(),
                release["version"].as_str().unwrap_or("-").to_string(),
                release["image"].as_str().unwrap_or("-").to_string(),
                format!("{healthy}/{replicas}"),
            ]
        })
        .collect();
    table(&["NAME", "PORT", "RELEASE", "IMAGE", "HEALTHY"], rows);
}

pub fn app(a: &serde_json::Value, format: Format) {
    if format == Format::Json {
        return json(a);
    }
    let split: Vec<String> = a["split"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{}={}", s[0].as_str().unwrap_or("?"), s[1]))
        .collect();
    fields(&[
        ("name", a["name"].as_str().unwrap_or_default().to_string()),
        ("port", a["port"].to_string()),
        ("release", a["release"]["version"].as_str().unwrap_or("-").to_string()),
        ("image", a["release"]["image"].as_str().unwrap_or("-").to_string()),
        ("split", if split.is_empty() { "-".into() } else { split.join(", ") }),
    ]);
    println!();
    let rows = a["replicas"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                r["id"].as_str().unwrap_or_default().to_string(),
                r["version"].as_str().unwrap_or_default().to_string(),
                r["address"].as_str().unwrap_or_default().to_string(),
                if r["healthy"] == true { "healthy".into() } else { "unhealthy".into() },
            ]
        })
        .collect();
    table(&["REPLICA", "VERSION", "ADDRESS", "HEALTH"], rows);
}

pub fn plugin(p: &PluginView, format: Format) {
    if format == Format::Json {
        return json(p);
    }
    println!("installed {} {} (sha256 {}, {} bytes)", p.name, p.version, p.sha256, p.size);
}

pub fn plugins(list: &[PluginView], format: Format) {
    if format == Format::Json {
        return json(list);
    }
    let rows = list
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.clone(),
                format!("{:?}", p.origin).to_lowercase(),
                p.sha256[..12].to_string(),
                p.description.clone(),
            ]
        })
        .collect();
    table(&["NAME", "VERSION", "ORIGIN", "SHA256", "DESCRIPTION"], rows);
}

/// Follows a deployment until it ends, printing its events as they come. Exits 0 when
/// it completed, 1 when it failed.
pub async fn follow(client: &Client, id: &str, format: Format) -> Result<ExitCode, CliError> {
    let mut seen = 0;
    if format == Format::Table {
        println!("deployment {id}");
    }
    loop {
        let d = client.deployment(id).await?;
        if format == Format::Table {
            for e in client.events(id, seen).await? {
                println!("  [{:>3}%] {}", d.deployment.progress, e.message);
                seen = e.id;
            }
        }
        let status = d.deployment.status;
        if status.is_terminal() || status == crate::model::Status::AwaitingApproval {
            match format {
                Format::Json => json(&d),
                Format::Table => println!("{}: {} ({}%)", status.as_str(), d.deployment.message, d.deployment.progress),
            }
            return Ok(if d.successful || status == crate::model::Status::AwaitingApproval {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
