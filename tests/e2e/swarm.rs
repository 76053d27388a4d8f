//! The `swarm` runtime on a real Docker Swarm: this machine's engine made a one-node
//! Swarm (`docker swarm init --advertise-addr 127.0.0.1`) when it is not one yet, and left
//! again when the tests end. Every strategy runs on it as on Docker, under load through
//! the router; killed tasks come back; a restart adopts the services; placement
//! constraints reach the scheduler; hooks run as Swarm jobs; deployment targets name a
//! Swarm, or a Docker engine by the address the router reaches it at.
//!
//! One node proves the driver; what several nodes add (node addresses other than this
//! one's, images on every node) is in the book's Docker Swarm chapter (docs/src/swarm.md).

use crate::common::{Load, Server, demo_images, docker_available, versions_served, wait_until};
use crate::scenarios::{self, Images};
use serde_json::Value;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// What making the engine a Swarm found.
pub(crate) struct SwarmSetup {
    /// What `serve --runtime swarm` said while the engine was not a Swarm manager, when
    /// the tests found it so (a fresh machine, CI).
    refusal_before_init: Option<String>,
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn swarm_state() -> String {
    docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
}

/// Leaves the Swarm the tests made, when the test binary exits.
extern "C" fn leave_swarm() {
    let _ = Command::new("docker").args(["swarm", "leave", "--force"]).output();
}

/// Docker answers and is a Swarm manager (made one if it was not), with the demo images.
pub(crate) fn swarm_ready(test: &str) -> Option<&'static SwarmSetup> {
    if !docker_available(test) {
        return None;
    }
    demo_images();
    static SETUP: OnceLock<SwarmSetup> = OnceLock::new();
    Some(SETUP.get_or_init(|| {
        if swarm_state() == "active" {
            return SwarmSetup { refusal_before_init: None };
        }
        let data = tempfile::tempdir().unwrap();
        let refusal = serve_refusal(&["--runtime", "swarm", "--data-dir", data.path().to_str().unwrap()]);
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        unsafe { libc::atexit(leave_swarm) };
        SwarmSetup { refusal_before_init: Some(refusal) }
    }))
}

/// What `serve` with `flags` printed on stderr when it refused to start; fails the test if
/// it serves instead (killed after 20 s, so the suite does not hang on it).
fn serve_refusal(flags: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hivemind"))
        .args(["serve", "--api-addr", "127.0.0.1:0"])
        .args(flags)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve {flags:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "serve {flags:?} exited 0");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A label on this Swarm node for as long as it lives, removed even if the test fails.
struct NodeLabel {
    node: String,
    key: &'static str,
}

impl NodeLabel {
    fn add(key: &'static str, value: &str) -> NodeLabel {
        let node = docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
        docker(&["node", "update", "--label-add", &format!("{key}={value}"), &node]);
        NodeLabel { node, key }
    }
}

impl Drop for NodeLabel {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["node", "update", "--label-rm", self.key, &self.node]).output();
    }
}

/// The Swarm services of an app, by name.
fn services(app: &str) -> Vec<String> {
    let names = docker(&["service", "ls", "--filter", &format!("label=hivemind.app={app}"), "--format", "{{.Name}}"]);
    names.lines().map(str::to_string).collect()
}

macro_rules! swarm_scenario_tests {
    ($($name:ident: $scenario:ident($($arg:literal)?);)*) => {
        $(
            #[test]
            fn $name() {
                if swarm_ready(stringify!($name)).is_none() {
                    return;
                }
                scenarios::$scenario(Images::Swarm $(, $arg)?);
            }
        )*
    };
}

