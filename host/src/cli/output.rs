//! How the CLI prints: aligned tables for people, JSON for scripts.

use super::client::{CliError, Client};
use crate::api::{DeploymentView, PluginView, StatusView};
use crate::model::{Event, rfc3339};
use serde::Serialize;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints a value as JSON or YAML, as the chosen format says.
fn json<T: Serialize + ?Sized>(value: &T) {
    match FORMAT.get() {
        Some(Format::Yaml) => print!("{}", yaml(&serde_json::to_value(value).unwrap_or_default(), 0)),
        _ => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
    }
}

/// The format of this run, for `json` to pick JSON or YAML.
pub static FORMAT: std::sync::OnceLock<Format> = std::sync::OnceLock::new();

/// A small YAML emitter for JSON values (block style; strings quoted when they must be).
fn yaml(value: &serde_json::Value, indent: usize) -> String {
    use serde_json::Value;
    let pad = " ".repeat(indent);
    let scalar = |v: &Value| match v {
        Value::Null => "null".to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c) || c.is_ascii_digit())
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.ends_with([' ', ':'])
                && !["true", "false", "null", "yes", "no", "~"].contains(&s.to_ascii_lowercase().as_str())
                && !s.contains('\n');
            if plain { s.clone() } else { serde_json::to_string(s).unwrap() }
        }
        other => other.to_string(),
    };
    match value {
        Value::Object(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| match v {
                Value::Object(m) if !m.is_empty() => format!("{pad}{k}:\n{}", yaml(v, indent + 2)),
                Value::Array(a) if !a.is_empty() => format!("{pad}{k}:\n{}", yaml(v, indent)),
                _ => format!(
                    "{pad}{k}: {}\n",
                    match v {
                        Value::Object(_) => "{}".into(),
                        Value::Array(_) => "[]".into(),
                        _ => scalar(v),
                    }
                ),
            })
            .collect(),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| match v {
                Value::Object(m) if !m.is_empty() => {
                    let inner = yaml(v, indent + 2);
                    format!("{pad}- {}", inner.trim_start())
                }
                Value::Array(a) if !a.is_empty() => format!("{pad}-\n{}", yaml(v, indent + 2)),
                _ => format!("{pad}- {}\n", scalar(v)),
            })
            .collect(),
        Value::Object(_) => format!("{pad}{{}}\n"),
        Value::Array(_) => format!("{pad}[]\n"),
        _ => format!("{pad}{}\n", scalar(value)),
    }
}

/// The terminal's width, when stdout is one.
fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(c);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(size.ws_col as usize)
}

