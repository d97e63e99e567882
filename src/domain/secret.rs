//! Values that must never be printed: tokens, keys, passwords.

use std::fmt;

/// A value that must never be printed: tokens, keys, passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from the environment variable `name`.
    pub fn from_env(name: &str) -> Result<Secret, MissingSecret> {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_owned())),
            _ => Err(MissingSecret {
                var: name.to_owned(),
            }),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A secret's environment variable is not set (or is blank).
#[derive(Debug, thiserror::Error)]
#[error(
    "the environment variable {var} is not set: export it with the access token (the configuration names it in `access_token_env`)"
)]
pub struct MissingSecret {
    /// The variable's name.
    pub var: String,
}