swarm_scenario_tests! {
    swarm_rolling_update_completes_without_failed_requests: good_version_completes_without_failed_requests("rolling-update");
    swarm_zero_downtime_completes_without_failed_requests: good_version_completes_without_failed_requests("zero-downtime");
    swarm_blue_green_completes_without_failed_requests: good_version_completes_without_failed_requests("blue-green");
    swarm_blue_green_rolls_a_sick_version_back: failing_version_rolls_back_without_failed_requests("blue-green");
    swarm_rolling_update_survives_a_crash_of_serve: crash_mid_deployment_ends_cleanly("rolling-update");
    swarm_healthy_canary_completes: healthy_canary_completes();
    swarm_failing_canary_rolls_back: failing_canary_rolls_back();
    swarm_ab_test_with_manual_winner: ab_test_with_manual_winner();
    swarm_tasks_killed_at_random_come_back_under_load: replicas_killed_at_random_come_back_under_load();
}

#[test]
fn swarm_runtime_on_an_engine_that_is_not_a_manager_says_how_to_make_it_one() {
    let Some(setup) = swarm_ready("swarm_runtime_on_an_engine_that_is_not_a_manager") else { return };
    match &setup.refusal_before_init {
        Some(stderr) => assert!(
            stderr.contains("is not a Swarm manager") && stderr.contains("docker swarm init --advertise-addr"),
            "{stderr}"
        ),
        None => {
            eprintln!("the engine was a Swarm manager before the tests: the refusal was not seen here (it is in CI)")
        }
    }
}

/// The simple strategy on Swarm, then what the services look like: one per replica,
/// labelled; a restart of `serve` adopts them; `app remove` leaves none.
#[test]
fn swarm_replicas_are_labelled_services_adopted_after_a_restart_and_removed_with_their_app() {
    if swarm_ready("swarm_replicas_are_labelled_services").is_none() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut first = Server::start_in(data.path(), "swarm");
    first.deploy("plain", "hivemind-demo:v1", &["--replicas", "2"]).ok();
    let volume = format!("hivemind-test-{}", std::process::id());
    let mount = format!("{volume}:/data");
    let limits = ["--cpu", "0.5", "--memory", "64M", "--env", "GREETING=hello", "--volume", &mount];
    let mut flags = vec!["--replicas", "2", "--strategy", "simple"];
    flags.extend(limits);
    let d = first.deploy("plain", "hivemind-demo:v2", &flags).ok().json();
    assert_eq!(d["status"], "completed", "{d}");
    let node_addr = docker(&["node", "inspect", "self", "--format", "{{.Status.Addr}}"]);
    let port = first.app_port("plain");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);
    let names = services("plain");
    assert_eq!(names.len(), 2, "one service per replica: {names:?}");
    let replicas = first.api("/api/apps/plain")["replicas"].clone();
    for r in replicas.as_array().unwrap() {
        assert_eq!(r["driver"], "swarm", "{r}");
        let handle = r["handle"].as_str().unwrap();
        let labels: Value =
            serde_json::from_str(&docker(&["service", "inspect", handle, "--format", "{{json .Spec.Labels}}"]))
                .unwrap();
        assert_eq!((labels["hivemind.app"].as_str(), labels["hivemind.version"].as_str()), (Some("plain"), Some("r2")));
        assert_eq!(labels["hivemind.deployment"], d["id"]);
        assert_eq!(labels["hivemind.variant"], "r2");
        let task: Value =
            serde_json::from_str(&docker(&["service", "inspect", handle, "--format", "{{json .Spec.TaskTemplate}}"]))
                .unwrap();
        assert_eq!(task["RestartPolicy"]["Condition"], "none", "Swarm restarts nothing behind Hivemind's back");
        assert_eq!(task["ContainerSpec"]["Healthcheck"]["Test"], serde_json::json!(["NONE"]), "{task}");
        assert_eq!(task["Resources"]["Limits"]["NanoCPUs"], 500_000_000, "{task}");
        assert_eq!(task["Resources"]["Limits"]["MemoryBytes"], hivemind::model::parse_memory("64M").unwrap(), "{task}");
        assert!(task["ContainerSpec"]["Env"].as_array().unwrap().iter().any(|e| e == "GREETING=hello"), "{task}");
        let mounts = &task["ContainerSpec"]["Mounts"][0];
        assert_eq!((mounts["Type"].as_str(), mounts["Source"].as_str()), (Some("volume"), Some(volume.as_str())));
        assert_eq!(mounts["Target"], "/data");
        let address = r["address"].as_str().unwrap();
        assert!(address.starts_with(&format!("{node_addr}:")), "reached at its node's address {node_addr}: {r}");
    }

    // A service of this server's cluster that no record owns (a crash between creating it
    // and recording it): the restart removes it.
    let first_handle = replicas[0]["handle"].as_str().unwrap();
    let cluster_id =
        docker(&["service", "inspect", first_handle, "--format", "{{index .Spec.Labels \"hivemind.server\"}}"]);
    let orphan = format!("hivemind-orphan-{}", std::process::id());
    docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        &orphan,
        "--restart-condition",
        "none",
        "--label",
        &format!("hivemind.server={cluster_id}"),
        "--label",
        "hivemind.replica=plain-r2-orphan",
        "hivemind-demo:v1",
    ]);

    first.kill();
    let server = Server::start_in(data.path(), "swarm");
    let adopted = server.api("/api/apps/plain")["replicas"].clone();
    let handles = |v: &Value| {
        let mut h: Vec<String> =
            v.as_array().unwrap().iter().map(|r| r["handle"].as_str().unwrap().to_string()).collect();
        h.sort();
        h
    };
    assert_eq!(handles(&adopted), handles(&replicas), "the restart adopted the same services");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);
    let left = docker(&["service", "ls", "--filter", &format!("name={orphan}"), "--format", "{{.Name}}"]);
    assert!(left.is_empty(), "the restart removed the orphan service: {left}");

    server.cli(&["app", "remove", "--name", "plain"]).ok();
    assert!(services("plain").is_empty(), "no service left after app remove");
    // The volume goes once Swarm has removed the tasks' containers.
    wait_until("the test volume to be removable", Duration::from_secs(20), || {
        Command::new("docker").args(["volume", "rm", &volume]).output().is_ok_and(|o| o.status.success())
    });
}

