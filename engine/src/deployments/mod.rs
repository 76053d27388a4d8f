//! The engine's deployments service: admits a deployment (`admit`), drives it by calling
//! its strategy's `step` until it ends (`drive`, over `machine`), takes the user's
//! controls between steps (`control`), pulls and pins its images (`images`), runs its
//! hooks (`hooks`), and restores the
//! previous release itself when a rollback fails (`restore`). It also keeps the CI
//! pipelines' deployment profiles.

mod admit;
mod control;
mod drive;
mod hooks;
mod images;
mod restore;

pub use drive::{check_of, machine_outcome, step_context};

use super::{Certificates, Ground};
use crate::error::{Field, UserError};
use crate::model::{Deployment, Event};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub struct Deployments {
    pub(super) ground: Arc<Ground>,
    /// Deployments whose step loop runs in this process, with the handle that wakes
    /// the loop from its sleep when a user acts on the deployment.
    pub(super) driving: Mutex<HashMap<crate::model::DeploymentId, Arc<Notify>>>,
    /// An app deployed with `--tls acme` asks the keeper for certificates.
    pub(super) certificates: Arc<Certificates>,
}

impl Deployments {
    pub async fn deployment(&self, id: &str) -> Result<Deployment, UserError> {
        self.ground.deployment(id).await
    }

    pub async fn events(&self, id: &str, after: i64) -> Result<Vec<Event>, UserError> {
        self.ground.deployment(id).await?;
        Ok(self.ground.store.events(id, after).await?)
    }

    pub async fn list_deployments(&self, filter: &crate::store::ListFilter) -> Result<Vec<Deployment>, UserError> {
        Ok(self.ground.store.list_deployments(filter).await?)
    }

    pub async fn put_pipeline(&self, name: &str, mut spec: crate::model::DeploymentSpec) -> Result<(), UserError> {
        crate::validate::app_name(name).map_err(|_| {
            UserError::invalid(
                Field::Pipeline,
                format!("pipeline name `{name}` must be lowercase letters, digits and '-'"),
            )
        })?;
        self.ground
            .plugins
            .usable(&spec.strategy, crate::model::Kind::Strategy)
            .map_err(|why| UserError::invalid(Field::Strategy, why))?;
        spec.app = Default::default();
        spec.image.clear();
        // A profile is shown to anyone with the token: secrets are given per deployment.
        if !spec.secrets.is_empty() {
            return Err(UserError::invalid(
                Field::Secrets,
                "a pipeline profile cannot hold --secret values (profiles are shown as they are stored); give them with each `app deploy`",
            ));
        }
        Ok(self.ground.store.put_pipeline(name, &spec).await?)
    }

    pub async fn pipelines(&self) -> Result<Vec<(String, crate::model::DeploymentSpec)>, UserError> {
        Ok(self.ground.store.pipelines().await?)
    }
}
