//! `webhook`: Flagger's webhooks. POSTs a JSON description of the deployment and the
//! stage to the URL given as the hook's argument, and passes on a 2xx answer.
//!
//! `--pre-hook webhook:http://127.0.0.1:9000/check` selects it. The host lets it reach
//! only the hosts on the server's allowlist (`--hook-allowed-hosts`).

use hivemind_sdk::prelude::*;
use serde_json::json;

struct Webhook;

/// The host stops the request at the hook's own timeout (`--hook-timeout`).
const NO_LIMIT_MS: u32 = u32::MAX;

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Pre => "pre",
        Stage::Verify => "verify",
        Stage::Post => "post",
        Stage::Rollback => "rollback",
    }
}

fn release(r: &hivemind_sdk::Release) -> serde_json::Value {
    json!({ "version": r.version, "image": r.image, "replicas": r.replicas })
}

impl Hook for Webhook {
    const NAME: &'static str = "webhook";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str = "POST the deployment and stage as JSON to a URL; pass on a 2xx";

    fn run(d: &Deployment, stage: Stage, argument: &str) -> Result<String> {
        let url = argument.trim();
        if !url.starts_with("http://") {
            return Err(Error(format!(
                "the webhook hook needs an http:// URL, as in --pre-hook webhook:http://127.0.0.1:9000/check; got `{url}`"
            )));
        }
        let body = json!({
            "deployment": d.id,
            "app": d.app,
            "stage": stage_name(stage),
            "target": release(&d.target),
            "previous": d.previous.as_ref().map(release),
            "variants": d.variants.iter().map(|v| json!({ "name": v.release.version, "image": v.release.image, "percentage": v.percentage })).collect::<Vec<_>>(),
            "params": d.params.iter().cloned().collect::<std::collections::BTreeMap<String, String>>(),
        });
        let answer = http::post_json(url, &body.to_string(), NO_LIMIT_MS)?;
        let text = answer.body.trim();
        let shown: String = if text.is_empty() { "(empty body)".into() } else { text.chars().take(500).collect() };
        if (200..300).contains(&answer.status) {
            Ok(format!("POST {url} answered {}: {shown}", answer.status))
        } else {
            Err(Error(format!("POST {url} answered {}: {shown}", answer.status)))
        }
    }
}

hivemind_sdk::export_hook!(Webhook);
