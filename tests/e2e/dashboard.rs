//! The dashboard in a real headless Chromium (through chromedriver), against a real server
//! with real replicas (the process runtime) and real traffic through the app's router.
//! What a user would check: signing in, a canary followed live on an open page, a failed
//! analysis with its figures, actions that take effect, a plugin installed by upload.

use crate::common::webdriver::Browser;
use crate::common::{Load, Server, demo_command, http_get, repo_root, swap_plugin};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// Where screenshots go: `docs/src/dashboard/` with HIVEMIND_UPDATE_SCREENSHOTS=1 (as the
/// committed ones were made), the test's own temporary dir otherwise.
fn screenshot(browser: &Browser, dir: &std::path::Path, name: &str) -> PathBuf {
    let dir = if std::env::var("HIVEMIND_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        repo_root().join("docs/src/dashboard")
    } else {
        dir.to_path_buf()
    };
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    browser.screenshot(&path);
    assert!(std::fs::metadata(&path).unwrap().len() > 20_000, "the {name} screenshot is all but empty");
    path
}

fn sign_in(browser: &Browser, server: &Server) {
    browser.goto(&format!("{}/", server.url));
    browser.find("#signin", WAIT);
    browser.type_into("#token", &server.token);
    browser.click("#signin button[type=submit]");
    browser.find("body[data-view=apps]", WAIT);
}

/// Every button, link and field on the page has a name a screen reader can say (its text,
/// an aria-label or a label) and is in the tab order.
fn assert_every_control_is_named(browser: &Browser) {
    let unnamed = browser.script(
        "return [...document.querySelectorAll('button, input, select, a[href]')].filter((e) => {
           const label = e.id && document.querySelector(`label[for=\"${e.id}\"]`);
           const name = (e.getAttribute('aria-label') || e.textContent || '').trim() || label || e.closest('label');
           return !name || e.tabIndex < 0;
         }).map((e) => e.outerHTML.slice(0, 120));",
        json!([]),
    );
    assert_eq!(unnamed, json!([]), "controls without a name, or out of the tab order");
}

fn deploy_detached(server: &Server, app: &str, image: &str, extra: &[&str]) -> String {
    let mut args = extra.to_vec();
    args.push("--detach");
    let d = server.deploy(app, image, &args).ok().json();
    d["id"].as_str().unwrap().to_string()
}

/// The dashboard's files need no token and carry the headers that keep the page to
/// itself; the data behind them does need the token.
#[test]
fn the_dashboard_is_served_with_a_strict_policy_and_no_data_without_the_token() {
    let server = Server::start("process");
    let page =
        std::process::Command::new("curl").args(["-s", "-D", "-", &format!("{}/", server.url)]).output().expect("curl");
    let page = String::from_utf8_lossy(&page.stdout).to_ascii_lowercase();
    assert!(page.starts_with("http/1.1 200"), "{page}");
    for header in [
        "content-type: text/html",
        "content-security-policy: default-src 'none'; script-src 'self'",
        "frame-ancestors 'none'",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
    ] {
        assert!(page.contains(header), "no `{header}` in:\n{page}");
    }
    assert!(page.contains("<script src=\"/ui/app.js\""), "{page}");
    let (status, script) = http_get(&format!("{}/ui/app.js", server.url));
    assert_eq!(status, 200);
    assert!(script.contains("Authorization: 'Bearer '"), "the script sends the token as a header");
    assert!(!script.contains("innerHTML"), "the script never writes data as HTML");
    let (status, body) = http_get(&format!("{}/api/apps", server.url));
    assert_eq!(status, 401, "{body}");
}

