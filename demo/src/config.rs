//! Command-line and environment knobs.
//!
//! Every knob can come from the environment; the command line wins over it.

pub const USAGE: &str = "\
Usage: hivemind-demo [VERSION] [--fail-health] [--error-rate F] [--latency-ms N]
       hivemind-demo self-test [VERSION] [OPTIONS]

A tiny HTTP app with fault knobs. Listens on $HOST:$PORT (default 0.0.0.0:8080).

Arguments:
  VERSION              version to report (env VERSION, default v1)

Options:
  --fail-health        answer /health with 503 (env DEMO_FAIL_HEALTH=1)
  --error-rate F       answer / and /slow with 500 with probability F in [0, 1]
                       (env DEMO_ERROR_RATE)
  --latency-ms N       add N ms of latency to / and /slow (env DEMO_LATENCY_MS)
  -h, --help           show this help

Routes: GET / , /health, /slow?ms=N, /metrics.
self-test serves / and /health to itself on a loopback port and exits 0 on success.
";

/// Upper bound for `--latency-ms` and `/slow?ms=`: ten minutes.
pub const MAX_DELAY_MS: u64 = 600_000;

const MAX_VERSION_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub version: String,
    pub fail_health: bool,
    pub error_rate: f64,
    pub latency_ms: u64,
    pub port: u16,
}

#[derive(Debug, PartialEq)]
pub enum Command {
    Serve(Config),
    SelfTest(Config),
    Help,
}

/// Parses the arguments (without the program name) and the environment, looked up through `env`.
/// Empty environment variables count as unset.
pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Command, String> {
    let env = |key: &str| env(key).filter(|v| !v.is_empty());

    let (self_test, args) = match args.split_first() {
        Some((first, rest)) if first == "self-test" => (true, rest),
        _ => (false, args),
    };

    let mut version = None;
    let mut fail_health = false;
    let mut error_rate = None;
    let mut latency_ms = None;

    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value)),
            _ => (arg, None),
        };
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "--fail-health" => {
                if inline.is_some() {
                    return Err("--fail-health takes no value".into());
                }
                fail_health = true;
            }
            "--error-rate" | "--latency-ms" => {
                let value = match inline {
                    Some(v) => v,
                    None => match args.get(i) {
                        Some(v) => {
                            i += 1;
                            v.as_str()
                        }
                        None => return Err(format!("{name} needs a value")),
                    },
                };
                if name == "--error-rate" {
                    error_rate = Some(parse_error_rate(value, name)?);
                } else {
                    latency_ms = Some(parse_latency(value, name)?);
                }
            }
            _ if name.starts_with('-') && name.len() > 1 => {
                return Err(format!("unknown option {name}"));
            }
            _ => {
                if version.is_some() {
                    return Err(format!("unexpected argument {arg:?}"));
                }
                version = Some(arg.to_string());
            }
        }
    }

    let version = match version {
        Some(v) => v,
        None => env("VERSION").unwrap_or_else(|| "v1".to_string()),
    };
    validate_version(&version)?;
    if !fail_health && let Some(v) = env("DEMO_FAIL_HEALTH") {
        fail_health = parse_bool(&v, "DEMO_FAIL_HEALTH")?;
    }
    let error_rate = match error_rate {
        Some(r) => r,
        None => match env("DEMO_ERROR_RATE") {
            Some(v) => parse_error_rate(&v, "DEMO_ERROR_RATE")?,
            None => 0.0,
        },
    };
    let latency_ms = match latency_ms {
        Some(l) => l,
        None => match env("DEMO_LATENCY_MS") {
            Some(v) => parse_latency(&v, "DEMO_LATENCY_MS")?,
            None => 0,
        },
    };
    let port = match env("PORT") {
        Some(v) => v.trim().parse::<u16>().map_err(|_| format!("PORT must be a port number (0-65535), got {v:?}"))?,
        None => 8080,
    };

    let config = Config { version, fail_health, error_rate, latency_ms, port };
    Ok(if self_test { Command::SelfTest(config) } else { Command::Serve(config) })
}

fn parse_error_rate(value: &str, source: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{source} must be a number between 0 and 1, got {value:?}")),
    }
}

fn parse_latency(value: &str, source: &str) -> Result<u64, String> {
    let trimmed = value.trim();
    match trimmed.parse::<u64>() {
        Ok(ms) if ms <= MAX_DELAY_MS && trimmed.bytes().all(|b| b.is_ascii_digit()) => Ok(ms),
        _ => Err(format!("{source} must be a whole number of milliseconds up to {MAX_DELAY_MS}, got {value:?}")),
    }
}

fn parse_bool(value: &str, source: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{source} must be 1 or 0, got {value:?}")),
    }
}

