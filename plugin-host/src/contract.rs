//! The versions of the plugin contract. Each released version of the WIT package
//! `hivemind:plugin` has a folder of its own at the top of the repository, `wit/vX.Y.Z`,
//! never edited once released; `wit/README.md` says what each kind of bump may change and
//! how to release one. This host binds the latest (`bindings`) and lists every version it
//! runs: a component whose imports name any other version is refused before it is linked.

pub use hivemind_model::plugin::{API_LATEST, API_VERSIONS};

/// Whether a component whose imports name plugin API `version` runs on this host. Only a
/// listed version does: the linker would also bind a later 0.1.z's imports wherever their
/// types fit, and a component built for a contract this host does not know is better told
/// so than refused later over a function it lacks.
pub fn supported(version: &str) -> bool {
    // A bare "0.1" was accepted before the list was explicit, and still is.
    API_VERSIONS.contains(&version) || version == "0.1"
}

/// Why a component of plugin API `version` (it imports `import`) is refused.
pub fn unsupported(version: &str, import: &str) -> String {
    format!(
        "the component was built for plugin API {version} (it imports `{import}`), and this host supports plugin API {}; rebuild it against a hivemind-sdk for one of those (the newest is {API_LATEST})",
        API_VERSIONS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// `0.1.10` as `[0, 1, 10]`, to order versions by.
    fn numbers(version: &str) -> Vec<u64> {
        version.split('.').map(|n| n.parse().unwrap_or_else(|_| panic!("`{version}` is not X.Y.Z"))).collect()
    }

    #[test]
    fn a_listed_version_is_supported_any_other_is_refused_with_the_list() {
        for version in ["0.1.0", "0.1.1", "0.1"] {
            assert!(supported(version), "{version} is supported");
        }
        for version in ["0.1.7", "0.2.0", "1.0.0", "0.0.1", "0.1.1-rc.1", "0.1.", ""] {
            assert!(!supported(version), "{version} is refused");
        }
        let refusal = unsupported("0.1.7", "hivemind:plugin/containers@0.1.7");
        assert!(
            refusal.starts_with(
                "the component was built for plugin API 0.1.7 (it imports `hivemind:plugin/containers@0.1.7`)"
            ),
            "{refusal}"
        );
        assert!(refusal.contains("this host supports plugin API 0.1.0, 0.1.1"), "{refusal}");
        assert!(refusal.contains(&format!("this host supports plugin API {};", API_VERSIONS.join(", "))), "{refusal}");
    }

    #[test]
    fn every_released_folder_is_listed_oldest_first_and_declares_its_own_version() {
        let mut folders: Vec<String> = std::fs::read_dir(repo().join("wit"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|name| name.strip_prefix('v').map(str::to_string))
            .collect();
        folders.sort_by_key(|version| numbers(version));
        assert_eq!(
            folders, API_VERSIONS,
            "a folder wit/vX.Y.Z for each version in contract::API_VERSIONS (oldest first), and no other"
        );
        for version in API_VERSIONS {
            let wit = std::fs::read_to_string(repo().join(format!("wit/v{version}/plugin.wit"))).unwrap();
            let package = format!("package hivemind:plugin@{version};");
            assert!(wit.lines().any(|line| line == package), "wit/v{version}/plugin.wit declares `{package}`");
        }
    }

    #[test]
    fn the_host_binds_the_latest_version_and_the_sdk_carries_it_byte_for_byte() {
        let latest = std::fs::read_to_string(repo().join(format!("wit/v{API_LATEST}/plugin.wit"))).unwrap();
        let sdk = std::fs::read_to_string(repo().join("sdk/wit/plugin.wit")).unwrap();
        if sdk != latest {
            let at = match sdk.lines().zip(latest.lines()).position(|(a, b)| a != b) {
                Some(i) => format!("from line {}", i + 1),
                None => "in length".to_string(),
            };
            panic!(
                "sdk/wit/plugin.wit differs from wit/v{API_LATEST}/plugin.wit ({at}): the SDK carries a copy of the latest released contract, which is never edited; copy the folder's file over the SDK's, or release a new version (wit/README.md)"
            );
        }
        // Every folder the host's bindings name is a listed version, and the latest is one.
        let bound: Vec<&str> =
            include_str!("bindings.rs").split("path: \"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
        assert!(
            !bound.is_empty()
                && bound.iter().all(|path| path.strip_prefix("../wit/v").is_some_and(|v| API_VERSIONS.contains(&v))),
            "plugin-host/src/bindings.rs binds released folders only: {bound:?}"
        );
        assert!(
            bound.contains(&format!("../wit/v{API_LATEST}").as_str()),
            "plugin-host/src/bindings.rs binds wit/v{API_LATEST}, the latest: {bound:?}"
        );
    }
}