/// A constraint no node satisfies fails the deployment with Swarm's own reason, and the
/// previous release serves on; one the node satisfies places the replicas.
#[test]
fn swarm_placement_constraints_reach_the_scheduler() {
    if swarm_ready("swarm_placement_constraints_reach_the_scheduler").is_none() {
        return;
    }
    let server = Server::start("swarm");
    server.deploy("placed", "hivemind-demo:v1", &["--replicas", "2"]).ok();
    let port = server.app_port("placed");
    let load = Load::start(port, 2);
    let started = std::time::Instant::now();
    let run = server.deploy(
        "placed",
        "hivemind-demo:v2",
        &[
            "--replicas",
            "2",
            "--strategy",
            "rolling-update",
            "--health-check-timeout",
            "20",
            "--constraint",
            "node.labels.hivemind-test-zone==mars",
        ],
    );
    let took = started.elapsed();
    eprintln!("an unsatisfiable constraint failed the deployment in {:.1} s", took.as_secs_f64());
    assert!(took < Duration::from_secs(20), "it failed within the health timeout: {took:?}");
    assert_eq!(run.code, 1, "{run:?}");
    let d = run.json();
    assert_eq!(d["status"], "failed", "{d}");
    let error = d["error"].as_str().unwrap();
    assert!(error.contains("no suitable node (scheduling constraints not satisfied"), "{d}");
    std::thread::sleep(Duration::from_millis(200));
    load.stop().assert_no_failures("an unsatisfiable constraint");
    assert_eq!(versions_served(port, 4), vec!["v1"; 4]);
    assert_eq!(services("placed").len(), 2, "the failed version left no service behind");

    let label = NodeLabel::add("hivemind-test-zone", "earth");
    let d = server
        .deploy(
            "placed",
            "hivemind-demo:v2",
            &["--replicas", "2", "--constraint", "node.labels.hivemind-test-zone==earth"],
        )
        .ok()
        .json();
    drop(label);
    assert_eq!(d["status"], "completed", "{d}");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);
    let handle = server.api("/api/apps/placed")["replicas"][0]["handle"].as_str().unwrap().to_string();
    let constraints = docker(&["service", "inspect", &handle, "--format", "{{json .Spec.TaskTemplate.Placement}}"]);
    assert!(constraints.contains("node.labels.hivemind-test-zone==earth"), "{constraints}");
}

