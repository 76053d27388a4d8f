//! Registry credentials, found the way Docker finds them, so that a user who logged in
//! with Docker need not log in again: `config.json`'s `auths`, and the credential helpers
//! it names (`credHelpers`, `credsStore`). The CLI reads them to reach plugin registries,
//! the server to pull images; one implementation for both.

mod docker_config;
mod reference;

pub use docker_config::{DockerConfig, docker_credentials};
pub use reference::{normalize_registry, registry_of, validate_reference};

/// A user name and its password (or token) for one registry. Never printed: `Debug`
/// shows the user name only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ username: {:?}, password: *** }}", self.username)
    }
}
