//! hivemind-demo: a tiny, dependency-free HTTP app with fault knobs, for Hivemind's quick
//! start and tests. Built statically, it runs in a `FROM scratch` image.

mod app;
mod config;
mod http;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;

use config::Command;

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os().skip(1).map(|arg| arg.into_string()).collect() {
        Ok(args) => args,
        Err(arg) => return usage_error(&format!("argument {arg:?} is not valid UTF-8")),
    };
    let env = |key: &str| std::env::var_os(key).map(|v| v.to_string_lossy().into_owned());

    match config::parse(&args, env) {
        Err(msg) => usage_error(&msg),
        Ok(Command::Help) => {
            print!("{}", config::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::SelfTest(config)) => match app::self_test(&config) {
            Ok(msg) => {
                println!("{msg}");
                ExitCode::SUCCESS
            }
            Err(msg) => {
                eprintln!("hivemind-demo: self-test failed: {msg}");
                ExitCode::FAILURE
            }
        },
        Ok(Command::Serve(config)) => {
            signals::exit_on_term();
            // HOST narrows the bind address (the process runtime sets 127.0.0.1); a
            // container needs 0.0.0.0 to be reachable through its published port.
            let host =
                std::env::var("HOST").ok().and_then(|h| h.parse::<Ipv4Addr>().ok()).unwrap_or(Ipv4Addr::UNSPECIFIED);
            let addr = SocketAddr::from((host, config.port));
            let listener = match TcpListener::bind(addr) {
                Ok(listener) => listener,
                Err(e) => {
                    eprintln!("hivemind-demo: cannot listen on {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let local = listener.local_addr().unwrap_or(addr);
            eprintln!(
                "hivemind-demo {} listening on {local} (fail_health={} error_rate={} latency_ms={})",
                config.version, config.fail_health, config.error_rate, config.latency_ms
            );
            app::serve(listener, Arc::new(app::App::new(config)))
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("hivemind-demo: {msg}\n\n{}", config::USAGE);
    ExitCode::from(2)
}

/// Exit at once on SIGTERM and SIGINT.
///
/// The default action would do the same, except for PID 1: the kernel drops signals with the
/// default action for a namespace's init process, and in a `FROM scratch` container this
/// binary is PID 1, so without a handler `docker stop` would wait for its SIGKILL timeout.
#[cfg(unix)]
mod signals {
    use std::ffi::c_int;

    const SIGINT: c_int = 2;
    const SIGTERM: c_int = 15;
    const SIG_ERR: usize = usize::MAX;

    // std links the C library anyway; these two are all we need from it.
    unsafe extern "C" {
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
        fn _exit(status: c_int) -> !;
    }

    extern "C" fn on_signal(_: c_int) {
        // _exit is async-signal-safe. There is no state to flush: responses are written whole.
        unsafe { _exit(0) }
    }

    pub fn exit_on_term() {
        for signum in [SIGTERM, SIGINT] {
            // SAFETY: installs a handler that only calls an async-signal-safe function.
            if unsafe { signal(signum, on_signal) } == SIG_ERR {
                eprintln!("hivemind-demo: cannot install a handler for signal {signum}");
            }
        }
    }
}

#[cfg(not(unix))]
mod signals {
    pub fn exit_on_term() {}
}
