//! Images from registries (issue 29), as a user of the Docker and Swarm runtimes meets
//! them: an image the engine lacks is pulled through it, its progress shown live, and the
//! release pinned to the digest it resolved to, so that every replica of the release runs
//! that image whatever its tag names later; a pull that fails (an unknown tag, credentials
//! refused, the registry down) fails the deployment before anything changes; credentials
//! come from `registry login`, Docker's config or a credential helper, and show nowhere.
//! The registries are Debian's `docker-registry` on loopback, where Docker takes plain
//! HTTP or any certificate.

use crate::common::images::{
    DockerClient, Repository, app_containers, authenticated_registry, basic_auth, container_image, docker, image_id,
};
use crate::common::registry::Registry;
use crate::common::{
    Load, Server, demo_images, docker_available, docker_kill, free_port, tools_available, versions_served, wait_until,
};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The user the authenticated registries know, and its password (but in the test of
/// leaks, which has a password of its own).
const USER: &str = "puller";
const PASSWORD: &str = "pull-pass-29";

/// `hivemind registry login HOST --username USER --password-stdin`, which must succeed.
fn registry_login(server: &Server, host: &str, user: &str, password: &str) {
    let args = ["registry", "login", host, "--username", user, "--password-stdin"];
    server.cli_with(&args, &format!("{password}\n"), &[]).ok();
}

/// The messages of a deployment's events.
fn messages(server: &Server, id: &str) -> Vec<String> {
    server.events(id).iter().filter_map(|e| e["message"].as_str().map(str::to_string)).collect()
}

/// An app's replicas, as the API shows them.
fn replicas(server: &Server, app: &str) -> Vec<Value> {
    server.api(&format!("/api/apps/{app}"))["replicas"].as_array().unwrap().clone()
}

/// The IDs of an app's replicas, sorted.
fn replica_ids(server: &Server, app: &str) -> Vec<String> {
    let mut ids: Vec<String> = replicas(server, app).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

/// The sum of the samples of metric `name` on /metrics whose labels hold `label`.
fn metric(server: &Server, name: &str, label: &str) -> f64 {
    let text = server.get("/metrics").1;
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, labels) = series.split_once('{').unwrap_or((series, ""));
            (series_name == name && labels.contains(label)).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// A 100 MiB image that only a registry has: the first deployment pulls it (the CLI shows
/// the pull's progress as it goes), pins the release to the digest pushed, and serves it.
/// The tag then moves to demo v3: the healer's replacement of a killed replica and a
/// scale-up run the pinned image, never the moved tag's. v2 then rolls in under load
/// without a failed request; a rollback brings r1 back by its pin; /metrics counts the
/// two pulls.
#[test]
fn an_image_missing_from_the_engine_is_pulled_pinned_and_rolled_under_load() {
    if !docker_available("an_image_missing_from_the_engine_is_pulled_pinned_and_rolled_under_load") {
        return;
    }
    demo_images();
    let dir = tempfile::tempdir().unwrap();
    let Some(registry) = Registry::start(dir.path()) else { return };
    let repo = Repository::new(&registry, "big");
    let (v1, v2) = (repo.at("v1"), repo.at("v2"));
    let client = DockerClient::new();
    let v1_digest = client.push_big("hivemind-demo:v1", &v1, 100);
    let v2_digest = client.push_as("hivemind-demo:v2", &v2);
    let server = Server::start("docker");
    let app = format!("pulled{}", registry.port);

    // The pull, followed live by the CLI (its table output: one line per event and status).
    let started = Instant::now();
    let run = server
        .cli(&[
            "app",
            "deploy",
            "--name",
            &app,
            "--image",
            &v1,
            "--replicas",
            "2",
            "--health-check-path",
            "/health",
            "--pull",
            "missing",
        ])
        .ok();
    let took = started.elapsed();
    assert!(
        run.stdout.lines().any(|line| line.contains("pulling") && line.contains("MB")),
        "no progress of the pull in what the CLI printed:\n{}",
        run.stdout
    );
    let id = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("deployment "))
        .unwrap_or_else(|| panic!("the CLI names the deployment it follows:\n{}", run.stdout))
        .trim()
        .to_string();
    let d = server.cli_json(&["deployment", "get", "--id", &id]);
    assert_eq!(d["status"], "completed", "{d}");
    let pinned = format!("{}@{v1_digest}", repo.name);
    assert_eq!(d["images"][v1.as_str()], pinned.as_str(), "the tag is pinned to the digest pushed: {d}");
    assert_eq!(server.api(&format!("/api/apps/{app}"))["release"]["pinned"], pinned.as_str());
    let said = messages(&server, &id);
    let pulling = said.iter().position(|m| m.contains(&format!("pulling {v1}")));
    let pulled = said.iter().position(|m| m.starts_with(&format!("pulled {v1} in ")) && m.contains("MB/s"));
    assert!(pulling.is_some() && pulled.is_some() && pulling < pulled, "{said:#?}");
    assert!(said.iter().any(|m| m.contains(&v1) && m.contains("resolved to sha256:")), "{said:#?}");
    println!(
        "FIGURES a 100 MiB image from a loopback registry: {}; deploying its 2 replicas took {:.1} s in all",
        said[pulled.unwrap()],
        took.as_secs_f64()
    );
    let port = server.app_port(&app);
    assert_eq!(versions_served(port, 8), vec!["v1"; 8]);
    let original = image_id(&pinned);

    // The tag moves to v3 in the registry. A killed replica's replacement, then a
    // scale-up, run the pinned image still.
    client.push_as("hivemind-demo:v3", &v1);
    let victim = replicas(&server, &app)[0].clone();
    docker_kill(victim["handle"].as_str().unwrap());
    wait_until("the healer's replacement of the killed replica", Duration::from_secs(30), || {
        let now = replicas(&server, &app);
        now.len() == 2 && now.iter().all(|r| r["healthy"] == true && r["id"] != victim["id"])
    });
    server.cli(&["app", "scale", "--name", &app, "--replicas", "3"]).ok();
    wait_until("three healthy replicas", Duration::from_secs(30), || {
        let now = replicas(&server, &app);
        now.len() == 3 && now.iter().all(|r| r["healthy"] == true)
    });
    let containers = app_containers(&app);
    assert_eq!(containers.len(), 3, "{containers:?}");
    for container in &containers {
        assert_eq!(container_image(container), original, "container {container} runs another image than r1's pin");
    }
    assert_eq!(versions_served(port, 9), vec!["v1"; 9], "never the moved tag's v3");

    // The next version, pulled as its deployment begins, rolls in under load.
    let load = Load::start(port, 2);
    let d2 = server.deploy(&app, &v2, &["--replicas", "3", "--strategy", "rolling-update"]).ok().json();
    std::thread::sleep(Duration::from_millis(200));
    load.stop().assert_no_failures("rolling to v2, pulled first");
    assert_eq!(d2["status"], "completed", "{d2}");
    assert_eq!(d2["images"][v2.as_str()], format!("{}@{v2_digest}", repo.name).as_str(), "{d2}");
    assert_eq!(versions_served(port, 9), vec!["v2"; 9]);

    // A rollback brings back r1 as it ran, by its pin: the tag names v3 by now.
    let rollback =
        server.cli(&["deployment", "rollback", "--id", d2["id"].as_str().unwrap(), "--output", "json"]).ok().json();
    let back = server.wait_for(rollback["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(back["status"], "completed", "{back}");
    assert_eq!(back["images"][v1.as_str()], pinned.as_str(), "the rollback reuses r1's pin: {back}");
    for container in app_containers(&app) {
        assert_eq!(container_image(&container), original, "a rolled-back replica runs another image than r1's pin");
    }
    assert_eq!(versions_served(port, 9), vec!["v1"; 9], "the rollback serves r1, not the moved tag's v3");

    // Two pulls, v1's and v2's: the replacement, the scale-up and the rollback pulled nothing.
    let metrics = server.get("/metrics").1;
    assert_eq!(metric(&server, "hivemind_image_pulls_total", "result=\"ok\""), 2.0, "{metrics}");
    assert_eq!(metric(&server, "hivemind_image_pulls_total", "result=\"failed\""), 0.0, "{metrics}");
    assert_eq!(metric(&server, "hivemind_image_pull_seconds_count", ""), 2.0, "{metrics}");
}

/// Deploys `image` to `app`, whose pull must fail: the deployment fails, says that r1
/// still serves, and its error is returned.
fn failed_pull(server: &Server, app: &str, image: &str) -> String {
    let run = server.deploy(app, image, &["--replicas", "2", "--strategy", "rolling-update"]);
    assert_eq!(run.code, 1, "{image}: {run:?}");
    let d = run.json();
    assert_eq!(d["status"], "failed", "{d}");
    let error = d["error"].as_str().unwrap_or_else(|| panic!("a failed deployment says why: {d}")).to_string();
    let said = format!("{error}\n{}", d["message"].as_str().unwrap_or_default());
    assert!(said.contains("r1 still serves"), "{d}");
    error
}

/// The app as it was: the same replicas (by ID) and containers, release r1, serving v1.
fn assert_unchanged(server: &Server, app: &str, before: &[String], after: &str) {
    assert_eq!(replica_ids(server, app), before, "after {after}: the replicas changed");
    assert_eq!(app_containers(app).len(), 2, "after {after}: a container was started or stopped");
    assert_eq!(server.api(&format!("/api/apps/{app}"))["release"]["version"], "r1", "after {after}");
    assert_eq!(versions_served(server.app_port(app), 4), vec!["v1"; 4], "after {after}");
}

/// A registry over HTTPS that asks for credentials, and an app of demo v1 pulled from it
/// with `registry login`'s. Under load, three deployments that cannot pull their image
/// fail before anything changes, each saying why: an unknown tag; v2 after `registry
/// logout` (with the hint to log in); v2 with the registry down (naming its address).
/// The same replicas serve v1 throughout; no request fails; /metrics counts three failed
/// pulls.
#[test]
fn a_pull_that_fails_stops_the_deployment_before_anything_changes() {
    let test = "a_pull_that_fails_stops_the_deployment_before_anything_changes";
    if !docker_available(test) || !tools_available(test, &["htpasswd", "openssl"]) {
        return;
    }
    demo_images();
    let dir = tempfile::tempdir().unwrap();
    let Some(mut registry) = authenticated_registry(dir.path(), USER, PASSWORD) else { return };
    let repo = Repository::new(&registry, "guarded");
    let client = DockerClient::new();
    client.login(&repo.host, USER, PASSWORD);
    client.push_as("hivemind-demo:v1", &repo.at("v1"));
    client.push_as("hivemind-demo:v2", &repo.at("v2"));
    let server = Server::start("docker");
    registry_login(&server, &repo.host, USER, PASSWORD);
    let app = format!("guarded{}", registry.port);
    let d = server.deploy(&app, &repo.at("v1"), &["--replicas", "2"]).ok().json();
    assert_eq!(d["status"], "completed", "{d}");
    assert!(d["images"][repo.at("v1").as_str()].as_str().is_some_and(|p| p.contains("@sha256:")), "{d}");
    let before = replica_ids(&server, &app);
    let load = Load::start(server.app_port(&app), 2);

    // A tag the registry does not have.
    let unknown = repo.at("nope");
    let error = failed_pull(&server, &app, &unknown);
    assert!(error.contains(&unknown) && (error.contains("not found") || error.contains("manifest unknown")), "{error}");
    assert_unchanged(&server, &app, &before, "an unknown tag");

    // No credentials: the registry refuses, and the error says how to give them.
    server.cli(&["registry", "logout", &repo.host]).ok();
    let error = failed_pull(&server, &app, &repo.at("v2"));
    assert!(
        ["unauthorized", "no basic auth credentials", "denied", "wants credentials"]
            .iter()
            .any(|cause| error.contains(cause))
            && error.contains("hivemind registry login"),
        "{error}"
    );
    assert_unchanged(&server, &app, &before, "refused credentials");

    // The registry down.
    registry_login(&server, &repo.host, USER, PASSWORD);
    registry.stop();
    let error = failed_pull(&server, &app, &repo.at("v2"));
    assert!(
        error.contains(&repo.host) && (error.contains("connection refused") || error.contains("did not answer")),
        "{error}"
    );
    assert_unchanged(&server, &app, &before, "the registry down");

    std::thread::sleep(Duration::from_millis(200));
    load.stop().assert_no_failures("three deployments whose pull failed");
    let metrics = server.get("/metrics").1;
    assert_eq!(metric(&server, "hivemind_image_pulls_total", "result=\"failed\""), 3.0, "{metrics}");
    assert_eq!(metric(&server, "hivemind_image_pulls_total", "result=\"ok\""), 1.0, "{metrics}");
}

/// The regular files under `dir` that other users may read (links are not followed).
fn readable_by_others(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() && meta.permissions().mode() & 0o004 != 0 {
            found.push(path);
        }
    }
    found
}

/// `secret` as it shows inside any base64 text (the `X-Registry-Auth` header, an `auth`
/// of config.json), at each of the three alignments, in both alphabets: the characters
/// that only its own bytes decide.
fn base64_forms(secret: &str) -> Vec<String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let mut forms = Vec::new();
    for pad in 0..3 {
        let bytes = [&b"\0\0"[..pad], secret.as_bytes()].concat();
        let (first, end) = ((pad * 8).div_ceil(6), bytes.len() * 8 / 6);
        for engine in [&STANDARD, &URL_SAFE] {
            forms.push(engine.encode(&bytes)[first..end].to_string());
        }
    }
    forms
}

/// Three registries that ask for one password, one app pulled from each: with the
/// credentials of the `auths` of the server's Docker config (DOCKER_CONFIG), of a
/// credential helper it names (`credHelpers`, a `docker-credential-test` on the server's
/// PATH, which is asked for that registry), and of `registry login` (which `registry
/// list` shows, without the password). The password, plain or in base64, is then in no
/// line of the server's log, no answer of the API or the CLI, no event, no metric, and no
/// file of the data dir that others may read. (The Docker config and the helper are the
/// test's own, and hold it by design.)
#[test]
fn registry_credentials_come_from_docker_config_a_helper_or_login_and_never_leak() {
    let test = "registry_credentials_come_from_docker_config_a_helper_or_login_and_never_leak";
    if !docker_available(test) || !tools_available(test, &["htpasswd", "openssl"]) {
        return;
    }
    demo_images();
    let password = format!("s3cret-{}-pw", free_port());
    // A registry per source: Docker's rules give a registry one source at a time.
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut registries = Vec::new();
    for dir in &dirs {
        let Some(registry) = authenticated_registry(dir.path(), USER, &password) else { return };
        registries.push(registry);
    }
    let sources = ["config", "helper", "login"];
    let repos: Vec<Repository> = registries.iter().zip(sources).map(|(r, source)| Repository::new(r, source)).collect();
    let client = DockerClient::new();
    for (repo, version) in repos.iter().zip(["v1", "v2", "v3"]) {
        client.login(&repo.host, USER, &password);
        client.push_as(&format!("hivemind-demo:{version}"), &repo.at(version));
    }
    let (by_config, by_helper, by_login) = (&repos[0], &repos[1], &repos[2]);

    // The server's Docker config: `auths` for one registry, a helper for another.
    let docker_config = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "auths": { by_config.host.clone(): { "auth": basic_auth(USER, &password) } },
        "credHelpers": { by_helper.host.clone(): "test" }
    });
    std::fs::write(docker_config.path().join("config.json"), config.to_string()).unwrap();
    // The helper answers for its registry only, and notes what it was asked.
    let helpers = tempfile::tempdir().unwrap();
    let asked = helpers.path().join("asked");
    let helper = helpers.path().join("docker-credential-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n\
             [ \"$1\" = get ] || exit 1\n\
             server=$(cat)\n\
             echo \"get $server\" >> '{asked}'\n\
             if [ \"$server\" != '{host}' ]; then echo 'credentials not found in native keychain'; exit 1; fi\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{password}\"}}\\n' \"$server\"\n",
            asked = asked.display(),
            host = by_helper.host,
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", helpers.path().display(), std::env::var("PATH").unwrap_or_default());
    let server = Server::start_with_env(
        "docker",
        &[],
        &[("DOCKER_CONFIG", docker_config.path().to_str().unwrap()), ("PATH", path.as_str())],
    );
    registry_login(&server, &by_login.host, USER, &password);

    let apps: Vec<String> = sources.iter().map(|source| format!("from-{source}-{}", registries[0].port)).collect();
    for ((app, repo), version) in apps.iter().zip(&repos).zip(["v1", "v2", "v3"]) {
        let d = server.deploy(app, &repo.at(version), &[]).ok().json();
        assert_eq!(d["status"], "completed", "{d}");
        let pinned = server.api(&format!("/api/apps/{app}"))["release"]["pinned"].clone();
        assert!(pinned.as_str().is_some_and(|p| p.starts_with(&format!("{}@sha256:", repo.name))), "{pinned}");
        assert_eq!(versions_served(server.app_port(app), 2), vec![version; 2]);
    }
    let asked = std::fs::read_to_string(&asked).unwrap_or_default();
    assert!(asked.contains(&format!("get {}", by_helper.host)), "the helper was not asked: {asked}");
    let listed = server.cli(&["registry", "list"]).ok().stdout;
    assert!(listed.contains(&by_login.host) && listed.contains(USER), "{listed}");

    // Everywhere the password could show.
    let mut seen = vec![("the server's log".to_string(), server.log()), ("registry list".to_string(), listed)];
    let json_list = server.cli(&["registry", "list", "--output", "json"]).ok().stdout;
    seen.push(("registry list --output json".to_string(), json_list));
    let mut paths = vec!["/api/apps".to_string(), "/api/deployments".to_string(), "/metrics".to_string()];
    for app in &apps {
        paths.extend([format!("/api/apps/{app}"), format!("/api/apps/{app}/events")]);
    }
    for d in server.cli_json(&["deployment", "list"]).as_array().unwrap() {
        let id = d["id"].as_str().unwrap();
        paths.extend([format!("/api/deployments/{id}"), format!("/api/deployments/{id}/events")]);
    }
    for path in paths {
        let (status, body) = server.get(&path);
        assert!(status < 400, "{path}: {status} {body}");
        seen.push((path, body));
    }
    // The stored logins, if the API lists them on a route of their own.
    let (status, body) = server.get("/api/registries");
    assert!(status < 400 || status == 404, "/api/registries: {status} {body}");
    seen.push(("/api/registries".to_string(), body));
    for file in readable_by_others(&server.data_dir) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned();
        seen.push((file.display().to_string(), text));
    }
    let forms: Vec<String> = [password.clone()].into_iter().chain(base64_forms(&password)).collect();
    for (place, text) in &seen {
        for form in &forms {
            assert!(!text.contains(form.as_str()), "the password shows in {place} (as `{form}`)");
        }
    }
}

