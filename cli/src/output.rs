//! How the CLI prints: aligned tables for people, JSON for scripts.

use crate::api_types::{
    AppView, DeploymentView, Diagnosis, MetricsView, PipelineView, PluginDetails, PluginView, StatusView,
};
use crate::escape::{escaped, say};
use crate::model::{AppEvent, Event, rfc3339};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints a value as JSON or YAML, as `format` says (a table is the caller's to print).
pub fn json<T: Serialize + ?Sized>(value: &T, format: Format) {
    match format {
        Format::Yaml => {
            print!("{}", escaped(&crate::yaml::to_yaml(&serde_json::to_value(value).unwrap_or_default(), 0)))
        }
        _ => say!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
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
        say!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        say!("{k:<width$}  {v}");
    }
}

pub fn deployment(d: &DeploymentView, format: Format) {
    if format != Format::Table {
        return json(d, format);
    }
    let x = &d.deployment;
    fields(&[
        ("id", x.id.to_string()),
        ("name", x.name.clone()),
        ("app", x.app.to_string()),
        ("image", x.spec.image.clone()),
        ("pinned", pins(&x.images)),
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

/// What a deployment's images were pinned to: the digest alone for one image, each
/// image's for several; "-" before they are pulled (or with nothing to pin).
fn pins(images: &std::collections::BTreeMap<String, String>) -> String {
    let pinned: Vec<(&String, &String)> = images.iter().filter(|(asked, pin)| asked != pin).collect();
    match pinned.as_slice() {
        [] => "-".into(),
        [(_, pin)] => pin.to_string(),
        many => many.iter().map(|(asked, pin)| format!("{asked} → {pin}")).collect::<Vec<_>>().join(", "),
    }
}

pub fn deployments(list: &[DeploymentView], format: Format) {
    if format != Format::Table {
        return json(list, format);
    }
    let rows = list
        .iter()
        .map(|d| {
            let x = &d.deployment;
            vec![
                x.id.to_string(),
                x.app.to_string(),
                x.target_version.clone(),
                x.strategy.to_string(),
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
        return json(s, format);
    }
    fields(&[
        ("id", s.id.to_string()),
        ("app", s.app.to_string()),
        ("status", s.status.as_str().to_string()),
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
        return json(list, format);
    }
    for e in list {
        say!("{}  {:<5}  {}", rfc3339(e.at_ms), e.level, e.message);
    }
}

pub fn app_events(list: &[AppEvent], format: Format) {
    if format != Format::Table {
        return json(list, format);
    }
    for e in list {
        say!("{}  {:<5}  {}", rfc3339(e.at_ms), e.level, e.message);
    }
}

pub fn apps(list: &[AppView], format: Format) {
    if format != Format::Table {
        return json(list, format);
    }
    let rows = list
        .iter()
        .map(|a| {
            let healthy = a.replicas.iter().filter(|r| r.healthy).count();
            vec![
                a.app.name.to_string(),
                a.app.port.to_string(),
                a.app.release.as_ref().map_or("-".into(), |r| r.version.clone()),
                a.app.release.as_ref().map_or("-".into(), |r| r.image.clone()),
                format!("{healthy}/{}", a.replicas.len()),
                if a.app.degraded.is_some() {
                    "degraded".into()
                } else if !a.crash_looping.is_empty() {
                    "crash_looping".into()
                } else {
                    "ok".into()
                },
            ]
        })
        .collect();
    table(&["NAME", "PORT", "RELEASE", "IMAGE", "HEALTHY", "STATE"], rows);
}

pub fn app(a: &AppView, format: Format) {
    if format != Format::Table {
        return json(a, format);
    }
    let x = &a.app;
    let split: Vec<String> = x.split.iter().map(|(v, w)| format!("{v}={w}")).collect();
    fields(&[
        ("name", x.name.to_string()),
        ("state", x.degraded.as_ref().map_or("ok".into(), |why| format!("degraded: {why}"))),
        ("port", x.port.to_string()),
        (
            "hosts",
            if x.hosts.is_empty() {
                "-".into()
            } else {
                format!("{} (path prefix {})", x.hosts.join(", "), x.path_prefix)
            },
        ),
        (
            "tls",
            format!("{:?}{}", x.tls, if x.redirect_https { ", plain HTTP redirected to HTTPS" } else { "" })
                .to_lowercase(),
        ),
        ("release", x.release.as_ref().map_or("-".into(), |r| r.version.clone())),
        ("image", x.release.as_ref().map_or("-".into(), |r| r.image.clone())),
        ("pinned", x.release.as_ref().and_then(|r| r.pinned.clone()).unwrap_or_else(|| "-".into())),
        ("split", if split.is_empty() { "-".into() } else { split.join(", ") }),
        ("replica quota", x.replica_quota.map_or("the server's share".into(), |q| q.to_string())),
    ]);
    for c in &a.crash_looping {
        say!(
            "crash_looping: a replica of {} died {} times in a row ({}); next start in {:.0} s",
            c.version,
            c.restarts,
            c.last_exit.as_deref().unwrap_or("how is unknown"),
            c.next_restart_in_ms as f64 / 1000.0
        );
        for line in c.last_logs.lines() {
            say!("  | {line}");
        }
    }
    say!();
    let rows = a
        .replicas
        .iter()
        .map(|r| {
            vec![
                r.record.id.clone(),
                r.record.version.clone(),
                r.record.address.clone(),
                if r.healthy { "healthy".into() } else { "unhealthy".into() },
            ]
        })
        .collect();
    table(&["REPLICA", "VERSION", "ADDRESS", "HEALTH"], rows);
}

pub fn pipelines(list: &[PipelineView], format: Format) {
    if format != Format::Table {
        return json(list, format);
    }
    let rows = list
        .iter()
        .map(|p| {
            let params: Vec<String> = p.spec.params.iter().map(|(k, v)| format!("--{k} {v}")).collect();
            vec![p.name.clone(), p.spec.strategy.to_string(), p.spec.replicas.to_string(), params.join(" ")]
        })
        .collect();
    table(&["PIPELINE", "STRATEGY", "REPLICAS", "FLAGS"], rows);
}

pub fn certs(list: &[crate::api_types::CertInfo], format: Format) {
    if format != Format::Table {
        return json(list, format);
    }
    let date = |s: i64| crate::model::rfc3339(s * 1000);
    let rows =
        list.iter().map(|c| vec![c.host.clone(), date(c.not_after_s), c.names.join(", "), c.issuer.clone()]).collect();
    table(&["HOST", "EXPIRES", "NAMES", "ISSUER"], rows);
}

pub fn registries(list: &[crate::api_types::RegistryView], format: Format) {
    if format != Format::Table {
        return json(list, format);
    }
    let rows = list.iter().map(|r| vec![r.registry.clone(), r.username.clone(), r.source.clone()]).collect();
    table(&["REGISTRY", "USERNAME", "FROM"], rows);
}

pub fn plugin(p: &PluginView, format: Format) {
    if format != Format::Table {
        return json(p, format);
    }
    say!("installed {} {} (sha256 {}, {} bytes), {}", p.name, p.version, p.sha256, p.size, signer(p));
    say!("granted: {}", granted(p));
}

/// What a plugin was granted, and what it asks for and was not given.
fn granted(p: &PluginView) -> String {
    let given = if p.grants.is_empty() { "nothing".to_string() } else { p.grants.to_list().replace(',', ", ") };
    let list = p.grants.to_list();
    let missing: Vec<&str> = p
        .asks_for
        .iter()
        .map(String::as_str)
        .filter(|c| !list.split(',').any(|g| g.split(':').next() == Some(*c)))
        .collect();
    match missing.is_empty() {
        true => given,
        false => format!(
            "{given} (it can ask for {}, which it was not granted: its calls will be denied; --allow grants them)",
            missing.join(", ")
        ),
    }
}

/// Who signed a plugin, in a table's column.
fn signed_by(p: &PluginView) -> String {
    match (&p.signature, p.origin) {
        (_, crate::model::Origin::Builtin) => "built in".into(),
        (None, _) => "unsigned".into(),
        (Some(s), _) if s.verified => s.key_id.clone(),
        (Some(s), _) => format!("{} (untrusted)", s.key_id),
    }
}

/// Who signed a plugin, in words.
fn signer(p: &PluginView) -> String {
    match (&p.signature, p.origin) {
        (_, crate::model::Origin::Builtin) => "built in".into(),
        (None, _) => "unsigned".into(),
        (Some(s), _) => match &s.trusted_key {
            Some(file) => format!("signed by key ID {} (trusted key {file})", s.key_id),
            None => format!("signed by key ID {}, which this server does not trust: not verified", s.key_id),
        },
    }
}

pub fn plugin_details(p: &PluginDetails, format: Format) {
    if format != Format::Table {
        return json(p, format);
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
        ("signature", signer(v)),
        ("granted", granted(v)),
        (
            "signed comment",
            match &v.signature {
                Some(s) if s.verified => s.comment.clone(),
                Some(s) => format!("{} (unverified: the key is not trusted here)", s.comment),
                None => "—".into(),
            },
        ),
        ("description", v.description.clone()),
        ("exports", p.exports.join(", ")),
        ("imports", p.imports.join(", ")),
    ]);
}

pub fn plugins(list: &[PluginView], format: Format) {
    if format != Format::Table {
        return json(list, format);
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
                signed_by(p),
                p.description.clone(),
            ]
        })
        .collect();
    table(&["NAME", "VERSION", "KIND", "ORIGIN", "STATE", "SHA256", "SIGNED BY", "DESCRIPTION"], rows);
}

/// Prints a deployment's traffic figures and comparisons.
pub fn metrics(m: &MetricsView, format: Format) {
    if format != Format::Table {
        return json(m, format);
    }
    say!("deployment {} ({})", m.deployment_id, m.strategy);
    let rows = m
        .versions
        .iter()
        .map(|v| {
            vec![
                v.version.clone(),
                v.role.to_string(),
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
        say!();
        let rows = m
            .comparisons
            .iter()
            .map(|c| {
                vec![
                    c.metric.to_string(),
                    format!("{} vs {}", c.version, c.baseline),
                    c.test.to_string(),
                    format!("{:.3}", c.statistic),
                    format!("{:.4}", c.p),
                    c.verdict_words().to_string(),
                ]
            })
            .collect();
        table(&["METRIC", "COMPARED", "TEST", "STATISTIC", "P", "VERDICT"], rows);
    }
}

/// Prints a diagnosis: the cause first, then the timeline, errors and replicas.
pub fn diagnosis(d: &Diagnosis, format: Format) {
    if format != Format::Table {
        return json(d, format);
    }
    say!("{}", d.summary);
    let x = &d.deployment;
    say!(
        "strategy {} {} (sha256 {}), {} -> {}, created {}",
        x.plugin.name,
        x.plugin.version,
        &x.plugin.sha256[..12],
        x.previous.as_ref().map(|p| p.version.as_str()).unwrap_or("nothing"),
        x.target_version,
        rfc3339(x.created_at_ms)
    );
    if !d.errors.is_empty() {
        say!("\nerrors:");
        for e in &d.errors {
            say!("  {}  {}", rfc3339(e.at_ms), e.message);
        }
    }
    say!("\ntimeline:");
    for e in &d.timeline {
        say!("  {}  {:<5}  {}", rfc3339(e.at_ms), e.level, e.message);
    }
    say!("\nreplicas of app {} now:", x.app);
    if d.replicas.is_empty() {
        say!("  none");
    }
    for r in &d.replicas {
        let state = if !r.running {
            "exited"
        } else if r.healthy {
            "healthy"
        } else {
            "unhealthy"
        };
        say!(
            "  {} ({}) {} at {}: {}",
            r.record.id,
            r.record.version,
            state,
            r.record.address,
            r.last_probe.as_deref().unwrap_or("not probed yet")
        );
        for line in r.logs.lines() {
            say!("    | {line}");
        }
    }
}

pub fn cluster(c: &crate::api_types::ClusterView, format: Format) {
    if format != Format::Table {
        return json(c, format);
    }
    let leader = match (&c.leader, &c.leader_since) {
        (Some(name), Some(since)) => format!("{name} since {since}"),
        _ => "none (a failover is under way, or no server runs)".into(),
    };
    fields(&[
        ("database", c.database.clone()),
        ("leader", leader),
        ("epoch", c.epoch.to_string()),
        (
            "lease",
            format!(
                "{} ms{}",
                c.lease_ms,
                c.lease_expires_in_ms.map(|ms| format!(", {ms} ms left")).unwrap_or_default()
            ),
        ),
        ("failovers", c.failovers.to_string()),
        ("answered by", c.this_server.clone()),
    ]);
    say!();
    let rows = c
        .servers
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.role.clone(),
                s.api_url.clone(),
                s.started_at.clone(),
                format!("{} ms ago", s.seen_ms_ago),
            ]
        })
        .collect();
    table(&["SERVER", "ROLE", "API", "STARTED", "SEEN"], rows);
}

/// `plugin test`: each scenario's verdict, figures and timeline.
pub fn simulation(report: &hivemind_model::simulation::Report, format: Format, brief: bool) {
    use hivemind_model::simulation::duration;
    if format != Format::Table {
        return json(report, format);
    }
    let passed = report.scenarios.iter().filter(|s| s.passed).count();
    say!(
        "{} {}: {} scenarios in {} (wall clock){}",
        report.plugin,
        report.version,
        report.scenarios.len(),
        duration(report.wall_ms),
        if report.variants.is_empty() {
            String::new()
        } else {
            format!(", run as an A/B test of {}", report.variants.join(" and "))
        }
    );
    for s in &report.scenarios {
        let failed_share = if s.requests == 0 { 0.0 } else { s.failed_requests as f64 * 100.0 / s.requests as f64 };
        say!();
        say!("{} {}: {}", if s.passed { "✓" } else { "✗" }, s.name, s.verdict);
        say!("  expected: {}", s.expected);
        say!(
            "  {} simulated, {} steps, {} requests, {} failed ({failed_share:.1}%)",
            duration(s.simulated_ms),
            s.steps,
            s.requests,
            s.failed_requests
        );
        if brief {
            continue;
        }
        // The first and last lines of a long timeline.
        const SHOWN: usize = 16;
        let lines = &s.timeline;
        for (i, (at, line)) in lines.iter().enumerate() {
            if lines.len() > 2 * SHOWN && i == SHOWN {
                say!("    {:>9}  … {} more lines …", "", lines.len() - 2 * SHOWN);
            }
            if lines.len() > 2 * SHOWN && (SHOWN..lines.len() - SHOWN).contains(&i) {
                continue;
            }
            say!("    {:>9}  {line}", format!("+{}", duration(*at)));
        }
    }
    say!();
    say!("{passed} of {} scenarios ended as they should", report.scenarios.len());
}
