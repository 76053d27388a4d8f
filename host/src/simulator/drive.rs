//! The simulator's driver: the engine's own state machine (`engine::machine`) over a
//! simulated deployment record, with a simulated operator who promotes and picks winners.

use super::*;

impl Simulation {
    /// The engine's step loop in miniature, over the engine's own state machine
    /// (`engine::machine`): the same deadlines, waits, phases and messages as a server;
    /// approvals come from a simulated operator.
    pub(super) async fn drive(
        &self,
        scenario: &Scenario,
        deployment: &wit::Deployment,
        world: &Arc<Mutex<World>>,
        steps: &mut u32,
        crash: &mut Option<String>,
    ) -> Ending {
        let note = |line: String| world.lock().unwrap().note(line);
        let now = || world.lock().unwrap().now() as i64;
        let mut record = record_of(deployment);
        let mut state = HashMap::new();
        // Steps in a row that asked to run again at once: a busy loop if it goes on.
        let mut at_once = 0u32;
        let mut crashed = false;
        loop {
            let at = now();
            if at as u64 > MAX_SIMULATED_MS || *steps >= MAX_STEPS {
                break Ending::Unfinished(format!(
                    "still under way after {steps} steps and {} of simulated time",
                    duration(at as u64)
                ));
            }
            // What the world counts as progress is what the server records as progress.
            {
                let world = world.lock().unwrap();
                record.last_progress_at_ms = record.last_progress_at_ms.max(world.last_progress_ms as i64);
                record.progress = world.percent;
            }
            // An A/B test runs until someone picks a winner: after five minutes the
            // simulated operator picks the variant with the lowest error rate.
            if !deployment.variants.is_empty() && record.winner.is_none() && at as u64 >= AB_WINNER_MS {
                self.operator(&mut record, world, deployment, Control::SelectWinner);
            }
            let before = decide(&record, &Event::Poll, at).expect("a poll is never refused");
            let outcome = if before.steps_now() {
                let context = crate::engine::step_context(&record, at);
                let (outcome, writes) = self.step(world, &record, deployment, &context, &state).await;
                *steps += 1;
                // What the step did to the world stays, whatever becomes of its outcome.
                happened(&mut world.lock().unwrap(), &writes);
                if phase_is(&record, Phase::Deploy) && scenario.crash_after_step == Some(record.attempt + 1) && !crashed
                {
                    crashed = true;
                    note(format!(
                        "the server crashed after step {} (what the step did to the world stays; its state writes and outcome are lost); restarted, the step runs again",
                        record.attempt + 1
                    ));
                    continue;
                }
                record.attempt += 1;
                match outcome {
                    Ok(outcome) => {
                        state.extend(writes.state);
                        let busy = matches!(outcome, StepOutcome::Continue(0)) && {
                            let world = world.lock().unwrap();
                            world.last_progress_ms < world.now()
                        };
                        at_once = if busy { at_once + 1 } else { 0 };
                        if at_once >= BUSY_STEPS {
                            break Ending::Unfinished(format!(
                                "it asked to run again at once {BUSY_STEPS} times in a row and changed nothing: a busy loop (a server would call it every {} ms until its progress deadline, {} s, failed it)",
                                MIN_STEP_DELAY.as_millis(),
                                record.spec.progress_deadline
                            ));
                        }
                        Some(machine_outcome(Ok(outcome)))
                    }
                    Err(trap) => {
                        crash.get_or_insert(trap.clone());
                        Some(Outcome::Error(trap))
                    }
                }
            } else {
                None
            };
            let decision = match outcome {
                Some(outcome) => decide(&record, &Event::Step(outcome), now()).expect("a step is never refused"),
                None => before,
            };
            if let Some((_, line)) = &decision.note {
                note(line.clone());
            }
            self.apply(&mut record, world, decision.change.as_ref());
            match decision.next {
                Next::Step(delay) => world.lock().unwrap().advance(delay.as_millis() as u64),
                // The simulated world's images are there as named: nothing to pull or pin.
                Next::PullImages => {
                    let asked: Vec<String> = record.images_asked().into_iter().map(str::to_string).collect();
                    record.images.extend(asked.into_iter().map(|i| (i.clone(), i)));
                }
                // The simulated deployment has no hooks: a stage has nothing to run.
                Next::RunHooks(stage) => record.hook_runs.done.push(stage),
                Next::Finish => {
                    let winner = record.winner.as_ref().map(|w| {
                        let release = record.variant_releases().into_iter().find(|r| r.version == *w);
                        Release { replicas: record.spec.replicas, ..release.unwrap_or_else(|| record.target()) }
                    });
                    let ended = finished(&record, winner.as_ref());
                    self.apply(&mut record, world, Some(&ended));
                    break match record.phase {
                        Phase::Deploy => Ending::Completed,
                        Phase::Rollback => Ending::RolledBack,
                    };
                }
                Next::Restore(why) => {
                    note(format!("the strategy's rollback failed: {why}"));
                    break Ending::Failed(why);
                }
                Next::Idle if record.status == Status::AwaitingApproval => {
                    world.lock().unwrap().advance(OPERATOR_MS);
                    let pick = !deployment.variants.is_empty() && record.winner.is_none();
                    self.operator(
                        &mut record,
                        world,
                        deployment,
                        if pick { Control::SelectWinner } else { Control::Promote },
                    );
                }
                Next::Idle | Next::Drive | Next::Reverse => {
                    break Ending::Unfinished(format!("the deployment is {}", record.status.words()));
                }
            }
        }
    }

