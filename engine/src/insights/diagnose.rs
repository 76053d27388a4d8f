//! `deployment diagnose`: what happened to a deployment and why, cause first.

use super::Insights;
use crate::api_types::{Diagnosis, ReplicaDiagnosis};
use crate::error::UserError;
use crate::model::{Level, Status};

impl Insights {
    pub async fn diagnose(&self, id: &str, verbose: bool) -> Result<Diagnosis, UserError> {
        let d = self.ground.deployment(id).await?;
        let events = self.ground.store.events(id, 0).await?;
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
        let errors = events.iter().filter(|e| e.level == Level::Error).cloned().collect();
        let timeline = events.into_iter().filter(|e| verbose || e.level != Level::Debug).collect();
        let lines = if verbose { 100 } else { 20 };
        let mut replicas = Vec::new();
        let secrets = self.ground.secret_values(&d.app).await;
        for record in self.ground.services.fleet.list(&d.app).await {
            let running = self.ground.services.fleet.is_running(&record).await;
            // An app that logs its secrets has them shown as `***`.
            let logs = self.ground.services.fleet.logs(&record, lines).await;
            let logs = crate::model::masked(&logs, d.secret_values().chain(&secrets)).into_owned();
            let last_probe = self.ground.services.last_probe(&record.id).map(|p| p.message);
            let healthy = self.ground.services.router.is_healthy(&d.app, &record.id);
            replicas.push(ReplicaDiagnosis { record, running, healthy, last_probe, logs });
        }
        Ok(Diagnosis { summary, cause, deployment: d.redacted(), timeline, errors, replicas })
    }
}