/// (With the process runtime, releases are numbered r1, r2, … as the demo's command has no tag.)
///
/// Sign in (a wrong token is refused with where the right one is), see an app, start a
/// canary from the CLI and watch its progress and split change on the open page with no
/// reload; then a failing canary rolls back and the page shows the failed analysis with
/// its figures.
#[test]
fn a_canary_is_followed_live_and_a_failed_analysis_is_shown_with_its_figures() {
    let Some(browser) = Browser::start("dashboard::canary") else { return };
    let server = Server::start("process");
    let shots = tempfile::tempdir().unwrap();
    server.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let port = server.app_port("web");

    browser.goto(&format!("{}/", server.url));
    browser.type_into("#token", "hm_not_the_token");
    browser.click("#signin button[type=submit]");
    browser.wait_for_text("#signin-error", "DATA_DIR/token", WAIT);
    browser.type_into("#token", &server.token);
    browser.click("#signin button[type=submit]");
    let row = browser.wait_for_text("#apps tr[data-app=web]", "2 of 2 healthy", WAIT);
    assert!(row.contains("r1") && row.contains(&format!("router port {port}")), "{row}");
    assert_eq!(browser.text("#apps tr[data-app=web] .split span[data-version=r1]"), "r1 100%");

    browser.click("#apps a[href='#/apps/web']");
    browser.find("body[data-view=app] #app-summary dl", WAIT);
    let loaded = browser.time_origin();
    let load = Load::start(port, 2);
    let id = deploy_detached(
        &server,
        "web",
        &demo_command("v2", ""),
        &["--strategy", "canary", "--steps", "25,50,100", "--interval", "4", "--min-requests", "5"],
    );
    let live = format!("#app-live section.deployment[data-id='{id}']");
    browser.find(&live, WAIT);
    let (mut progress, mut shares) = (BTreeSet::new(), BTreeSet::new());
    let mut screenshot_taken = false;
    browser.wait("the canary to complete on the open page", Duration::from_secs(90), |b| {
        progress.insert(b.text(&format!("{live} [data-field=progress-text]")));
        let share = b.text(&format!("{live} [data-field=split] span[data-version=r2]"));
        if !share.is_empty() {
            shares.insert(share.clone());
        }
        let analysed = b.text(&format!("{live} table.analyses"));
        if share == "r2 50%" && !screenshot_taken && analysed.contains("r1 50% / r2 50%") {
            b.resize(1400, 1800);
            b.script("document.querySelector(arguments[0]).scrollIntoView();", json!([live]));
            screenshot(b, shots.path(), "canary");
            b.resize(1400, 1000);
            screenshot_taken = true;
        }
        b.text(&format!("{live} [data-field=status]")).contains("completed")
    });
    assert!(shares.contains("r2 25%") && shares.contains("r2 50%"), "the split went through 25% and 50%: {shares:?}");
    assert!(progress.len() >= 3, "the progress moved on the page: {progress:?}");
    assert!(screenshot_taken, "the canary was seen at 50% with its analyses");
    assert_eq!(browser.time_origin(), loaded, "the page was never reloaded");
    let analyses = browser.text(&format!("{live} table.analyses"));
    assert!(analyses.contains("r2 vs r1") && analyses.contains("two-proportion z"), "{analyses}");
    load.stop().assert_no_failures("the healthy canary");

    // A version failing half its requests: the analysis fails, the canary rolls back.
    let load = Load::start(port, 2);
    let id = deploy_detached(
        &server,
        "web",
        &demo_command("v3", "--error-rate 0.5"),
        &["--strategy", "canary", "--steps", "25,100", "--interval", "30", "--min-requests", "20"],
    );
    let live = format!("#app-live section.deployment[data-id='{id}']");
    browser.find(&live, WAIT);
    browser.wait_for_text(&format!("{live} [data-field=status]"), "failed", Duration::from_secs(60));
    load.stop();
    let error = browser.text(&format!("{live} [data-field=error]"));
    assert!(error.contains("canary analysis failed at 25%") && error.contains("p = "), "{error}");
    let failed = browser.wait_for_text(&format!("{live} table.analyses tr.failed"), "significantly worse", WAIT);
    assert!(failed.contains("r3 vs r2") && failed.contains("error rate"), "{failed}");
    browser.resize(1400, 1800);
    browser.script("document.querySelector(arguments[0]).scrollIntoView();", json!([live]));
    screenshot(&browser, shots.path(), "canary-failed");
    browser.resize(1400, 1000);
    browser.wait_for_text(&format!("{live} ul.verdicts"), "canary analysis failed at 25%: error rate", WAIT);
    let app = server.api("/api/apps/web");
    assert_eq!(app["release"]["version"], "r2", "the previous release serves");
    assert_eq!(app["split"], json!([["r2", 100]]));
    assert_eq!(browser.time_origin(), loaded, "the page was never reloaded");
}

