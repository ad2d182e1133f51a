//! Where publishing credentials come from: flags, then the environment,
//! then `~/.docker/config.json` (as `docker login`, `oras login` and
//! `skopeo login` write it), else anonymous.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use reqwest::header::HeaderValue;

/// A user name and password (or token) for the registry.
#[derive(Clone, Default)]
pub struct Credentials {
    username: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Credentials {
    /// No credentials.
    pub fn anonymous() -> Self {
        Credentials::default()
    }

    /// Explicit credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: Some(username.into()),
            password: Some(password.into()),
        }
    }

    /// Where the credentials came from, for messages.
    pub fn is_anonymous(&self) -> bool {
        self.password.is_none()
    }

    /// `Authorization: Basic ...`, when there are credentials.
    pub fn basic_header(&self) -> Option<HeaderValue> {
        let password = self.password.as_deref()?;
        let user = self.username.as_deref().unwrap_or("");
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).ok()
    }

    /// Resolves credentials for `host`: explicit values first (flags or
    /// `RBEE_PUSHER_USERNAME`/`RBEE_PUSHER_PASSWORD`, filled in by clap),
    /// then the docker config file, else anonymous.
    pub fn resolve(host: &str, username: Option<String>, password: Option<String>) -> Self {
        if password.is_some() {
            return Credentials { username, password };
        }
        docker_config_path()
            .and_then(|p| from_docker_config(&p, host))
            .unwrap_or_default()
    }
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// Reads `auths.<host>.auth` (base64 `user:password`) from a docker config.
/// Credential helpers (`credsStore`) are not run: CI passes secrets in the
/// environment instead.
pub fn from_docker_config(path: &Path, host: &str) -> Option<Credentials> {
    let text = std::fs::read_to_string(path).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(key, value)| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let key = key.split('/').next().unwrap_or(key);
        (key == host).then_some(value)
    })?;
    let auth = entry.get("auth")?.as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some(Credentials::basic(user, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config_auths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"https://ghcr.io":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let creds = from_docker_config(&path, "ghcr.io").unwrap();
        assert_eq!(creds.username.as_deref(), Some("ci"));
        assert!(from_docker_config(&path, "other.io").is_none());
        assert!(!format!("{creds:?}").contains("s3cret"));
    }
}
