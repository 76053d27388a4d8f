//! The powers an installed hook plugin has beyond reporting: running jobs (`jobs`: a
//! command in a fresh replica of the app's release, with its environment and secrets)
//! and sending HTTP (`http`: to the server's hook allowlist, or to one host of it). A
//! plugin gets them only when whoever installs it says so (`plugin install --allow jobs
//! --allow http:hooks.example.com:443`); the built-in `command` and `webhook` hooks come
//! with theirs. Strategies have neither: their WIT world does not import them.

use serde::{Deserialize, Serialize};

/// One power, as the installer writes it: `jobs`, `http` (every host the server's hook
/// allowlist admits), or `http:HOST:PORT` (that one, if the allowlist admits it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Jobs,
    Http(Option<(String, u16)>),
}

impl Grant {
    pub fn parse(text: &str) -> Result<Grant, String> {
        let text = text.trim();
        match text {
            "jobs" => return Ok(Grant::Jobs),
            "http" => return Ok(Grant::Http(None)),
            _ => {}
        }
        let bad = || {
            format!(
                "`{text}` is not a grant: give `jobs`, `http` (every host on the server's hook allowlist) or `http:HOST:PORT`"
            )
        };
        let target = text.strip_prefix("http:").ok_or_else(bad)?;
        let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_matches(['[', ']']);
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        Ok(Grant::Http(Some((host.to_ascii_lowercase(), port))))
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::Jobs => f.write_str("jobs"),
            Grant::Http(None) => f.write_str("http"),
            Grant::Http(Some((host, port))) if host.contains(':') => write!(f, "http:[{host}]:{port}"),
            Grant::Http(Some((host, port))) => write!(f, "http:{host}:{port}"),
        }
    }
}

/// What one plugin was granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Grants(#[schemars(with = "Vec<String>")] Vec<Grant>);

impl Grants {
    pub fn new(grants: Vec<Grant>) -> Grants {
        let mut unique: Vec<Grant> = Vec::new();
        for g in grants {
            if !unique.contains(&g) {
                unique.push(g);
            }
        }
        Grants(unique)
    }

    /// Grants written as the installer wrote them, comma-separated (the store's column,
    /// the API's query).
    pub fn parse_list(text: &str) -> Result<Grants, String> {
        let grants = text.split(',').filter(|g| !g.trim().is_empty()).map(Grant::parse).collect::<Result<_, _>>()?;
        Ok(Grants::new(grants))
    }

    pub fn to_list(&self) -> String {
        self.0.iter().map(Grant::to_string).collect::<Vec<_>>().join(",")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn jobs(&self) -> bool {
        self.0.contains(&Grant::Jobs)
    }

    /// Whether HTTP to `host:port` is granted (the server's allowlist is checked apart).
    pub fn http(&self, host: &str, port: u16) -> bool {
        self.0.iter().any(|g| match g {
            Grant::Http(None) => true,
            Grant::Http(Some((h, p))) => h.eq_ignore_ascii_case(host.trim_matches(['[', ']'])) && *p == port,
            Grant::Jobs => false,
        })
    }
}

impl TryFrom<Vec<String>> for Grants {
    type Error = String;
    fn try_from(list: Vec<String>) -> Result<Grants, String> {
        Ok(Grants::new(list.iter().map(|g| Grant::parse(g)).collect::<Result<_, _>>()?))
    }
}

impl From<Grants> for Vec<String> {
    fn from(grants: Grants) -> Vec<String> {
        grants.0.iter().map(Grant::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{Grant, Grants};

    #[test]
    fn grants_read_as_they_are_written_and_admit_only_what_they_name() {
        let g = Grants::parse_list("jobs, http:Hooks.Example.com:443").unwrap();
        assert_eq!(g.to_list(), "jobs,http:hooks.example.com:443");
        assert!(g.jobs());
        assert!(g.http("hooks.example.com", 443) && !g.http("hooks.example.com", 80) && !g.http("other", 443));
        assert!(Grants::parse_list("http").unwrap().http("anything", 1));
        assert!(!Grants::default().jobs() && !Grants::default().http("x", 80));
        for bad in ["root", "http:host", "http:host:port", "jobs:x"] {
            assert!(Grant::parse(bad).unwrap_err().contains("is not a grant"), "{bad}");
        }
    }
}
