//! A real OCI registry for the plugin tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on a free loopback port, storing in a temporary directory,
//! over plain HTTP or over TLS with a test CA's certificate, with or without htpasswd
//! credentials.

use std::path::Path;
use std::time::{Duration, Instant};

pub struct Registry {
    child: std::process::Child,
    pub port: u16,
}

/// How the registry is reached: its certificate and key (TLS), and an htpasswd file.
#[derive(Default)]
pub struct RegistryOptions<'a> {
    pub tls: Option<(&'a str, &'a str)>,
    pub htpasswd: Option<&'a Path>,
}

impl Registry {
    /// A registry over plain HTTP with no credentials, or None (a skip) if docker-registry
    /// is not installed and the tools are not required.
    pub fn start(dir: &Path) -> Option<Registry> {
        Registry::start_with(dir, RegistryOptions::default())
    }

    pub fn start_with(dir: &Path, options: RegistryOptions) -> Option<Registry> {
        let binary = Path::new("/usr/bin/docker-registry");
        if !binary.exists() {
            if std::env::var("HIVEMIND_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!("docker-registry is not installed (apt-get install docker-registry; .ci/run does)");
            }
            eprintln!("docker-registry is not installed; the OCI round trip is skipped");
            return None;
        }
        let port = crate::common::free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        if let Some((cert, key)) = options.tls {
            config.push_str(&format!("  tls:\n    certificate: {cert}\n    key: {key}\n"));
        }
        if let Some(htpasswd) = options.htpasswd {
            config
                .push_str(&format!("auth:\n  htpasswd:\n    realm: hivemind-test\n    path: {}\n", htpasswd.display()));
        }
        let file = dir.join("config.yml");
        std::fs::write(&file, config).unwrap();
        let child = std::process::Command::new(binary)
            .args(["serve", file.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .unwrap();
        let registry = Registry { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not start: {}",
                std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(registry)
    }

    /// Stops the registry, as one that went down: connections to its port are refused.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
