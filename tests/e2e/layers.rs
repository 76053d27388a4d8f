//! The house's rules that crate boundaries cannot hold by themselves: no import cycle
//! between the modules of one area of the host (`tests/layers/check-module-cycles.py`),
//! and no source file of the host or the model over 600 lines (a file that long holds
//! more than one concern).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn no_module_imports_its_way_back_to_itself() {
    let out = Command::new("python3").arg(repo().join("tests/layers/check-module-cycles.py")).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn no_source_file_is_over_600_lines() {
    fn walk(dir: &Path, long: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, long);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > 600 {
                    long.push(format!("{} has {lines} lines", path.display()));
                }
            }
        }
    }
    let mut long = Vec::new();
    for dir in ["host/src", "model/src"] {
        walk(&repo().join(dir), &mut long);
    }
    assert!(long.is_empty(), "split these by concern:\n{}", long.join("\n"));
}
