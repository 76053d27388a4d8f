use crate::Error;
use std::str::FromStr;

/// Typed access to a deployment's parameters (`--max-surge 1`, `--param key=value`).
///
/// ```
/// use hivemind_sdk::Params;
/// let params = vec![("batch-size".to_string(), "2".to_string())];
/// let batch: u32 = params.get_or("batch-size", 1).unwrap();
/// assert_eq!(batch, 2);
/// let delay: u32 = params.get_or("batch-delay", 30).unwrap();
/// assert_eq!(delay, 30);
/// assert!(params.get::<u32>("batch-size").unwrap().is_some());
/// let bad = vec![("batch-size".to_string(), "-2".to_string())];
/// assert_eq!(
///     bad.get::<u32>("batch-size").unwrap_err().to_string(),
///     "parameter batch-size: `-2` is not a valid u32",
/// );
/// ```
pub trait Params {
    /// The raw value of `key`, if given.
    fn raw(&self, key: &str) -> Option<&str>;

    /// The value of `key` parsed as `T`, `None` if not given, an error naming the key if
    /// it does not parse.
    fn get<T: FromStr>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.raw(key) {
            None => Ok(None),
            Some(raw) => raw.trim().parse::<T>().map(Some).map_err(|_| {
                let ty = std::any::type_name::<T>().rsplit("::").next().unwrap_or("value");
                Error(format!("parameter {key}: `{raw}` is not a valid {ty}"))
            }),
        }
    }

    /// Like [`Params::get`], with a default for a missing key.
    fn get_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, Error> {
        Ok(self.get(key)?.unwrap_or(default))
    }
}

/// Parses a rising list of percentages such as `20,50,100` (a canary's `--steps`).
///
/// ```
/// assert_eq!(hivemind_sdk::percentages("20, 50,100%").unwrap(), vec![20, 50, 100]);
/// assert!(hivemind_sdk::percentages("50,20").is_err());
/// assert!(hivemind_sdk::percentages("0,150").is_err());
/// ```
pub fn percentages(raw: &str) -> Result<Vec<u32>, Error> {
    let mut steps = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let share = part.trim_end_matches('%').trim().parse::<u32>().ok().filter(|s| (1..=100).contains(s));
        steps.push(share.ok_or_else(|| {
            Error(format!("steps must be percentages from 1 to 100, as in 20,50,100; `{part}` is not one"))
        })?);
    }
    if steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error(format!("steps must rise, as in 20,50,100; got {raw}")));
    }
    Ok(steps)
}

impl Params for [(String, String)] {
    fn raw(&self, key: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl Params for Vec<(String, String)> {
    fn raw(&self, key: &str) -> Option<&str> {
        self.as_slice().raw(key)
    }
}
