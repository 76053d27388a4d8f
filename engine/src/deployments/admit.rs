//! Admission: a deployment is validated completely — spec, strategy, image, the app's
//! state, the plugin's own `validate` — before anything is recorded or started.

use super::Deployments;
use crate::error::{ErrorCode, Field, UserError};
use crate::model::{App, AppBinding, Deployment, DeploymentSpec, Level, Phase, Release, Status, TlsMode, now_ms};
use crate::store::Transition;
use std::net::SocketAddr;
use std::sync::Arc;

impl Deployments {
    /// Validates and records a deployment without running it.
    pub async fn create(&self, spec: DeploymentSpec) -> Result<Deployment, UserError> {
        let _decisions = self.ground.decisions.lock().await;
        self.admit(spec, None).await
    }

    /// Creates and executes in one go.
    pub async fn deploy(self: &Arc<Self>, spec: DeploymentSpec) -> Result<Deployment, UserError> {
        let _decisions = self.ground.decisions.lock().await;
        let d = self.admit(spec, None).await?;
        self.start_deploy_phase(&d.id).await
    }

    /// Starts running a pending deployment.
    pub async fn execute(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        let _decisions = self.ground.decisions.lock().await;
        self.start_deploy_phase(id).await
    }

    /// Records a deployment. `rollback_of` names a completed deployment whose previous
    /// release this one brings back, under that release's own version label. Everything
    /// is checked before anything changes: the spec, the binding, the strategy, the
    /// runtime and images, the hooks, the app's state, then the plugin's own `validate`.
    pub(super) async fn admit(
        &self,
        mut spec: DeploymentSpec,
        rollback_of: Option<(&Deployment, &Release)>,
    ) -> Result<Deployment, UserError> {
        crate::validate::spec(&spec)?;
        let binding = self.binding_asked(&spec).await?;
        let plugin = self
            .ground
            .plugins
            .usable(&spec.strategy, crate::model::Kind::Strategy)
            .map_err(|why| UserError::invalid(Field::Strategy, why))?;
        let notes = self.check_runtime(&mut spec).await?;
        let pinned_hooks = self.pin_hooks(&spec)?;
        let existing = self.check_app(&spec).await?;
        let mut d = new_record(&spec, existing.as_ref(), rollback_of, plugin.info.clone(), pinned_hooks)?;
        match self.ground.plugins.validate(&plugin, &super::drive::wit_deployment(&d)).await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(UserError::invalid(
                    Field::Params,
                    format!("strategy {} refused the deployment: {message}", plugin.info.name),
                ));
            }
            Err(failure) => return Err(UserError::plugin_failed(&plugin.info, "checking the deployment", &failure)),
        }

        self.record(&mut d, spec, existing.is_none(), binding, rollback_of.is_some(), notes).await?;
        Ok(d)
    }

    /// The runtime the deployment's target runs on, and its images there: the warnings
    /// (what the runtime ignores) for the event log, or why it cannot run.
    async fn check_runtime(&self, spec: &mut DeploymentSpec) -> Result<Vec<String>, UserError> {
        if let Some(target) = &spec.cloud_provider
            && !self.ground.options.targets.contains(target)
        {
            let known = if self.ground.options.targets.is_empty() {
                "none are configured".to_string()
            } else {
                self.ground.options.targets.join(", ")
            };
            return Err(UserError::invalid(
                Field::CloudProvider,
                format!(
                    "no deployment target named `{target}`; the server's configuration has: {known} (add [targets.{target}] to its config file)"
                ),
            ));
        }
        // The target's own Docker endpoint, or the server's runtime.
        let driver = self
            .ground
            .services
            .fleet
            .driver_for(spec.cloud_provider.as_deref())
            .map_err(|why| UserError::invalid(Field::CloudProvider, why))?;
        // Pulls come later, in the deployment's first stage, where they show progress.
        let pull = spec.pull.unwrap_or(self.ground.options.pull);
        if let Some(first) = spec.variants.first() {
            // An A/B test's target is its first variant until a winner is known.
            spec.image = first.image.clone();
            for v in &spec.variants {
                driver
                    .check_image(&v.image, pull)
                    .await
                    .map_err(|e| UserError::invalid(Field::Variants, format!("variant {}: {e:#}", v.name)))?;
            }
        }
        driver.check_image(&spec.image, pull).await.map_err(|e| UserError::invalid(Field::Image, format!("{e:#}")))?;
        let mut notes = driver.unsupported(&spec.resources);
        if let Some(port) = spec.health_check_port.filter(|_| !driver.supports_health_port()) {
            notes.push(format!(
                "the {} runtime probes each replica on the port it serves ($PORT); --health-check-port {port} is ignored",
                driver.name()
            ));
        }
        Ok(notes)
    }

    /// The app as it stands, if it exists, when the deployment may go ahead on it: its
    /// port kept, no deployment under way, the replicas within its quota.
    async fn check_app(&self, spec: &DeploymentSpec) -> Result<Option<App>, UserError> {
        let existing = self.ground.store.app(&spec.app).await?;
        if let Some(app) = &existing {
            if let Some(port) = spec.port.filter(|p| *p != app.port) {
                return Err(UserError::invalid(
                    Field::Port,
                    format!("app `{}` already serves on port {}; its port cannot change to {port}", app.name, app.port),
                ));
            }
            if let Some(active) = self.ground.active_deployment(&app.name).await? {
                return Err(UserError::conflict(
                    ErrorCode::DeploymentInProgress,
                    format!(
                        "app `{}` has deployment {} {}; wait for it to finish, or abort it with `hivemind deployment abort --id {}`",
                        app.name,
                        active.id,
                        active.status.words(),
                        active.id
                    ),
                ));
            }
        } else if let Some(port) = spec.port
            && self.ground.store.apps().await?.iter().any(|a| a.port == port)
        {
            return Err(UserError::invalid(Field::Port, format!("port {port} is used by another app")));
        }

        self.check_quota(spec, existing.as_ref())?;
        Ok(existing)
    }

    /// Writes what admission decided: the app (its port and router, on a first
    /// deployment), its binding and quota, the deployment and its first events.
    async fn record(
        &self,
        d: &mut Deployment,
        mut spec: DeploymentSpec,
        new_app: bool,
        binding: Option<AppBinding>,
        rollback: bool,
        notes: Vec<String>,
    ) -> Result<(), UserError> {
        if new_app {
            let router = &self.ground.services.router;
            let port = match spec.port {
                Some(port) => router
                    .listen(&spec.app, SocketAddr::new(self.ground.options.router_ip, port))
                    .await
                    .map(|()| port)
                    .map_err(|e| UserError::invalid(Field::Port, format!("{e:#}; pick another with --port")))?,
                None => {
                    router.listen_any(&spec.app, self.ground.options.router_ip).await.map_err(UserError::internal)?
                }
            };
            let app = self.ground.store.insert_app(&spec.app, port).await?;
            router.set_preview_key(&spec.app, Some(&app.preview_key));
            self.ground.services.fleet.open(&spec.app);
            spec.port = Some(port);
            d.spec.port = Some(port);
        }
        if let Some(binding) = &binding {
            self.ground.store.set_app_binding(&spec.app, binding).await?;
            self.ground.services.router.set_binding(&spec.app, &binding.route());
            self.ground.services.router.flush().await;
            if binding.tls == TlsMode::Acme {
                self.certificates.want();
            }
        }
        if let Some(quota) = spec.replica_quota {
            self.ground.store.set_app_replica_quota(&spec.app, quota).await?;
            self.ground.services.fleet.set_quota(&spec.app, Some(quota));
        }
        if !rollback && spec.variants.is_empty() {
            d.target_version = format!("r{}", self.ground.store.next_release_number(&spec.app).await?);
        }
        self.ground.store.insert_deployment(d).await?;
        let replacing =
            d.previous.as_ref().map(|p| format!(", replacing {} ({})", p.version, p.image)).unwrap_or_default();
        let what = match &d.rollback_of {
            Some(of) => format!("rollback of {of}: bring back {}", d.target_version),
            None => format!("{} of app {}", d.target_version, d.app),
        };
        let message = format!(
            "created: {what} with strategy {} {} (sha256 {}){replacing}",
            d.plugin.name,
            d.plugin.version,
            &d.plugin.sha256[..12]
        );
        self.ground.store.event(&d.id, Level::Info, &message).await?;
        for note in notes {
            self.ground.store.event(&d.id, Level::Warn, &note).await?;
        }
        Ok(())
    }

    /// A deployment must fit its app's replica quota (`--replica-quota`, or the server's
    /// default share) and the host's limit.
    fn check_quota(&self, spec: &DeploymentSpec, existing: Option<&crate::model::App>) -> Result<(), UserError> {
        let fleet = &self.ground.services.fleet;
        if let Some(quota) = spec.replica_quota
            && !(1..=fleet.max_replicas()).contains(&quota)
        {
            return Err(UserError::invalid(
                Field::ReplicaQuota,
                format!(
                    "replica quota must be 1 to the server's --max-replicas, {} (got {quota})",
                    fleet.max_replicas()
                ),
            ));
        }
        let quota = spec.replica_quota.or(existing.and_then(|a| a.replica_quota)).unwrap_or(fleet.default_quota());
        if spec.replicas > quota {
            return Err(UserError::invalid(
                Field::Replicas,
                format!(
                    "{} replicas is more than app `{}` may run: its replica quota is {quota} (the server gives each app {} unless told otherwise); raise it with --replica-quota, up to the server's --max-replicas, {}",
                    spec.replicas,
                    spec.app,
                    fleet.default_quota(),
                    fleet.max_replicas()
                ),
            ));
        }
        Ok(())
    }

    pub(super) async fn start_deploy_phase(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        let d = self.ground.deployment(id).await?;
        if d.status != Status::Pending {
            return Err(UserError::conflict(
                ErrorCode::NotPending,
                format!("deployment {id} is {}; only a pending deployment can be executed", d.status.words()),
            ));
        }
        if let Some(active) = self.ground.active_deployment(&d.app).await? {
            return Err(UserError::conflict(
                ErrorCode::DeploymentInProgress,
                format!(
                    "app `{}` has deployment {} {}; wait for it to finish",
                    d.app,
                    active.id,
                    active.status.words()
                ),
            ));
        }
        self.ground.checks.lock().unwrap().insert(d.app.clone(), super::drive::check_of(&d.spec));
        let message = format!("deploying {} with strategy {}", d.target_version, d.plugin.name);
        let to = Transition {
            phase: Some(Phase::Deploy),
            touch_progress: true,
            ..Transition::to(Status::InProgress, &message)
        };
        self.ground.store.transition(id, to).await?;
        self.spawn_drive(id.into());
        self.ground.deployment(id).await
    }
}

