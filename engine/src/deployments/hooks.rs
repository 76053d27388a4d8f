//! Deployment hooks: which hook components a deployment's `--pre-hook` and friends name
//! (checked and pinned at admission), and running a stage's hooks in their sandboxes,
//! each with its timeout and retries, recording what they said.

use super::Deployments;
use crate::error::{Field, UserError};
use crate::model::Kind;
use crate::model::{Deployment, DeploymentSpec, HookRef, HookRuns, HookStage, Level, PluginRef};
use crate::plugins::{HookCaps, Scope, Stage};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The longest a hook may be given, and the most retries.
const MAX_HOOK_TIMEOUT_S: u32 = 3600;
const MAX_HOOK_RETRIES: u32 = 10;

impl Deployments {
    /// Checks every hook of `spec` and pins the components they run. Nothing changes if
    /// one is wrong: the error names the stage and says what to write instead.
    pub(super) fn pin_hooks(&self, spec: &DeploymentSpec) -> Result<BTreeMap<String, PluginRef>, UserError> {
        let hooks = &spec.hooks;
        if hooks.timeout == 0 || hooks.timeout > MAX_HOOK_TIMEOUT_S {
            return Err(UserError::invalid(
                Field::HooksTimeout,
                format!("hook timeout {} s must be from 1 to {MAX_HOOK_TIMEOUT_S} seconds", hooks.timeout),
            ));
        }
        if hooks.retries > MAX_HOOK_RETRIES {
            return Err(UserError::invalid(
                Field::HooksRetries,
                format!("hook retries {} must be from 0 to {MAX_HOOK_RETRIES}", hooks.retries),
            ));
        }
        let mut pinned = BTreeMap::new();
        for stage in HookStage::ALL {
            let field = Field::hook(stage);
            for text in hooks.of(stage) {
                let hook = HookRef::parse(text).map_err(|e| UserError::invalid(field, e))?;
                let plugin = self
                    .ground
                    .plugins
                    .usable(&hook.plugin, Kind::Hook)
                    .map_err(|why| UserError::invalid(field, format!("{} hook `{text}`: {why}", stage.as_str())))?;
                if let Some(version) = hook.version.as_ref().filter(|v| **v != plugin.info.version) {
                    return Err(UserError::invalid(
                        field,
                        format!(
                            "{} hook `{text}`: plugin {} is installed at version {}, not {version}",
                            stage.as_str(),
                            plugin.info.name,
                            plugin.info.version
                        ),
                    ));
                }
                if hook.plugin == "webhook" {
                    // Refused before anything runs; the host checks every request again,
                    // whoever makes it.
                    self.ground.services.hook_hosts.check(&hook.argument).map_err(|why| {
                        UserError::invalid(field, format!("{} webhook `{}`: {why}", stage.as_str(), hook.argument))
                    })?;
                }
                pinned.insert(plugin.info.name.clone(), plugin.info.clone());
            }
        }
        Ok(pinned)
    }

    /// Runs the hooks of `stage` one after another, each tried up to 1 + retries times,
    /// and records that the stage ran with what each hook said. Returns the first
    /// failure, which stops the stage. A stage that already ran is not run again.
    pub(super) async fn run_hooks(&self, d: &Deployment, stage: HookStage) -> anyhow::Result<Result<(), String>> {
        let hooks = d.spec.hooks.of(stage);
        if hooks.is_empty() || d.hook_runs.ran(stage) {
            return Ok(Ok(()));
        }
        let mut events = Vec::new();
        let mut verdict = Ok(());
        for text in hooks {
            let outcome = self.run_hook(d, stage, text, &mut events).await;
            if let Err(reason) = outcome {
                verdict = Err(format!("{} hook `{text}` failed: {reason}", stage.as_str()));
                break;
            }
        }
        // A job may print its environment: its secrets are shown as `***`.
        let mask = |text: &str| {
            let masked = crate::model::masked(text, d.secret_values());
            crate::model::without_userinfo(&masked).into_owned()
        };
        let events: Vec<(Level, String)> = events.into_iter().map(|(level, text)| (level, mask(&text))).collect();
        let mut runs: HookRuns = d.hook_runs.clone();
        runs.done.push(stage);
        self.ground.store.record_hooks(&d.id, &runs, &events).await?;
        Ok(verdict.map_err(|why| mask(&why)))
    }

    /// One hook, with its retries. Its log lines and verdicts go to `events`.
    async fn run_hook(
        &self,
        d: &Deployment,
        stage: HookStage,
        text: &str,
        events: &mut Vec<(Level, String)>,
    ) -> Result<String, String> {
        let hook = HookRef::parse(text)?;
        let pinned = d
            .hook_runs
            .pinned
            .get(&hook.plugin)
            .ok_or_else(|| format!("hook plugin {} was not pinned", hook.plugin))?;
        let plugin = self.ground.plugins.pinned(&pinned.sha256).ok_or_else(|| {
            format!(
                "hook plugin {} {} (sha256 {}) that this deployment is pinned to is not loaded; install it again",
                pinned.name,
                pinned.version,
                &pinned.sha256[..12]
            )
        })?;
        let timeout = Duration::from_secs(d.spec.hooks.timeout as u64);
        let tries = d.spec.hooks.retries + 1;
        let mut deployment = super::drive::wit_deployment(d);
        // A verify hook tries the new release on its preview route: it gets the app's
        // preview key (the parameter `preview-key`; a webhook finds it in `params`).
        if stage == HookStage::Verify
            && let Ok(Some(key)) = self.ground.store.preview_key(&d.app).await
        {
            deployment.params.push(("preview-key".into(), key));
        }
        let mut last = String::new();
        for attempt in 1..=tries {
            let caps = HookCaps {
                scope: Scope::of(d, self.ground.services.clone()),
                timeout,
                deadline: Instant::now() + timeout,
                log: Vec::new(),
                // Filled in from the plugin by `run_hook`.
                plugin: String::new(),
                grants: Default::default(),
            };
            let started = Instant::now();
            let (verdict, caps) = self
                .ground
                .plugins
                .run_hook(&plugin, caps, &deployment, wit_stage(stage), &hook.argument, timeout)
                .await;
            for (level, line) in caps.log {
                events.push((level, format!("{} hook `{text}`: {line}", stage.as_str())));
            }
            let took = format!("{:.1} s", started.elapsed().as_secs_f64());
            let of = if tries > 1 { format!(" (try {attempt} of {tries})") } else { String::new() };
            match verdict {
                Ok(output) => {
                    events.push((
                        Level::Info,
                        format!("{} hook `{text}` passed in {took}{of}: {output}", stage.as_str()),
                    ));
                    return Ok(output);
                }
                Err(reason) => {
                    events.push((
                        Level::Error,
                        format!("{} hook `{text}` failed after {took}{of}: {reason}", stage.as_str()),
                    ));
                    last = reason;
                }
            }
        }
        Err(last)
    }
}

fn wit_stage(stage: HookStage) -> Stage {
    match stage {
        HookStage::Pre => Stage::Pre,
        HookStage::Verify => Stage::Verify,
        HookStage::Post => Stage::Post,
        HookStage::Rollback => Stage::Rollback,
    }
}
