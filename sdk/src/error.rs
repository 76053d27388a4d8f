use std::fmt;

/// An error a plugin returns: a message for the people reading the deployment's events.
///
/// Host errors convert into it, so `?` works on every capability call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

/// The result type of strategy and hook functions.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with this message.
    pub fn msg(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error(message.to_string())
    }
}