/// Promote and abort clicked on the page (each after a confirmation that says what will
/// happen) take effect, as the API shows; a plugin installed by upload is listed.
#[test]
fn promote_abort_and_a_plugin_upload_from_the_page_take_effect() {
    let Some(browser) = Browser::start("dashboard::actions") else { return };
    let server = Server::start("process");
    server.deploy("shop", &demo_command("v1", ""), &[]).ok();
    sign_in(&browser, &server);

    // No traffic and a high --min-requests: the canary's analysis is inconclusive and it
    // waits for a person.
    let gated = ["--strategy", "canary", "--steps", "50,100", "--interval", "1", "--min-requests", "1000"];
    let id = deploy_detached(&server, "shop", &demo_command("v2", ""), &gated);
    browser.goto(&format!("{}/#/deployments/{id}", server.url));
    browser.wait_for_text("[data-field=status]", "awaiting approval", WAIT);
    assert_every_control_is_named(&browser);
    // By keyboard: Enter on the focused button.
    browser.type_into("#controls button:not(.danger)", "\u{E007}");
    let said = browser.confirm("goes on to its next step");
    assert!(said.contains("inconclusive"), "the confirmation says why it waits: {said}");
    let end = server.wait_for(&id, WAIT);
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(server.api("/api/apps/shop")["release"]["version"], "r2");
    browser.wait_for_text("[data-field=status]", "completed", WAIT);

    let id = deploy_detached(&server, "shop", &demo_command("v3", ""), &gated);
    browser.goto(&format!("{}/#/deployments/{id}", server.url));
    browser.wait_for_text("[data-field=status]", "awaiting approval", WAIT);
    browser.click("#controls button.danger");
    browser.confirm("r2 serves all traffic again");
    let end = server.wait_for(&id, WAIT);
    assert_eq!(end["status"], "aborted", "{end}");
    assert_eq!(server.api("/api/apps/shop")["release"]["version"], "r2");
    browser.wait_for_text("[data-field=status]", "aborted", WAIT);

    // History, filtered by status from the form: the aborted deployment only.
    browser.goto(&format!("{}/#/history", server.url));
    browser.find("body[data-view=history] #filters", WAIT);
    browser.click("#filter-status option[value=aborted]");
    browser.click("#filters button[type=submit]");
    // Three deployments of shop so far: only the aborted one is listed.
    browser.wait("the history filtered by status: the aborted deployment only", WAIT, |b| {
        let rows = b.script(
            "return [...document.querySelectorAll('table.deployments tbody tr')].map((r) => r.dataset.deployment);",
            json!([]),
        );
        b.script("return location.hash;", json!([])).as_str().unwrap_or_default().contains("status=aborted")
            && rows == json!([id])
    });

    // Blue-green: which colour serves, the preview route, blue's scale-down countdown.
    let id = deploy_detached(
        &server,
        "shop",
        &demo_command("v4", ""),
        &["--strategy", "blue-green", "--verification-soak", "0", "--scale-down-delay", "60"],
    );
    let green = server.api(&format!("/api/deployments/{id}"))["target_version"].as_str().unwrap().to_string();
    browser.goto(&format!("{}/#/deployments/{id}", server.url));
    browser.wait_for_text("[data-field=serving]", &format!("green ({green})"), WAIT);
    let countdown = browser.wait_for_text("[data-field=scale-down]", "scaled down in", WAIT);
    assert!(countdown.contains("Blue r2 is kept idle"), "{countdown}");
    assert!(browser.body_text().contains(&format!("x-hivemind-variant: {green}")), "the preview route is shown");

    // Install a strategy by upload.
    let wasm = swap_plugin("1.2.3");
    browser.goto(&format!("{}/#/plugins", server.url));
    browser.find("#plugins tr[data-plugin=canary]", WAIT);
    browser.type_into("#plugin-file", &wasm.display().to_string());
    browser.click("#plugin-upload button[type=submit]");
    let row = browser.wait_for_text("#plugins tr[data-plugin=test-swap]", "1.2.3", WAIT);
    assert!(row.contains("strategy") && row.contains("installed") && row.contains("enabled"), "{row}");
    let listed = server.api("/api/plugins");
    assert!(listed.as_array().unwrap().iter().any(|p| p["name"] == "test-swap" && p["version"] == "1.2.3"), "{listed}");
    assert_every_control_is_named(&browser);
    // Its inspection lists what it imports.
    browser.click("#plugins button[aria-label='Inspect test-swap']");
    browser.wait_for_text("#plugins tr.detail:not([hidden])", "hivemind:plugin/", WAIT);
    // Disable it from the page: the API refuses new deployments with it.
    browser.click("#plugins button[aria-label='Disable test-swap']");
    browser.confirm("no longer use test-swap");
    browser.wait_for_text("#plugins tr[data-plugin=test-swap]", "disabled", WAIT);
    assert_eq!(server.api("/api/plugins/test-swap")["enabled"], false);
}

