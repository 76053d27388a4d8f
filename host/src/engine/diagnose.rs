//! `deployment diagnose`: what happened to a deployment and why, cause first.

use super::Engine;
use crate::error::UserError;
use crate::model::{Deployment, Event, ReplicaRecord, Status};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Diagnosis {
    /// One line: the deployment, its status, and the cause when it did not complete.
    pub summary: String,
    pub cause: Option<String>,
    pub deployment: Deployment,
    /// The event log, oldest first (step-by-step lines only with `verbose`).
    pub timeline: Vec<Event>,
    /// Errors of the deployment's plugin and its steps.
    pub errors: Vec<Event>,
    /// The app's replicas as they are now, with their latest probe and recent output.
    pub replicas: Vec<ReplicaDiagnosis>,
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReplicaDiagnosis {
    #[serde(flatten)]
    pub record: ReplicaRecord,
    pub running: bool,
    pub healthy: bool,
    /// The latest probe's message, for example "GET http://127.0.0.1:4123/health returned 503".
    pub last_probe: Option<String>,
    pub logs: String,
}

impl Engine {
    pub async fn diagnose(&self, id: &str, verbose: bool) -> Result<Diagnosis, UserError> {
        let d = self.deployment(id).await?;
        let events = self.store.events(id, 0).await?;
        let cause = match d.status {
            Status::Completed | Status::Pending | Status::InProgress => d.error.clone(),
            _ => Some(d.error.clone().unwrap_or_else(|| d.message.clone())),
        };
        let summary = match &cause {
            Some(cause) => format!("deployment {} of app {} is {}: {cause}", d.id, d.app, d.status.words()),
            None => {
                format!("deployment {} of app {} is {} ({}%): {}", d.id, d.app, d.status.words(), d.progress, d.message)
            }
        };
        let errors = events.iter().filter(|e| e.level == "error").cloned().collect();
        let timeline = events.into_iter().filter(|e| verbose || e.level != "debug").collect();
        let lines = if verbose { 100 } else { 20 };
        let mut replicas = Vec::new();
        for record in self.services.fleet.list(&d.app).await {
            let running = self.services.fleet.is_running(&record).await;
            let logs = self.services.fleet.logs(&record, lines).await;
            let last_probe = self.services.last_probe(&record.id).map(|p| p.message);
            let healthy = self.services.router.is_healthy(&d.app, &record.id);
            replicas.push(ReplicaDiagnosis { record, running, healthy, last_probe, logs });
        }
        Ok(Diagnosis { summary, cause, deployment: d, timeline, errors, replicas })
    }
}