#[test]
fn swarm_pre_hooks_run_as_swarm_jobs() {
    if swarm_ready("swarm_pre_hooks_run_as_swarm_jobs").is_none() {
        return;
    }
    crate::hooks::a_pre_hook_runs_the_demo_self_test_in_a_one_off_job("swarm");
}

/// Deployment targets: one names the Swarm (a server whose own runtime is processes
/// deploys to it with `--cloud-provider`), one names a Docker engine with the address its
/// replicas publish on and the router reaches them at.
#[test]
fn deployment_targets_reach_a_swarm_and_a_docker_engine_by_its_advertised_address() {
    if swarm_ready("deployment_targets_reach_a_swarm").is_none() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("server.toml");
    std::fs::write(
        &config,
        "[targets.cluster]\nruntime = \"swarm\"\n\
         [targets.edge]\ndocker_host = \"unix:///var/run/docker.sock\"\nadvertise_addr = \"127.0.0.2\"\n",
    )
    .unwrap();
    let server = Server::start_with(data.path(), "process", &["--config", config.to_str().unwrap()]);
    for (app, target, driver, ip) in
        [("tocluster", "cluster", "swarm@cluster", "127.0.0.1:"), ("toedge", "edge", "docker@edge", "127.0.0.2:")]
    {
        let d = server.deploy(app, "hivemind-demo:v1", &["--replicas", "2", "--cloud-provider", target]).ok().json();
        assert_eq!(d["status"], "completed", "{d}");
        assert_eq!(versions_served(server.app_port(app), 4), vec!["v1"; 4]);
        let replicas = server.api(&format!("/api/apps/{app}"))["replicas"].clone();
        for r in replicas.as_array().unwrap() {
            assert_eq!(r["driver"], driver, "{r}");
            assert!(r["address"].as_str().unwrap().starts_with(ip), "{r}");
        }
        server.cli(&["app", "remove", "--name", app]).ok();
    }
    assert!(services("tocluster").is_empty());

    let bad = data.path().join("bad.toml");
    std::fs::write(&bad, "[targets.cluster]\nruntime = \"nomad\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hivemind"))
        .args(["serve", "--api-addr", "127.0.0.1:0", "--config", bad.to_str().unwrap(), "--data-dir"])
        .arg(data.path().join("other"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[targets.cluster] runtime `nomad` must be docker or swarm"), "{stderr}");
}

/// A task whose container is killed is replaced by the healer (Swarm restarts nothing),
/// and the events say so.
#[test]
fn a_killed_swarm_task_is_replaced_and_the_events_say_so() {
    if swarm_ready("a_killed_swarm_task_is_replaced").is_none() {
        return;
    }
    let server = Server::start("swarm");
    server.deploy("healed", "hivemind-demo:v1", &["--replicas", "3"]).ok();
    let load = Load::start(server.app_port("healed"), 2);
    let victim = server.api("/api/apps/healed")["replicas"][0].clone();
    crate::common::docker_kill(&crate::common::swarm_container(victim["handle"].as_str().unwrap()));
    wait_until("three healthy replicas without the victim", Duration::from_secs(20), || {
        let replicas = server.api("/api/apps/healed")["replicas"].clone();
        let replicas = replicas.as_array().unwrap();
        replicas.len() == 3 && replicas.iter().all(|r| r["healthy"] == true && r["id"] != victim["id"])
    });
    std::thread::sleep(Duration::from_millis(200));
    load.stop().assert_no_failures("a killed task");
    let events = server.api("/api/apps/healed/events").to_string();
    assert!(events.contains("exited (exited with code 137)"), "{events}");
    assert_eq!(services("healed").len(), 3, "the dead task's service is gone, a new one replaced it");
}
