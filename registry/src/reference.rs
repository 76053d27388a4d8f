//! Image references as Docker reads them: their grammar, and the registry they name.

use anyhow::Result;

/// The registry host of an image reference: its first path component when that has a
/// `.` or a `:` or is `localhost` (`registry.example.com/team/app:1`,
/// `127.0.0.1:5000/app`), else Docker Hub, `docker.io` (`nginx:latest`, `library/nginx`).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// A registry as credentials are filed under it: its host (and port), lowercase, without
/// a scheme or a path, and Docker Hub's aliases as `docker.io`, the name `registry_of`
/// gives its images. `None` when `text` is not a host.
pub fn normalize_registry(text: &str) -> Option<String> {
    let text = text.trim().to_ascii_lowercase();
    let host = text.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or_default();
    let ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    match host {
        _ if !ok => None,
        "index.docker.io" | "registry-1.docker.io" => Some("docker.io".to_string()),
        host => Some(host.to_string()),
    }
}

/// Checks an image reference against Docker's grammar:
/// `[registry[:port]/]path[:tag][@sha256:digest]`, lowercase path components.
pub fn validate_reference(image: &str) -> Result<()> {
    let bad = |why: &str| {
        anyhow::anyhow!(
            "`{image}` is not a valid image reference: {why}. Example: hivemind-demo:v2 or registry.local:5000/team/app:1.4"
        )
    };
    if image.is_empty() || image.len() > 255 {
        return Err(bad("it must be 1 to 255 characters"));
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty()
                && alg.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            return Err(bad("the digest after @ must look like sha256:<hex>"));
        }
    }
    // A tag is after the last ':' that comes after the last '/'.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(bad("the tag may hold letters, digits, '_', '.' and '-' (at most 128)"));
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // A first component with '.', ':' or "localhost" is a registry host.
    if components.len() > 1 && (components[0].contains(['.', ':']) || components[0] == "localhost") {
        components.remove(0);
    }
    for c in components {
        let ok = !c.is_empty()
            && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
            && c.chars().next().is_some_and(|ch| ch.is_ascii_alphanumeric())
            && c.chars().last().is_some_and(|ch| ch.is_ascii_alphanumeric());
        if !ok {
            return Err(bad("each path component must be lowercase letters and digits, separated by '.', '_' or '-'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{registry_of, validate_reference};

    #[test]
    fn names_the_registry_as_docker_does() {
        assert_eq!(registry_of("nginx:latest"), "docker.io");
        assert_eq!(registry_of("library/nginx"), "docker.io");
        assert_eq!(registry_of("team/app:1"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/demo:v1"), "127.0.0.1:5000");
        assert_eq!(registry_of("registry.example.com/team/app@sha256:ab"), "registry.example.com");
        assert_eq!(registry_of("localhost/app"), "localhost");
    }

    #[test]
    fn files_registries_as_images_name_them() {
        use super::normalize_registry as n;
        assert_eq!(n("GHCR.io").as_deref(), Some("ghcr.io"));
        assert_eq!(n("https://127.0.0.1:5000/").as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(n("https://index.docker.io/v1/").as_deref(), Some("docker.io"));
        assert_eq!(n("registry-1.docker.io").as_deref(), Some("docker.io"));
        assert_eq!(n("not a host"), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn accepts_real_references() {
        for ok in [
            "nginx",
            "nginx:latest",
            "hivemind-demo:v2",
            "library/nginx:1.25-alpine",
            "localhost:5000/app:1",
            "registry.example.com/team/app",
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            validate_reference(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in ["", "Nginx", "my app:v1", "app:", "app:v1:v2", "-app", "app//x", "app@sha256:xyz", "app:-tag"] {
            let err = validate_reference(bad).expect_err(bad).to_string();
            assert!(err.contains("is not a valid image reference"), "{bad}: {err}");
        }
    }
}