impl Deployments {
    /// How a deployment binds its app to the entrypoints, checked, or None when it leaves
    /// the binding as it is. A host and prefix another app is bound to is refused.
    async fn binding_asked(&self, spec: &DeploymentSpec) -> Result<Option<AppBinding>, UserError> {
        if spec.hosts.is_empty()
            && spec.path_prefix.is_none()
            && spec.tls.is_none()
            && spec.redirect_https.is_none()
            && spec.backend_protocol.is_none()
        {
            return Ok(None);
        }
        let current = self.ground.store.app(&spec.app).await?;
        let mut binding = current.as_ref().map(AppBinding::of).unwrap_or(AppBinding {
            hosts: Vec::new(),
            path_prefix: "/".to_string(),
            tls: TlsMode::Manual,
            redirect_https: false,
            backend_protocol: Default::default(),
        });
        if !spec.hosts.is_empty() {
            binding.hosts.clear();
            for host in &spec.hosts {
                let host =
                    crate::router::check_host(host).map_err(|e| UserError::invalid(Field::Hosts, format!("{e:#}")))?;
                if !binding.hosts.contains(&host) {
                    binding.hosts.push(host);
                }
            }
        }
        if let Some(prefix) = &spec.path_prefix {
            binding.path_prefix = crate::router::check_path_prefix(prefix)
                .map_err(|e| UserError::invalid(Field::PathPrefix, format!("{e:#}")))?;
        }
        binding.tls = spec.tls.unwrap_or(binding.tls);
        binding.redirect_https = spec.redirect_https.unwrap_or(binding.redirect_https);
        binding.backend_protocol = spec.backend_protocol.unwrap_or(binding.backend_protocol);
        if binding.tls == TlsMode::Acme {
            if !self.certificates.has_acme() {
                return Err(UserError::invalid(
                    Field::Tls,
                    "--tls acme needs a server started with --acme-directory URL (and --acme-email); or add certificates with `hivemind cert add` and use --tls manual",
                ));
            }
            if binding.hosts.is_empty() {
                return Err(UserError::invalid(
                    Field::Tls,
                    "--tls acme needs the host names to certify: add --host NAME",
                ));
            }
        }
        for other in self.ground.store.apps().await? {
            if other.name == spec.app || other.path_prefix != binding.path_prefix {
                continue;
            }
            if let Some(taken) = binding.hosts.iter().find(|h| other.hosts.contains(h)) {
                return Err(UserError::conflict(
                    ErrorCode::HostTaken,
                    format!(
                        "host {taken} (path prefix {}) is already bound to app {}; bind this app under another --path-prefix, or give app {} other --host names first",
                        binding.path_prefix, other.name, other.name
                    ),
                ));
            }
        }
        Ok(Some(binding))
    }
}

