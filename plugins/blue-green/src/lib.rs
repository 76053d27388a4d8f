//! `blue-green`: start a complete green environment beside blue, wait until it is
//! healthy, then verify it while it is reachable on its preview route (the request header
//! `x-hivemind-variant: GREEN`): still healthy, answering the preview without errors, its
//! verify hooks passed, and, if asked, all of that for a soak of `verification-soak`
//! seconds. Switch all traffic at once as soon as it is verified, and keep blue idle for
//! `scale-down-delay` seconds so that a rollback is an instant switch back.
//! `verification-timeout` is the most verification may take, not a wait: a soak may not
//! be longer (verify hooks are bounded by the deployment's `--hook-timeout`). A failed
//! verification never switches traffic.

use hivemind_sdk::prelude::*;
use serde::{Deserialize, Serialize};

struct BlueGreen;

#[derive(Serialize, Deserialize, Default)]
struct State {
    capacity_checked: bool,
    /// When green first was fully healthy on its preview route (ms since the epoch):
    /// verification, and the soak, start.
    verifying_since: Option<u64>,
    approved: bool,
    /// When traffic switched to green.
    switched_at: Option<u64>,
}

struct Settings {
    verification_ms: u64,
    soak_ms: u64,
    auto_promote: bool,
    scale_down_delay_ms: u64,
}

fn settings(d: &Deployment) -> Result<Settings> {
    let verification: i64 = d.get_or("verification-timeout", 30)?;
    let soak: i64 = d.get_or("verification-soak", 0)?;
    let scale_down_delay: i64 = d.get_or("scale-down-delay", 30)?;
    if verification < 0 || soak < 0 || scale_down_delay < 0 {
        return Err(Error::msg(
            "verification-timeout, verification-soak and scale-down-delay must be 0 or more seconds",
        ));
    }
    if soak > verification {
        return Err(Error(format!(
            "verification-soak {soak} s is longer than verification-timeout {verification} s, the most verification may take; \
             raise --verification-timeout or shorten the soak"
        )));
    }
    let auto_promote: bool =
        d.get_or("auto-promote", true).map_err(|_| Error::msg("auto-promote must be true or false"))?;
    // A rollback of a completed deployment brings back a release that served before: no
    // manual gate and no soak stand in its way (health checks still do).
    let rollback = context::rollback_of().is_some();
    Ok(Settings {
        verification_ms: verification as u64 * 1000,
        soak_ms: if rollback { 0 } else { soak as u64 * 1000 },
        auto_promote: auto_promote || rollback,
        scale_down_delay_ms: scale_down_delay as u64 * 1000,
    })
}

impl Strategy for BlueGreen {
    const NAME: &'static str = "blue-green";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str =
        "Start a full green environment, verify it, switch all traffic at once, keep blue for a quick rollback";
    type State = State;

    fn validate(d: &Deployment) -> Result<()> {
        no_variants(d)?;
        settings(d).map(|_| ())
    }

    fn deploy(d: &Deployment, st: &mut State, cx: &StepContext) -> Result<Step> {
        let p = settings(d)?;
        let n = d.target.replicas;
        let green = d.target.version.clone();
        let blue = d.previous.as_ref().map(|r| r.version.clone());

        if let Some(switched_at) = st.switched_at {
            // Blue idles for the scale-down delay, then goes.
            let waited = now_ms().saturating_sub(switched_at);
            let blue_ids: Vec<String> =
                containers::list()?.into_iter().filter(|r| r.version != green).map(|r| r.id).collect();
            if waited < p.scale_down_delay_ms && !blue_ids.is_empty() {
                let left = (p.scale_down_delay_ms - waited) / 1000;
                progress::report(100, &format!("{green} serves; blue kept idle {left} s more for an instant rollback"));
                return Ok(Step::after_ms((p.scale_down_delay_ms - waited).min(1000) as u32));
            }
            if !drain_and_stop(&blue_ids, 10_000)? {
                return Ok(Step::after_ms(100));
            }
            progress::report(100, &format!("{green} serves on {n} replicas; blue removed"));
            return Ok(Step::Done);
        }

        // Resources first: two full environments must fit before blue is touched.
        if !st.capacity_checked {
            let running_green = containers::list()?.iter().filter(|r| r.version == green).count() as u32;
            let room = containers::capacity();
            let needed = n.saturating_sub(running_green);
            if needed > room {
                return Err(Error(format!(
                    "not enough room for the green environment: it needs {needed} more replicas and the host can start only {room} \
                     (raise the server's --max-replicas, or use rolling-update); blue was not touched"
                )));
            }
            st.capacity_checked = true;
        }

        let replicas = containers::scale(&green, n)?;
        let readiness = probe(&replicas)?;
        if st.verifying_since.is_some() && !readiness.waiting.is_empty() {
            return Err(Error(format!(
                "verification failed: green became unhealthy: {}",
                readiness.last_failure().unwrap_or_default()
            )));
        }
        check_ready_in_time(d, &readiness)?;
        if !readiness.waiting.is_empty() {
            progress::report(20, &format!("starting green {green}: {}/{n} healthy", readiness.ready.len()));
            return Ok(Step::after_ms(200));
        }

        // Green is reachable on its preview route before any traffic moves.
        match &blue {
            Some(blue) => routing::set_split(&[
                Weight { version: blue.clone(), weight: 100 },
                Weight { version: green.clone(), weight: 0 },
            ])?,
            None => routing::set_split(&[Weight { version: green.clone(), weight: 0 }])?,
        }
        let since = *st.verifying_since.get_or_insert_with(now_ms);
        if !cx.verified {
            // The deployment's verify hooks run now, against the preview route.
            progress::report(40, &format!("running verify hooks against green {green} on its preview route"));
            return Ok(Step::Verify);
        }
        let counts = metrics::snapshot(&green)?;
        let errors = counts.status_5xx + counts.connection_errors;
        if errors > 0 {
            return Err(Error(format!(
                "verification failed: green answered {errors} of {} preview requests with errors",
                counts.requests
            )));
        }
        // Verified: healthy, no errors, hooks passed. Switch now, unless asked to soak.
        let soaked = now_ms().saturating_sub(since);
        if soaked < p.soak_ms {
            let left = (p.soak_ms - soaked).div_ceil(1000);
            progress::report(
                50 + (soaked * 40 / p.soak_ms.max(1)) as u8,
                &format!(
                    "green {green} verified; soaking {left} s more (preview with the headers x-hivemind-variant: {green} and x-hivemind-preview: the app's preview key)"
                ),
            );
            return Ok(Step::after_ms((p.soak_ms - soaked).min(500) as u32));
        }
        if !p.auto_promote && !(st.approved || cx.promoted) {
            return Ok(Step::AwaitApproval(format!(
                "green {green} passed verification; try it with the headers x-hivemind-variant: {green} and x-hivemind-preview: $(hivemind app preview-key --name APP)"
            )));
        }
        st.approved = true;

        routing::set_split(&[Weight { version: green.clone(), weight: 100 }])?;
        st.switched_at = Some(now_ms());
        progress::log(progress::Level::Info, &format!("switched all traffic to green {green}"));
        progress::report(100, &format!("{green} serves"));
        Ok(Step::after_ms(0))
    }
}

hivemind_sdk::export_strategy!(BlueGreen);
