//! A deployment's events as server-sent events: `event: event` for each new line of the
//! log, `event: status` whenever status, progress or message change, `event: series` with
//! each new second of the compared versions' figures (and every traffic step's analysis),
//! and the stream ends after the deployment does.

use super::{Api, ApiError};
use crate::api_types::DeploymentView;
use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use std::time::Duration;

pub async fn deployment_stream(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    api.deployments.deployment(&id).await?;
    struct Cursor {
        after: i64,
        last_status: Option<String>,
        series_after: i64,
        ended: bool,
        pending: std::collections::VecDeque<SseEvent>,
    }
    let cursor = Cursor { after: 0, last_status: None, series_after: 0, ended: false, pending: Default::default() };
    let stream = futures::stream::unfold((api, id, cursor), |(api, id, mut cursor)| async move {
        loop {
            if let Some(next) = cursor.pending.pop_front() {
                return Some((Ok(next), (api, id, cursor)));
            }
            if cursor.ended {
                return None;
            }
            // The status first, then the events: when the status says the deployment
            // ended, the events read after it include its last ones.
            let Ok(d) = api.deployments.deployment(&id).await else { return None };
            let Ok(events) = api.deployments.events(&id, cursor.after).await else { return None };
            for e in events {
                cursor.after = e.id;
                if let Ok(data) = serde_json::to_string(&e) {
                    cursor.pending.push_back(SseEvent::default().event("event").id(e.id.to_string()).data(data));
                }
            }
            if let Some(series) = api.insights.series_since(&id, cursor.series_after)
                && let Some(last) = series.samples.last()
            {
                cursor.series_after = last.at_ms;
                if let Ok(data) = serde_json::to_string(&series) {
                    cursor.pending.push_back(SseEvent::default().event("series").data(data));
                }
            }
            let key = format!("{}|{}|{}", d.status.as_str(), d.progress, d.message);
            if cursor.last_status.as_deref() != Some(key.as_str()) {
                cursor.last_status = Some(key);
                cursor.ended = d.status.is_terminal();
                if let Ok(data) = serde_json::to_string(&DeploymentView::from(d)) {
                    cursor.pending.push_back(SseEvent::default().event("status").data(data));
                }
            }
            if cursor.pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