/// The deployment as admission records it, pending: its release label (a rollback keeps
/// the release's own, an A/B test is named by its first variant, else the app's next
/// `rN`), the release it replaces, the plugin and hooks it is pinned to.
fn new_record(
    spec: &DeploymentSpec,
    existing: Option<&App>,
    rollback_of: Option<(&Deployment, &Release)>,
    plugin: crate::model::PluginRef,
    pinned_hooks: std::collections::BTreeMap<String, crate::model::PluginRef>,
) -> Result<Deployment, UserError> {
    let previous = existing.and_then(|a| a.release.clone());
    let target_version = match (rollback_of, spec.variants.first()) {
        (Some((_, release)), _) => release.version.clone(),
        (None, Some(first)) => first.name.clone(),
        (None, None) => format!("r{}", existing.map(|a| a.release_counter).unwrap_or(0) + 1),
    };
    if let (Some(previous), false) = (&existing.and_then(|a| a.release.clone()), spec.variants.is_empty())
        && spec.variants.iter().any(|v| v.name == previous.version)
    {
        return Err(UserError::invalid(
            Field::Variants,
            format!("variant name `{}` is the version that serves now; give the variants new names", previous.version),
        ));
    }
    let now = now_ms();
    Ok(Deployment {
        id: format!("dep-{:08x}", fastrand::u32(..)).into(),
        name: spec.name.clone().unwrap_or_else(|| spec.app.to_string()),
        app: spec.app.clone(),
        strategy: spec.strategy.clone(),
        spec: spec.clone(),
        target_version,
        previous,
        status: Status::Pending,
        phase: Phase::Deploy,
        progress: 0,
        message: "created".into(),
        error: None,
        plugin,
        attempt: 0,
        phase_started_at_ms: now,
        rollback_kind: None,
        promoted: false,
        promotions: 0,
        rollback_of: rollback_of.map(|(d, _)| d.id.clone()),
        last_progress_at_ms: now,
        winner: None,
        hook_runs: crate::model::HookRuns { pinned: pinned_hooks, done: Vec::new() },
        // A rollback brings back what its release ran (its pin, or the image as named
        // for a release without one), never what the tag names today.
        images: rollback_of.map(|(_, r)| (r.image.clone(), r.runs().to_string())).into_iter().collect(),
        created_at_ms: now,
        updated_at_ms: now,
    })
}
