//! The image stage: before anything runs a deployment's images, each is pulled (as
//! `--pull` says) on the runtime of the deployment's target and pinned to what the
//! engine then holds. The pins are recorded with the deployment, so that every replica
//! of the release runs that content, whatever its tag names later.

use super::Deployments;
use crate::model::{Deployment, Level};
use crate::runtime::PullProgress;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often a pull under way says how far it is in the event log, after its first
/// line (the deployment's message, which the CLI's bar shows, follows every report).
const REPORT_EVERY: Duration = Duration::from_secs(5);

impl Deployments {
    /// Pulls and pins every image of `d` not pinned yet, and records the pins with
    /// events that say what each image resolved to. Returns why an image could not be
    /// made ready: the deployment then stops before anything changed. A user who pauses
    /// or aborts meanwhile (`wake`) stops the pull; a store that fails is waited out by
    /// the step loop, which pulls again.
    pub(super) async fn pull_images(&self, d: &Deployment, wake: &Notify) -> anyhow::Result<Result<(), String>> {
        let driver = match self.ground.services.fleet.driver_for(d.spec.cloud_provider.as_deref()) {
            Ok(driver) => driver.clone(),
            Err(why) => return Ok(Err(why)),
        };
        let policy = d.spec.pull.unwrap_or(self.ground.options.pull);
        let mut images = d.images.clone();
        let mut events = Vec::new();
        for image in d.images_asked() {
            if images.contains_key(image) {
                continue;
            }
            let (tx, mut rx) = tokio::sync::watch::channel(None::<PullProgress>);
            let report = move |p: &PullProgress| {
                let _ = tx.send(Some(p.clone()));
            };
            let prepare = driver.prepare_image(image, policy, &report);
            tokio::pin!(prepare);
            let began = Instant::now();
            let mut reported: Option<Instant> = None;
            let prepared = loop {
                tokio::select! {
                    prepared = &mut prepare => break prepared,
                    _ = wake.notified() => {
                        if !self.unchanged(d).await? {
                            return Ok(Ok(()));
                        }
                    }
                    Ok(()) = rx.changed() => {
                        let Some(progress) = rx.borrow_and_update().clone() else { continue };
                        let message = format!("pulling {image}: {progress}");
                        let due = reported.is_none_or(|at| at.elapsed() >= REPORT_EVERY);
                        if due {
                            reported = Some(Instant::now());
                        }
                        // The pull goes on if the store misses a report of it.
                        if let Err(e) = self.report_pull(d, &message, due).await {
                            tracing::debug!(deployment = %d.id, "a pull's progress was not recorded: {e:#}");
                        }
                    }
                }
            };
            let pinned = match prepared {
                Ok(pinned) => pinned,
                // The store, asked for a login, is down: waited out, not a failure.
                Err(e) if crate::error::store_unavailable(&e).is_some() => return Err(e),
                Err(e) => {
                    if policy != crate::model::PullPolicy::Never {
                        self.ground.counts.pull(false, began.elapsed().as_secs_f64());
                    }
                    return Ok(Err(format!("{e:#}")));
                }
            };
            if let Some((seconds, bytes)) = pinned.pulled {
                self.ground.counts.pull(true, seconds);
                let mb = bytes as f64 / 1e6;
                events.push(format!(
                    "pulled {image} in {seconds:.1} s ({mb:.0} MB, {:.1} MB/s)",
                    mb / seconds.max(0.001)
                ));
            }
            match (&pinned.digest, pinned.reference.strip_prefix("sha256:")) {
                (Some(digest), _) => events.push(format!("{image} resolved to {digest}")),
                (None, Some(id)) => events.push(format!(
                    "{image} has no registry digest in the engine: pinned to its image id sha256:{}",
                    &id[..id.len().min(12)]
                )),
                (None, None) => {}
            }
            images.insert(image.to_string(), pinned.reference);
        }
        self.ground.store.set_images(&d.id, &images, &events).await?;
        Ok(Ok(()))
    }

    /// A pull's progress: the deployment's message (which counts as progress for its
    /// deadline), and an event when `event` says one is due.
    async fn report_pull(&self, d: &Deployment, message: &str, event: bool) -> anyhow::Result<()> {
        self.ground.store.set_message(&d.id, message).await?;
        if event {
            self.ground.store.event(&d.id, Level::Info, message).await?;
        }
        Ok(())
    }
}