    /// A machine's change applied to the simulated record, as a server's store applies
    /// it, with its event line on the timeline.
    fn apply(&self, record: &mut Deployment, world: &Arc<Mutex<World>>, change: Option<&Change>) {
        let Some(change) = change else { return };
        let mut world = world.lock().unwrap();
        change.apply(record, world.now() as i64);
        world.note(change.message.clone());
        if change.touch_progress {
            world.last_progress_ms = world.now();
        }
    }

    /// The simulated operator promotes, or picks the A/B variant with the fewest errors.
    fn operator(&self, record: &mut Deployment, world: &Arc<Mutex<World>>, d: &wit::Deployment, control: Control) {
        if control == Control::SelectWinner {
            let pick = best_variant(d, &world.lock().unwrap());
            world.lock().unwrap().note(format!("the operator picks the winner {pick}"));
            record.winner = Some(pick);
        } else {
            world.lock().unwrap().note("the operator promotes".into());
        }
        let at = world.lock().unwrap().now() as i64;
        if let Ok(decision) = decide(record, &Event::Control(control), at) {
            self.apply(record, world, decision.change.as_ref());
        }
    }
}

/// A step's events on the timeline, as a server writes them to the event log, and its
/// progress: a change of replicas or split, or a rise of the reported percentage.
fn happened(world: &mut World, writes: &StepWrites) {
    for (level, line) in &writes.events {
        match level {
            Level::Info => world.note(line.clone()),
            _ => world.note(format!("[{level}] {line}")),
        }
    }
    if writes.progressed {
        world.last_progress_ms = world.now();
    }
    if let Some((percent, message)) = &writes.progress {
        world.reported(*percent);
        // Reports in a row, with nothing else happening between them, show as the latest.
        if world.timeline.last().is_some_and(|(_, last)| last.starts_with("progress ")) {
            world.timeline.pop();
        }
        world.note(format!("progress {percent}%: {message}"));
    }
}

/// The simulated deployment as a server records it: what the machine decides on.
fn record_of(d: &wit::Deployment) -> Deployment {
    let mut spec = DeploymentSpec::new(&d.app, &d.target.image);
    spec.replicas = d.target.replicas;
    spec.params = d.params.iter().cloned().collect();
    spec.variants = d
        .variants
        .iter()
        .map(|v| VariantSpec {
            name: v.release.version.clone(),
            image: v.release.image.clone(),
            percentage: v.percentage,
        })
        .collect();
    let previous = d.previous.as_ref().map(|p| Release {
        version: p.version.clone(),
        image: p.image.clone(),
        replicas: p.replicas,
        env: Default::default(),
        secrets: Default::default(),
        resources: Default::default(),
        pinned: None,
    });
    Deployment {
        id: d.id.clone().into(),
        name: d.id.clone(),
        app: d.app.clone().into(),
        strategy: "simulated".into(),
        spec,
        target_version: d.target.version.clone(),
        previous,
        status: Status::InProgress,
        phase: Phase::Deploy,
        progress: 0,
        message: String::new(),
        error: None,
        plugin: PluginRef { name: "simulated".into(), version: String::new(), sha256: String::new() },
        attempt: 0,
        phase_started_at_ms: 0,
        rollback_kind: None,
        promoted: false,
        promotions: 0,
        rollback_of: None,
        last_progress_at_ms: 0,
        winner: None,
        hook_runs: Default::default(),
        images: Default::default(),
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

fn phase_is(d: &Deployment, phase: Phase) -> bool {
    d.phase == phase
}
