//! `hivemind plugin new`: a plugin project that builds as it stands, in Rust (with the SDK
//! vendored, pinned to this server's plugin API) or in Python (with the WIT contract, for
//! componentize-py), each with a README and a test of its logic.

use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// The language a project is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
}

/// The SDK's files, as this binary was built with them.
const SDK_FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../sdk/README.md")),
    ("wit/plugin.wit", include_str!("../../sdk/wit/plugin.wit")),
    ("src/lib.rs", include_str!("../../sdk/src/lib.rs")),
    ("src/error.rs", include_str!("../../sdk/src/error.rs")),
    ("src/hook.rs", include_str!("../../sdk/src/hook.rs")),
    ("src/params.rs", include_str!("../../sdk/src/params.rs")),
    ("src/stats.rs", include_str!("../../sdk/src/stats.rs")),
    ("src/strategy.rs", include_str!("../../sdk/src/strategy.rs")),
];

/// The wit-bindgen the SDK is built with (the workspace's, checked by a test).
const WIT_BINDGEN: &str = "0.61";

const RUST_CARGO: &str = include_str!("../templates/plugin/rust/Cargo.toml");
const RUST_SDK_CARGO: &str = include_str!("../templates/plugin/rust/sdk-Cargo.toml");
const RUST_STRATEGY: &str = include_str!("../templates/plugin/rust/strategy.rs");
const RUST_HOOK: &str = include_str!("../templates/plugin/rust/hook.rs");
const RUST_README: &str = include_str!("../templates/plugin/rust/README.md");
const PYTHON_STRATEGY: &str = include_str!("../templates/plugin/python/strategy.py");
const PYTHON_PLAN: &str = include_str!("../templates/plugin/python/plan.py");
const PYTHON_PLAN_TEST: &str = include_str!("../templates/plugin/python/test_plan.py");
const PYTHON_HOOK: &str = include_str!("../templates/plugin/python/hook.py");
const PYTHON_VERDICT: &str = include_str!("../templates/plugin/python/verdict.py");
const PYTHON_VERDICT_TEST: &str = include_str!("../templates/plugin/python/test_verdict.py");
const PYTHON_README: &str = include_str!("../templates/plugin/python/README.md");

