//! A hook that misbehaves as its argument says, to check that the sandbox holds for hooks
//! as it does for strategies: `loop`, `memory`, `network HOST:PORT`, `sleep`, `fail`, or
//! `post URL` (through the host's http capability, which checks the allowlist), or
//! `job COMMAND` (through the host's jobs capability, which needs the `jobs` grant).
use hivemind_sdk::prelude::*;

struct HostileHook;

impl Hook for HostileHook {
    const NAME: &'static str = "test-hostile-hook";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "misbehaves on request";

    fn run(d: &Deployment, _: Stage, argument: &str) -> Result<String> {
        let (what, rest) = argument.split_once(' ').unwrap_or((argument, ""));
        match what {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "network" => match std::net::TcpStream::connect(rest) {
                Ok(_) => Ok(format!("connected to {rest} directly")),
                Err(e) => Err(Error(format!("could not connect to {rest}: {e}"))),
            },
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok("woke up".into())
            }
            "job" => {
                let job = jobs::run_job(&d.target.version, rest, 30_000)?;
                Ok(format!("the job exited {}: {}", job.exit_code, job.output.trim()))
            }
            "post" => {
                let answer = http::post_json(rest, "{}", 5_000)?;
                Ok(format!("answered {}", answer.status))
            }
            _ => Err(Error(format!("the hook says no to `{argument}`"))),
        }
    }
}

hivemind_sdk::export_hook!(HostileHook);