/// Prints rows as columns padded to their widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    // Fit the terminal: the widest columns give way first, down to 8 characters.
    if let Some(max) = terminal_width() {
        while widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1) > max {
            let (i, w) = widths.iter().copied().enumerate().max_by_key(|(_, w)| *w).unwrap();
            if w <= 8 {
                break;
            }
            widths[i] = w - 1;
        }
    }
    let fit = |cell: &str, w: usize| -> String {
        if cell.chars().count() <= w {
            cell.to_string()
        } else {
            format!("{}…", cell.chars().take(w.saturating_sub(1)).collect::<String>())
        }
    };
    let rows: Vec<Vec<String>> =
        rows.into_iter().map(|r| r.iter().enumerate().map(|(i, c)| fit(c, widths[i])).collect()).collect();
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
    if format != Format::Table {
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
    if format != Format::Table {
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
    if format != Format::Table {
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
    if format != Format::Table {
        return json(list);
    }
    for e in list {
        println!("{}  {:<5}  {}", rfc3339(e.at_ms), e.level, e.message);
    }
}

pub fn apps(list: &[serde_json::Value], format: Format) {
    if format != Format::Table {
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
    if format != Format::Table {
        return json(a);
    }
    let split: Vec<String> = a["split"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{}={}", s[0].as_str().unwrap_or("?"), s[1]))
        .collect();
    let state = match a["degraded"].as_str() {
        Some(why) => format!("degraded: {why}"),
        None => "ok".to_string(),
    };
    fields(&[
        ("name", a["name"].as_str().unwrap_or_default().to_string()),
        ("state", state),
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

pub fn pipelines(list: &[crate::api::PipelineView], format: Format) {
    if format != Format::Table {
        return json(list);
    }
    let rows = list
        .iter()
        .map(|p| {
            let params: Vec<String> = p.spec.params.iter().map(|(k, v)| format!("--{k} {v}")).collect();
            vec![p.name.clone(), p.spec.strategy.clone(), p.spec.replicas.to_string(), params.join(" ")]
        })
        .collect();
    table(&["PIPELINE", "STRATEGY", "REPLICAS", "FLAGS"], rows);
}

pub fn plugin(p: &PluginView, format: Format) {
    if format != Format::Table {
        return json(p);
    }
    println!("installed {} {} (sha256 {}, {} bytes)", p.name, p.version, p.sha256, p.size);
}

pub fn plugin_details(p: &crate::api::PluginDetails, format: Format) {
    if format != Format::Table {
        return json(p);
    }
    let v = &p.plugin;
    fields(&[
        ("name", v.name.clone()),
        ("version", v.version.clone()),
        ("world", p.world.clone()),
        ("api version", v.api_version.clone()),
        ("enabled", v.enabled.to_string()),
        ("origin", format!("{:?}", v.origin).to_lowercase()),
        ("source", v.source.clone()),
        ("size", format!("{} bytes", v.size)),
        ("sha256", v.sha256.clone()),
        ("description", v.description.clone()),
        ("exports", p.exports.join(", ")),
        ("imports", p.imports.join(", ")),
    ]);
}

pub fn plugins(list: &[PluginView], format: Format) {
    if format != Format::Table {
        return json(list);
    }
    let rows = list
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.clone(),
                format!("{:?}", p.kind).to_lowercase(),
                format!("{:?}", p.origin).to_lowercase(),
                if p.enabled { "enabled".into() } else { "disabled".into() },
                p.sha256[..12].to_string(),
                p.description.clone(),
            ]
        })
        .collect();
    table(&["NAME", "VERSION", "KIND", "ORIGIN", "STATE", "SHA256", "DESCRIPTION"], rows);
}

/// Prints a deployment's traffic figures and comparisons.
pub fn metrics(m: &crate::engine::MetricsView, format: Format) {
    if format != Format::Table {
        return json(m);
    }
    println!("deployment {} ({})", m.deployment_id, m.strategy);
    let rows = m
        .versions
        .iter()
        .map(|v| {
            vec![
                v.version.clone(),
                v.role.clone(),
                v.requests.to_string(),
                format!("{:.2}%", v.error_rate * 100.0),
                format!("{:.1}", v.p50_ms),
                format!("{:.1}", v.p90_ms),
                format!("{:.1}", v.p99_ms),
                format!("{} ({:.2}%)", v.goals, v.goal_rate * 100.0),
            ]
        })
        .collect();
    table(&["VERSION", "ROLE", "REQUESTS", "ERRORS", "P50_MS", "P90_MS", "P99_MS", "GOALS"], rows);
    if !m.comparisons.is_empty() {
        println!();
        let rows = m
            .comparisons
            .iter()
            .map(|c| {
                vec![
                    c.metric.clone(),
                    format!("{} vs {}", c.version, c.baseline),
                    c.test.clone(),
                    format!("{:.3}", c.statistic),
                    format!("{:.4}", c.p),
                    c.verdict.clone(),
                ]
            })
            .collect();
        table(&["METRIC", "COMPARED", "TEST", "STATISTIC", "P", "VERDICT"], rows);
    }
}

/// Prints a diagnosis: the cause first, then the timeline, errors and replicas.
pub fn diagnosis(d: &crate::engine::Diagnosis, format: Format) {
    if format != Format::Table {
        return json(d);
    }
    println!("{}", d.summary);
    let x = &d.deployment;
    println!(
        "strategy {} {} (sha256 {}), {} -> {}, created {}",
        x.plugin.name,
        x.plugin.version,
        &x.plugin.sha256[..12],
        x.previous.as_ref().map(|p| p.version.as_str()).unwrap_or("nothing"),
        x.target_version,
        rfc3339(x.created_at_ms)
    );
    if !d.errors.is_empty() {
        println!("\nerrors:");
        for e in &d.errors {
            println!("  {}  {}", rfc3339(e.at_ms), e.message);
        }
    }
    println!("\ntimeline:");
    for e in &d.timeline {
        println!("  {}  {:<5}  {}", rfc3339(e.at_ms), e.level, e.message);
    }
    println!("\nreplicas of app {} now:", x.app);
    if d.replicas.is_empty() {
        println!("  none");
    }
    for r in &d.replicas {
        let state = if !r.running {
            "exited"
        } else if r.healthy {
            "healthy"
        } else {
            "unhealthy"
        };
        println!(
            "  {} ({}) {} at {}: {}",
            r.record.id,
            r.record.version,
            state,
            r.record.address,
            r.last_probe.as_deref().unwrap_or("not probed yet")
        );
        for line in r.logs.lines() {
            println!("    | {line}");
        }
    }
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
                    kind = if k.trim() == "status" { "status" } else { "event" };
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            match kind {
                "event" => {
                    let Ok(e) = serde_json::from_str::<Event>(&data) else { continue };
                    if format == Format::Table && e.level != "debug" {
                        if bar {
                            print!("\r\x1b[2K");
                        }
                        println!("  {:<5} {}", e.level, e.message);
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
                    if x.status.is_terminal() || x.status == crate::model::Status::AwaitingApproval {
                        if bar {
                            println!();
                        }
                        match format {
                            Format::Json | Format::Yaml => json(&d),
                            Format::Table => println!("{}: {} ({}%)", x.status.as_str(), x.message, x.progress),
                        }
                        let ok = d.successful || x.status == crate::model::Status::AwaitingApproval;
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
    let text: String = message.chars().take(70).collect();
    print!("\r\x1b[2K[{}{}] {percent:>3}%  {text}", "#".repeat(filled), "-".repeat(width - filled));
    let _ = std::io::stdout().flush();
}
