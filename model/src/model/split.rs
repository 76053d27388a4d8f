//! A traffic split: which versions (or A/B variants) of an app get what share of its
//! requests. Weights are shares of their total, so `[v1=80, v2=20]` and `[v1=4, v2=1]`
//! split alike; a version at weight 0 gets no traffic but stays routable by the
//! `x-hivemind-variant` header (a blue-green preview is `[green=0]`), and an empty split
//! sends nothing anywhere. We do not require the weights to sum to 100, as the issue that
//! introduced this type suggested: the plugin contract never asked for it, and the
//! built-in blue-green's preview and the simple strategy's empty split would break.
//!
//! What it does guarantee: each version appears once and has a name. It serialises as the
//! list of pairs it always was (`[["v1",80],["v2",20]]`), in the store, the router's table
//! and the API.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Deref;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Split(Vec<(String, u32)>);

/// Why a list of weights is not a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    Duplicate(String),
    Unnamed,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitError::Duplicate(version) => write!(f, "version `{version}` appears twice"),
            SplitError::Unnamed => write!(f, "a weight has no version name"),
        }
    }
}

impl Split {
    /// A split of these weights, in this order.
    pub fn new(weights: Vec<(String, u32)>) -> Result<Split, SplitError> {
        for (i, (version, _)) in weights.iter().enumerate() {
            if version.is_empty() {
                return Err(SplitError::Unnamed);
            }
            if weights[..i].iter().any(|(v, _)| v == version) {
                return Err(SplitError::Duplicate(version.clone()));
            }
        }
        Ok(Split(weights))
    }

    /// No traffic to anything.
    pub fn none() -> Split {
        Split(Vec::new())
    }

    /// All traffic to `version`.
    pub fn all(version: &str) -> Split {
        Split(vec![(version.to_string(), 100)])
    }

    /// The weight of `version` (0 when it is not in the split).
    pub fn weight(&self, version: &str) -> u32 {
        self.0.iter().find(|(v, _)| v == version).map_or(0, |(_, w)| *w)
    }

    /// The versions that get traffic (weight above 0), in order.
    pub fn serving(&self) -> Vec<&str> {
        self.0.iter().filter(|(_, w)| *w > 0).map(|(v, _)| v.as_str()).collect()
    }
}

impl Deref for Split {
    type Target = [(String, u32)];
    fn deref(&self) -> &[(String, u32)] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Split {
    type Item = &'a (String, u32);
    type IntoIter = std::slice::Iter<'a, (String, u32)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for Split {
    type Item = (String, u32);
    type IntoIter = std::vec::IntoIter<(String, u32)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// `v1=80, v2=20`: how events and messages show a split.
impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (version, weight)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{version}={weight}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_names_each_version_once_and_shows_as_events_say_it() {
        let split = Split::new(vec![("v1".into(), 80), ("v2".into(), 20)]).unwrap();
        assert_eq!(split.to_string(), "v1=80, v2=20");
        assert_eq!((split.weight("v2"), split.weight("v3")), (20, 0));
        assert_eq!(Split::new(vec![("v1".into(), 1), ("v1".into(), 2)]), Err(SplitError::Duplicate("v1".into())));
        assert_eq!(Split::new(vec![(String::new(), 1)]), Err(SplitError::Unnamed));
        // A preview route alone, and no traffic at all, are splits.
        assert_eq!(Split::new(vec![("green".into(), 0)]).unwrap().serving(), Vec::<&str>::new());
        assert_eq!(Split::none().to_string(), "");
        assert_eq!(serde_json::to_string(&split).unwrap(), r#"[["v1",80],["v2",20]]"#);
    }
}