/// An A/B test on its page: a row per variant with its figures, the tests of each variant
/// against each other, and the winner rule; and the apps page with several apps.
#[test]
fn an_ab_test_shows_each_variant_and_the_apps_page_each_app() {
    let Some(browser) = Browser::start("dashboard::ab") else { return };
    let server = Server::start("process");
    let shots = tempfile::tempdir().unwrap();
    server.deploy("checkout", &demo_command("v1", ""), &[]).ok();
    server.deploy("search", &demo_command("v4", ""), &["--replicas", "3"]).ok();
    server.deploy("accounts", &demo_command("v7", ""), &["--replicas", "2"]).ok();
    let port = server.app_port("checkout");
    let load = Load::start(port, 2);
    let variants = [
        format!("name=red,image={},percentage=50", demo_command("red", "")),
        format!("name=green,image={},percentage=30", demo_command("green", "--error-rate 0.2")),
        format!("name=blue,image={},percentage=20", demo_command("blue", "")),
    ];
    let mut args = vec!["app", "deploy", "--detach", "--output", "json", "--name", "checkout", "--strategy"];
    args.extend([
        "ab-testing",
        "--duration",
        "3600",
        "--winner-metric",
        "error-rate",
        "--health-check-path",
        "/health",
    ]);
    for v in &variants {
        args.extend(["--variant", v.as_str()]);
    }
    let id = server.cli(&args).ok().json()["id"].as_str().unwrap().to_string();
    sign_in(&browser, &server);
    browser.goto(&format!("{}/#/deployments/{id}", server.url));
    browser.wait("every variant to have requests on the page", Duration::from_secs(60), |b| {
        ["red", "green", "blue"].iter().all(|v| {
            let requests = b.text(&format!("table.variants tr[data-variant={v}] [data-field=requests]"));
            requests.parse::<u64>().is_ok_and(|n| n >= 200)
        })
    });
    // Each pair is tested, told the way the data leans: green (20% errors) is the worse
    // of each pair it is in.
    let error_rate =
        |pair: &str| browser.text(&format!("table.significance tr[data-metric=error-rate][data-pair='{pair}']"));
    for pair in ["green vs red", "green vs blue"] {
        let row = error_rate(pair);
        assert!(row.contains("two-proportion z") && row.contains("significantly worse"), "{pair}: {row}");
    }
    // Neither of the two without errors is worse (told either way round).
    let even = error_rate("blue vs red") + &error_rate("red vs blue");
    assert!(!even.is_empty() && !even.contains("significantly"), "blue and red both serve without errors: {even}");
    assert!(browser.text("[data-field=winner-rule]").contains("error-rate"));
    browser.resize(1400, 1500);
    screenshot(&browser, shots.path(), "ab-test");
    browser.resize(1400, 1000);

    browser.goto(&format!("{}/#/apps", server.url));
    browser.wait_for_text("#apps tr[data-app=checkout]", "red 50%", WAIT);
    screenshot(&browser, shots.path(), "apps");
    server.cli(&["deployment", "abort", "--id", &id]).ok();
    server.wait_for(&id, WAIT);
    load.stop();
}