/// On Swarm: a registry over HTTPS that asks for credentials, `registry login`, and an
/// image the engine lacks. The services are created with the credentials, their task
/// spec names the image by the release's pinned digest, and they serve v1.
#[test]
fn a_swarm_service_pulls_from_an_authenticated_registry_and_runs_the_pinned_digest() {
    let test = "a_swarm_service_pulls_from_an_authenticated_registry_and_runs_the_pinned_digest";
    if crate::swarm::swarm_ready(test).is_none() || !tools_available(test, &["htpasswd", "openssl"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(registry) = authenticated_registry(dir.path(), USER, PASSWORD) else { return };
    let repo = Repository::new(&registry, "swarm");
    let client = DockerClient::new();
    client.login(&repo.host, USER, PASSWORD);
    let digest = client.push_as("hivemind-demo:v1", &repo.at("v1"));
    let server = Server::start("swarm");
    registry_login(&server, &repo.host, USER, PASSWORD);
    let app = format!("swarmpull{}", registry.port);

    let d = server.deploy(&app, &repo.at("v1"), &["--replicas", "2"]).ok().json();
    assert_eq!(d["status"], "completed", "{d}");
    let pinned = format!("{}@{digest}", repo.name);
    assert_eq!(d["images"][repo.at("v1").as_str()], pinned.as_str(), "{d}");
    assert_eq!(server.api(&format!("/api/apps/{app}"))["release"]["pinned"], pinned.as_str());
    let all = replicas(&server, &app);
    assert_eq!(all.len(), 2, "{all:?}");
    for replica in &all {
        let service = replica["handle"].as_str().unwrap();
        let image = docker(&["service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", service]);
        assert!(
            image.starts_with(&repo.name) && image.ends_with(&format!("@{digest}")),
            "service {service} runs {image}, not the pin {pinned}"
        );
    }
    assert_eq!(versions_served(server.app_port(&app), 4), vec!["v1"; 4]);
}
