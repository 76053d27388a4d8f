//! The plugin contract's words that both sides of the API share: the versions of the
//! WIT contract (`wit/vX.Y.Z`), what a plugin may be named, and where its signature is
//! kept. The server checks components against them; `plugin new` and `plugin sign` in the
//! CLI write what the server will accept.

/// The plugin API versions this host runs, oldest first: one per folder `wit/vX.Y.Z`, and
/// no other (a test checks both ways). The last is the one the host binds and the SDK
/// carries. A 0.1.y component runs here because wasmtime's linker binds its `@0.1.y`
/// imports to the host's `@0.1.z` interfaces (see `sandbox::linkers`).
pub const API_VERSIONS: &[&str] = &["0.1.0", "0.1.1"];

/// The newest plugin API version: the one the host binds and `plugin new` vendors.
pub const API_LATEST: &str = API_VERSIONS[API_VERSIONS.len() - 1];

/// A plugin name: what deployments pick it by.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !ok {
        anyhow::bail!(
            "plugin name `{}` is not valid: use 1 to 64 lowercase letters, digits and '-', starting with a letter",
            name.chars().take(64).collect::<String>()
        );
    }
    Ok(())
}

/// A key ID as the `minisign` tool prints it: the 8 bytes of its keynum read as a
/// little-endian number, in hex without leading zeros (as in its public key files).
pub fn key_id(keynum: &[u8]) -> String {
    let bytes: [u8; 8] = keynum.try_into().unwrap_or_default();
    format!("{:X}", u64::from_le_bytes(bytes))
}

/// Where a component's signature is kept: beside it, as minisign names it (`X.wasm.minisig`).
pub fn signature_path(component: &std::path::Path) -> std::path::PathBuf {
    let mut name = component.as_os_str().to_owned();
    name.push(".minisig");
    name.into()
}
