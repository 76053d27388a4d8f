//! What a server leaves running, found and killed: the router process, replicas (process
//! groups, containers, Swarm services).

use std::path::Path;
use std::process::Command;

use super::store::open_store;

/// The pid of the router process of a data dir, from its pid file.
pub fn router_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("router.pid")).ok()?.trim().parse().ok()
}

/// Whether a process runs (and is not a zombie).
pub fn process_runs(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()))
        .is_some_and(|state| !matches!(state, 'Z' | 'X'))
}

/// Kills the router process of a data dir, if one runs.
pub fn stop_router(data_dir: &Path) {
    if let Some(pid) = router_pid(data_dir) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Removes every replica recorded in a data dir's store: process groups or containers.
pub fn remove_replicas(data_dir: &Path, runtime: &str) {
    remove_replicas_of(data_dir, runtime, None)
}

/// Removes every replica recorded in the store of a server: its Postgres database when
/// `database_url` names one, else the data dir's (SQLite, or the suite's Postgres pass).
pub fn remove_replicas_of(data_dir: &Path, runtime: &str, database_url: Option<&str>) {
    let (dir, url) = (data_dir.to_path_buf(), database_url.map(str::to_string));
    let replicas = std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = match url {
                Some(url) => hivemind::store::Store::connect(&url).await,
                None => open_store(&dir).await,
            };
            match store {
                Ok(store) => store.replicas().await.unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        })
    })
    .join()
    .unwrap_or_default();
    kill_replicas(replicas, runtime);
}

fn kill_replicas(replicas: Vec<hivemind::model::ReplicaRecord>, runtime: &str) {
    for r in replicas {
        // A replica of a deployment target (`docker@edge`) is its driver's, not the server's.
        let driver = if r.driver.is_empty() { runtime } else { r.driver.split('@').next().unwrap_or(runtime) };
        match driver {
            "docker" => {
                let _ = Command::new("docker").args(["rm", "-f", &r.handle]).output();
            }
            "swarm" => {
                let _ = Command::new("docker").args(["service", "rm", &r.handle]).output();
            }
            _ => {
                if let Ok(pid) = r.handle.parse::<i32>() {
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// `docker kill -s KILL` of a container, which must succeed.
pub fn docker_kill(container: &str) {
    let killed = Command::new("docker").args(["kill", "-s", "KILL", container]).output();
    assert!(killed.is_ok_and(|o| o.status.success()), "docker kill {container}");
}

/// The container of the running task of Swarm service `service` on this node.
pub fn swarm_container(service: &str) -> String {
    let out = Command::new("docker")
        .args(["ps", "-q", "--no-trunc", "--filter", &format!("label=com.docker.swarm.service.id={service}")])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "no running container of service {service}");
    id
}
