//! Every example command of the product's documentation
//! (shared/product-docs/advanced-deployment-strategies.md), in order, against a real
//! server with the Docker runtime, each result checked. The demo images stand in for
//! nginx and the docs' other images. The docs' hook examples create deployments whose
//! hooks are recorded; tests/hooks.rs runs hooks of every kind.

use crate::common::{Server, demo_images, docker_available, versions_served};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a documented command line as a user types it.
fn run(server: &Server, line: &str) -> crate::common::CliRun {
    let words = shell_words::split(line).unwrap();
    assert_eq!(words[0], "hivemind");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    server.cli(&args)
}

/// Starts a documented command that follows a long deployment, in the background.
fn start(server: &Server, line: &str) -> Child {
    let words = shell_words::split(line).unwrap();
    Command::new(env!("CARGO_BIN_EXE_hivemind"))
        .args(&words[1..])
        .env("HIVEMIND_URL", &server.url)
        .env("HIVEMIND_TOKEN", &server.token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn newest(server: &Server, app: &str) -> Value {
    server.cli_json(&["deployment", "list", "--app", app, "--limit", "1"])[0].clone()
}

fn wait_for_split(server: &Server, app: &str, versions: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.api(&format!("/api/apps/{app}"))["split"].as_array().unwrap().len() != versions {
        assert!(Instant::now() < deadline, "{app} never split traffic {versions} ways");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn every_example_of_the_product_docs_works_as_written() {
    if !docker_available("every_example_of_the_product_docs_works_as_written") {
        return;
    }
    demo_images();
    let data = tempfile::tempdir().unwrap();
    // The docs deploy to `--cloud-provider aws`: a target in the server's config file.
    let config = data.path().join("server.toml");
    std::fs::write(&config, "[targets.aws]\ndocker_host = \"unix:///var/run/docker.sock\"\n").unwrap();
    let server = Server::start_with(data.path(), "docker", &["--config", config.to_str().unwrap()]);

    // Simple, rolling update, zero-downtime rolling update, blue-green.
    run(&server, "hivemind app deploy --image hivemind-demo:v1 --name web-app --strategy simple").ok();
    let port = server.app_port("web-app");
    assert_eq!(versions_served(port, 3), vec!["v1"; 3]);
    run(&server, "hivemind app deploy --image hivemind-demo:v2 --name web-app --strategy rolling-update --max-unavailable 1 --max-surge 1").ok();
    assert_eq!(versions_served(port, 3), vec!["v2"; 3]);
    run(&server, "hivemind app zero-downtime-deploy --image hivemind-demo:v1 --name web-app --service web-service --batch-size 2 --batch-delay 30 --health-check-path /health --health-check-port 8080 --health-check-timeout 60 --drain-timeout 30").ok();
    assert_eq!(versions_served(port, 3), vec!["v1"; 3]);
    run(
        &server,
        "hivemind app deploy --image hivemind-demo:v2 --name web-app --strategy blue-green --verification-timeout 60",
    )
    .ok();
    assert_eq!(versions_served(port, 3), vec!["v2"; 3]);
    let bg = newest(&server, "web-app");
    let id = bg["id"].as_str().unwrap();

    // Status and rollback, with the app commands.
    let status = run(&server, &format!("hivemind app deployment-status --id {id}")).ok().stdout;
    for field in ["status", "completed", "progress", "100%", "successful", "true", "created", "updated"] {
        assert!(status.contains(field), "{field} missing from: {status}");
    }
    run(&server, &format!("hivemind app rollback-deployment --id {id}")).ok();
    assert_eq!(versions_served(port, 3), vec!["v1"; 3]);
    assert_eq!(server.cli_json(&["deployment", "get", "--id", id])["status"], "rolled_back");

    // Creating, listing, getting, executing, rolling back.
    let created = run(&server, "hivemind deployment create --name web-deployment --app-name web-app --image hivemind-demo:v2 --replicas 3 --strategy blue-green").ok().stdout;
    assert!(created.contains("pending"), "{created}");
    let dep = newest(&server, "web-app");
    let dep_id = dep["id"].as_str().unwrap();
    assert!(run(&server, "hivemind deployment list").ok().stdout.contains(dep_id));
    assert!(run(&server, &format!("hivemind deployment get --id {dep_id}")).ok().stdout.contains("web-deployment"));
    run(&server, &format!("hivemind deployment execute --id {dep_id}")).ok();
    assert!(run(&server, &format!("hivemind deployment status --id {dep_id}")).ok().stdout.contains("completed"));
    assert_eq!(versions_served(port, 3), vec!["v2"; 3]);
    run(&server, &format!("hivemind deployment rollback --id {dep_id}")).ok();
    assert_eq!(versions_served(port, 3), vec!["v1"; 3]);

    // Canary: it starts, splits 80/20 and is analysed; the docs' 300 s interval is long,
    // so the test aborts it once the split and the figures are there.
    let mut canary = start(
        &server,
        "hivemind app deploy --image hivemind-demo:v2 --name web-app --strategy canary --percentage 20 --steps 20,50,100 --interval 300",
    );
    wait_for_split(&server, "web-app", 2);
    let app = server.api("/api/apps/web-app");
    let shares: Vec<u64> = app["split"].as_array().unwrap().iter().map(|w| w[1].as_u64().unwrap()).collect();
    assert_eq!(shares, vec![80, 20], "{app}");
    let canary_id = newest(&server, "web-app")["id"].as_str().unwrap().to_string();
    let metrics = run(&server, &format!("hivemind metrics get --deployment-id {canary_id}")).ok().stdout;
    assert!(metrics.contains("canary") && metrics.contains("stable"), "{metrics}");
    run(&server, &format!("hivemind deployment abort --id {canary_id}")).ok();
    assert_eq!(canary.wait().unwrap().code(), Some(1), "the follower reports the abort");

    // A/B testing with the app command.
    let mut ab = start(
        &server,
        "hivemind app deploy --name web-app --strategy ab-testing --variant \"name=v1,image=hivemind-demo:v1,percentage=50\" --variant \"name=v2,image=hivemind-demo:v2,percentage=50\" --duration 86400",
    );
    wait_for_split(&server, "web-app", 2);
    let ab_id = newest(&server, "web-app")["id"].as_str().unwrap().to_string();
    server.cli(&["deployment", "select-winner", "--id", &ab_id, "--variant", "v2"]).ok();
    assert_eq!(ab.wait().unwrap().code(), Some(0));
    assert_eq!(versions_served(port, 3), vec!["v2"; 3]);

    // Hooks: recorded with the deployment, as given.
    for (line, stage, hook) in [
        (
            "hivemind deployment create --name web-deployment --app-name web-app --image hivemind-demo:v1 --pre-hook \"run-tests.sh\"",
            "pre",
            "run-tests.sh",
        ),
        (
            "hivemind deployment create --name web-deployment --app-name web-app --image hivemind-demo:v1 --post-hook \"notify-team.sh\"",
            "post",
            "notify-team.sh",
        ),
        (
            "hivemind deployment create --name web-deployment --app-name web-app --image hivemind-demo:v1 --rollback-hook \"cleanup.sh\"",
            "rollback",
            "cleanup.sh",
        ),
    ] {
        assert!(run(&server, line).ok().stdout.contains("pending"), "{line}");
        assert_eq!(newest(&server, "web-app")["spec"]["hooks"][stage], serde_json::json!([hook]), "{line}");
    }

    // Advanced configuration: each is recorded as asked, or refused with the reason.
    for line in [
        "hivemind deployment create --name web-deployment --app-name web-app --image hivemind-demo:v1 --health-check-path /health --health-check-port 8080",
        "hivemind deployment create --name web-deployment --app-name web-app --image hivemind-demo:v1 --cpu 0.5 --memory 512M",
        "hivemind deployment create --name web-deployment --app-name web-app --image hivemind-demo:v1 --env \"KEY1=value1\" --env \"KEY2=value2\"",
        "hivemind deployment create --name web-deployment --app-name web-app --image hivemind-demo:v1 --volume data-volume:/data",
        "hivemind deployment create --name web-deployment --app-name web-app --image hivemind-demo:v1 --strategy blue-green --cloud-provider aws",
        "hivemind deployment create --name web-deployment --app-name web-app --image hivemind-demo:v1 --strategy canary --metrics-endpoint /metrics",
    ] {
        assert!(run(&server, line).ok().stdout.contains("pending"), "{line}");
    }
    let d = newest(&server, "web-app");
    assert_eq!(d["spec"]["params"]["metrics-endpoint"], "/metrics");
    let mesh = run(
        &server,
        "hivemind deployment create --name web-deployment --app-name web-app --image hivemind-demo:v1 --strategy canary --traffic-router service-mesh",
    );
    assert_eq!(mesh.code, 2);
    assert!(
        mesh.stderr.contains("traffic router `service-mesh` is not available; the routers are: builtin"),
        "{}",
        mesh.stderr
    );
    let pipeline = run(
        &server,
        "hivemind cicd configure-deployment --pipeline my-pipeline --strategy blue-green --verification-timeout 60",
    )
    .ok()
    .stdout;
    assert!(pipeline.contains("my-pipeline") && pipeline.contains("blue-green"), "{pipeline}");

    // The canary workflow of a new API service.
    run(&server, "hivemind deployment create --name api-deployment --app-name api-service --image hivemind-demo:v2 --replicas 5 --strategy canary --percentage 20 --steps 20,50,100 --interval 300").ok();
    let api = newest(&server, "api-service");
    let api_id = api["id"].as_str().unwrap();
    run(&server, &format!("hivemind deployment execute --id {api_id}")).ok();
    assert!(run(&server, &format!("hivemind deployment status --id {api_id}")).ok().stdout.contains("completed"));
    assert!(run(&server, &format!("hivemind metrics get --deployment-id {api_id}")).ok().stdout.contains("r1"));

    // The A/B workflow of a feature.
    run(&server, "hivemind deployment create --name feature-test --app-name web-app --strategy ab-testing --variant \"name=original,image=hivemind-demo:v1,percentage=50\" --variant \"name=new-feature,image=hivemind-demo:v2,percentage=50\" --duration 86400").ok();
    let feature = newest(&server, "web-app");
    let feature_id = feature["id"].as_str().unwrap().to_string();
    let mut execute = start(&server, &format!("hivemind deployment execute --id {feature_id}"));
    wait_for_split(&server, "web-app", 2);
    assert!(run(&server, &format!("hivemind deployment status --id {feature_id}")).ok().stdout.contains("in_progress"));
    for variant in ["original", "new-feature"] {
        let m =
            run(&server, &format!("hivemind metrics get --deployment-id {feature_id} --variant {variant}")).ok().stdout;
        assert!(m.contains(variant), "{m}");
    }
    run(&server, &format!("hivemind deployment select-winner --id {feature_id} --variant new-feature")).ok();
    assert_eq!(execute.wait().unwrap().code(), Some(0));
    assert_eq!(server.api("/api/apps/web-app")["release"]["version"], "new-feature");

    // Debugging.
    let diagnosis = run(&server, &format!("hivemind deployment diagnose --id {feature_id} --verbose")).ok().stdout;
    assert!(
        diagnosis.lines().next().unwrap().contains(&format!("deployment {feature_id} of app web-app is completed")),
        "{diagnosis}"
    );
}