/// The version goes into a response header and a metrics label: keep it to visible ASCII.
fn validate_version(version: &str) -> Result<(), String> {
    if version.is_empty() || version.len() > MAX_VERSION_LEN || !version.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("VERSION must be 1 to {MAX_VERSION_LEN} visible ASCII characters, got {version:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn parse_with(list: &[&str], env: &[(&str, &str)]) -> Result<Command, String> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse(&args(list), |key| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    }

    fn serve(list: &[&str], env: &[(&str, &str)]) -> Config {
        match parse_with(list, env) {
            Ok(Command::Serve(config)) => config,
            other => panic!("expected Serve, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(
            serve(&[], &[]),
            Config { version: "v1".into(), fail_health: false, error_rate: 0.0, latency_ms: 0, port: 8080 }
        );
    }

    #[test]
    fn env_knobs() {
        let config = serve(
            &[],
            &[
                ("VERSION", "v7"),
                ("DEMO_FAIL_HEALTH", "1"),
                ("DEMO_ERROR_RATE", "0.2"),
                ("DEMO_LATENCY_MS", "50"),
                ("PORT", "9000"),
            ],
        );
        assert_eq!(config.version, "v7");
        assert!(config.fail_health);
        assert_eq!(config.error_rate, 0.2);
        assert_eq!(config.latency_ms, 50);
        assert_eq!(config.port, 9000);
    }

    #[test]
    fn empty_env_counts_as_unset() {
        let config = serve(&[], &[("VERSION", ""), ("PORT", ""), ("DEMO_ERROR_RATE", ""), ("DEMO_FAIL_HEALTH", "")]);
        assert_eq!(config.version, "v1");
        assert_eq!(config.port, 8080);
        assert_eq!(config.error_rate, 0.0);
        assert!(!config.fail_health);
    }

    #[test]
    fn command_line_wins_over_env() {
        let config = serve(
            &["v2", "--error-rate", "0.5", "--latency-ms=10"],
            &[("VERSION", "v1"), ("DEMO_ERROR_RATE", "0.1"), ("DEMO_LATENCY_MS", "99"), ("DEMO_FAIL_HEALTH", "0")],
        );
        assert_eq!(config.version, "v2");
        assert_eq!(config.error_rate, 0.5);
        assert_eq!(config.latency_ms, 10);
        assert!(!config.fail_health);

        let config = serve(&["--fail-health"], &[("DEMO_FAIL_HEALTH", "0")]);
        assert!(config.fail_health);
        // Flags may come before the positional version.
        assert_eq!(serve(&["--error-rate=1", "v3"], &[]).version, "v3");
        assert_eq!(serve(&["--error-rate=1", "v3"], &[]).error_rate, 1.0);
    }

    #[test]
    fn bool_spellings() {
        for yes in ["1", "true", "TRUE", "yes", "on"] {
            assert!(serve(&[], &[("DEMO_FAIL_HEALTH", yes)]).fail_health, "{yes}");
        }
        for no in ["0", "false", "no", "off"] {
            assert!(!serve(&[], &[("DEMO_FAIL_HEALTH", no)]).fail_health, "{no}");
        }
        assert!(parse_with(&[], &[("DEMO_FAIL_HEALTH", "maybe")]).is_err());
    }

    #[test]
    fn self_test_subcommand() {
        match parse_with(&["self-test", "v9", "--fail-health"], &[]) {
            Ok(Command::SelfTest(config)) => {
                assert_eq!(config.version, "v9");
                assert!(config.fail_health);
            }
            other => panic!("expected SelfTest, got {other:?}"),
        }
        // Only the first argument is the subcommand; elsewhere it is a version.
        assert_eq!(serve(&["self-test2"], &[]).version, "self-test2");
    }

    #[test]
    fn help() {
        assert_eq!(parse_with(&["--help"], &[]), Ok(Command::Help));
        assert_eq!(parse_with(&["v2", "-h"], &[]), Ok(Command::Help));
    }

    #[test]
    fn rejects_bad_input() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
        let bad: &[Case] = &[
            (&["--error-rate"], &[]),
            (&["--error-rate", "1.5"], &[]),
            (&["--error-rate", "-0.1"], &[]),
            (&["--error-rate", "NaN"], &[]),
            (&["--error-rate=abc"], &[]),
            (&["--latency-ms", "-5"], &[]),
            (&["--latency-ms", "+5"], &[]),
            (&["--latency-ms", "1e3"], &[]),
            (&["--latency-ms", "600001"], &[]),
            (&["--fail-health=1"], &[]),
            (&["--bogus"], &[]),
            (&["v1", "v2"], &[]),
            (&["has space"], &[]),
            (&[""], &[]),
            (&["v\u{e9}"], &[]),
            (&[], &[("DEMO_ERROR_RATE", "2")]),
            (&[], &[("DEMO_LATENCY_MS", "soon")]),
            (&[], &[("PORT", "70000")]),
            (&[], &[("PORT", "http")]),
            (&[], &[("VERSION", "a\"b c")]),
        ];
        for (list, env) in bad {
            assert!(parse_with(list, env).is_err(), "expected an error for {list:?} {env:?}");
        }
    }

    #[test]
    fn accepts_edge_values() {
        assert_eq!(serve(&["--error-rate", "0"], &[]).error_rate, 0.0);
        assert_eq!(serve(&["--error-rate", " 1 "], &[]).error_rate, 1.0);
        assert_eq!(serve(&["--latency-ms", "600000"], &[]).latency_ms, 600_000);
        assert_eq!(serve(&[], &[("PORT", "0")]).port, 0);
        assert_eq!(serve(&["-"], &[]).version, "-");
    }
}