/// Writes the project of plugin `name` into `dir` (which must not hold anything yet);
/// returns the files written.
pub fn new_plugin(name: &str, hook: bool, lang: Lang, dir: &Path) -> Result<Vec<PathBuf>> {
    hivemind_model::plugin::validate_name(name)
        .map_err(|e| anyhow::anyhow!("{e} (it is the name deployments use: --strategy {name})"))?;
    // Cargo refuses a package named after a Rust keyword or a standard crate.
    const RESERVED: &[&str] = &[
        "abstract",
        "alloc",
        "as",
        "async",
        "await",
        "become",
        "box",
        "break",
        "const",
        "continue",
        "core",
        "crate",
        "do",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "final",
        "fn",
        "for",
        "gen",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "macro",
        "match",
        "mod",
        "move",
        "mut",
        "override",
        "priv",
        "proc-macro",
        "pub",
        "ref",
        "return",
        "self",
        "static",
        "std",
        "struct",
        "super",
        "test",
        "trait",
        "true",
        "try",
        "type",
        "typeof",
        "unsafe",
        "unsized",
        "use",
        "virtual",
        "where",
        "while",
        "yield",
    ];
    if lang == Lang::Rust && RESERVED.contains(&name) {
        bail!(
            "`{name}` is a Rust keyword or a standard crate's name, which Cargo refuses as a package name; pick another, such as {name}-strategy"
        );
    }
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{} is not empty: give a new directory with --dir, or remove what is there", dir.display());
    }
    let sdk = env!("CARGO_PKG_VERSION");
    // The SDK and WIT it vendors are the latest contract's (sdk/wit is wit/vLATEST's copy).
    let api = hivemind_model::plugin::API_LATEST;
    let (kind, world) = if hook { ("hook", "hook") } else { ("strategy", "strategy") };
    let capabilities = if hook {
        "jobs and http to the allowed hosts (each only as granted at install: --allow), progress"
    } else {
        "containers, routing, health, metrics, state, progress, context"
    };
    let usage = match (hook, lang) {
        (false, _) => format!(
            "hivemind app deploy --name web --image registry.local/web:v2 --strategy {name} --param steps=4 --param interval=10"
        ),
        (true, _) => format!(
            "hivemind app deploy --name web --image registry.local/web:v2 --pre-hook \"plugin:{name} ./migrate --all\""
        ),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{file}}", &name.replace('-', "_"))
            .replace("{{kind}}", kind)
            .replace("{{world}}", world)
            .replace("{{capabilities}}", capabilities)
            .replace("{{usage}}", &usage)
            // A hook runs its commands only with the grant (plugin install --allow jobs).
            .replace("{{allow}}", if hook { " --allow jobs" } else { "" })
            .replace("{{sdk}}", sdk)
            .replace("{{hivemind}}", sdk)
            .replace("{{api}}", api)
            .replace("{{wit_bindgen}}", WIT_BINDGEN)
            .replace("{{sdk_features}}", if hook { ", default-features = false, features = [\"hook\"]" } else { "" })
            .replace("{{logic}}", if hook { "verdict.py" } else { "plan.py" })
    };
    let mut files: Vec<(String, String)> = match lang {
        Lang::Rust => {
            let mut files = vec![
                ("Cargo.toml".into(), fill(RUST_CARGO)),
                ("src/lib.rs".into(), fill(if hook { RUST_HOOK } else { RUST_STRATEGY })),
                ("README.md".into(), fill(RUST_README)),
                (".gitignore".into(), "/target\n".into()),
                ("hivemind-sdk/Cargo.toml".into(), fill(RUST_SDK_CARGO)),
            ];
            files.extend(SDK_FILES.iter().map(|(path, text)| (format!("hivemind-sdk/{path}"), text.to_string())));
            files
        }
        Lang::Python => {
            let mut files = vec![
                ("app.py".into(), fill(if hook { PYTHON_HOOK } else { PYTHON_STRATEGY })),
                ("README.md".into(), fill(PYTHON_README)),
                ("wit/plugin.wit".into(), SDK_FILES[1].1.to_string()),
                (".gitignore".into(), "__pycache__/\n*.wasm\n".into()),
            ];
            if hook {
                files.push(("verdict.py".into(), PYTHON_VERDICT.into()));
                files.push(("test_verdict.py".into(), PYTHON_VERDICT_TEST.into()));
            } else {
                files.push(("plan.py".into(), PYTHON_PLAN.into()));
                files.push(("test_plan.py".into(), PYTHON_PLAN_TEST.into()));
            }
            files
        }
    };
    files.sort();
    let mut written = Vec::new();
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_sdk_is_the_whole_sdk_on_the_workspaces_wit_bindgen() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut sources: Vec<String> = std::fs::read_dir(root.join("sdk/src"))
            .unwrap()
            .map(|e| format!("src/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        sources.sort();
        let mut embedded: Vec<String> =
            SDK_FILES.iter().map(|(p, _)| p.to_string()).filter(|p| p.starts_with("src/")).collect();
        embedded.sort();
        assert_eq!(embedded, sources, "every file of sdk/src is vendored by `plugin new`");
        let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(
            workspace.contains(&format!("wit-bindgen = \"{WIT_BINDGEN}\"")),
            "the workspace moved off {WIT_BINDGEN}"
        );
    }

    #[test]
    fn a_project_is_refused_a_bad_name_or_a_directory_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let e = new_plugin("My_Plugin", false, Lang::Rust, &dir.path().join("x")).unwrap_err().to_string();
        assert!(e.contains("plugin name `My_Plugin` is not valid"), "{e}");
        let e = new_plugin("test", false, Lang::Rust, &dir.path().join("x")).unwrap_err().to_string();
        assert!(e.contains("Cargo refuses"), "{e}");
        std::fs::write(dir.path().join("file"), "").unwrap();
        let e = new_plugin("ramp", false, Lang::Rust, dir.path()).unwrap_err().to_string();
        assert!(e.contains("is not empty"), "{e}");
        let files = new_plugin("ramp", true, Lang::Python, &dir.path().join("ramp")).unwrap();
        let app = std::fs::read_to_string(dir.path().join("ramp/app.py")).unwrap();
        assert!(app.contains("name=\"ramp\"") && !app.contains("{{"), "{app}");
        assert!(files.iter().any(|f| f.ends_with("wit/plugin.wit")));
    }
}