/// The apps page with 200 apps, loaded in the browser ten times: Navigation Timing's
/// figures and the time until the table is drawn, printed. Run with
/// `cargo test -p hivemind --test e2e dashboard::apps_page_load -- --ignored --nocapture`
/// (bench/dashboard.sh).
#[test]
#[ignore = "a benchmark: prints figures"]
fn apps_page_load_with_200_apps() {
    let Some(browser) = Browser::start("dashboard::bench") else { return };
    let server = Server::start_with_flags("process", &["--max-replicas", "400", "--app-replica-quota", "2"]);
    let started = Instant::now();
    let deploys: Vec<_> = (0..200)
        .map(|i| {
            let url = server.url.clone();
            let token = server.token.clone();
            let image = demo_command("v1", "");
            std::thread::spawn(move || {
                let body = json!({"app": format!("app{i:03}"), "image": image, "health_check_path": "/health"});
                crate::common::http_request_with(
                    "POST",
                    &format!("{url}/api/apps/deploy"),
                    Some(("application/json", body.to_string().as_bytes())),
                    Some(&token),
                )
            })
        })
        .collect();
    for d in deploys {
        let (status, body) = d.join().unwrap();
        assert_eq!(status, 201, "{body}");
    }
    crate::common::wait_until("200 apps serving", Duration::from_secs(120), || {
        server.api("/api/apps").as_array().unwrap().iter().filter(|a| a["release"].is_object()).count() == 200
    });
    eprintln!("200 apps deployed in {:.1} s", started.elapsed().as_secs_f64());
    sign_in(&browser, &server);
    let mut rendered = Vec::new();
    let mut loaded = Vec::new();
    for _ in 0..10 {
        browser.goto("about:blank");
        browser.goto(&format!("{}/#/apps", server.url));
        browser.find("#apps tr[data-app=app199]", WAIT);
        let timing = browser.script(
            "const n = performance.getEntriesByType('navigation')[0];
             const r = performance.getEntriesByName('hivemind:apps-rendered')[0];
             return [n.domContentLoadedEventEnd, n.loadEventEnd, r ? r.startTime : -1,
                     document.querySelectorAll('#apps tbody tr').length];",
            json!([]),
        );
        assert_eq!(timing[3], 200, "every app has a row");
        loaded.push(timing[1].as_f64().unwrap());
        rendered.push(timing[2].as_f64().unwrap());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() - 1])
    };
    let (load_median, load_max) = median(&mut loaded);
    let (drawn_median, drawn_max) = median(&mut rendered);
    eprintln!(
        "FIGURES apps page, 200 apps, 10 loads in headless Chromium: load event {load_median:.0} ms median \
         ({load_max:.0} slowest); table drawn {drawn_median:.0} ms after navigation start median ({drawn_max:.0} slowest)"
    );
}
