//! rbee platform names (`linux-x86_64`) and their OCI platform twins
//! (`linux`/`amd64`). The mapping is one-to-one in both directions.

use std::fmt;
use std::str::FromStr;

/// A platform rbee builds workers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    /// `linux-x86_64`, OCI `linux/amd64`.
    LinuxX86_64,
    /// `linux-aarch64`, OCI `linux/arm64`.
    LinuxAarch64,
    /// `macos-x86_64`, OCI `darwin/amd64`.
    MacosX86_64,
    /// `macos-aarch64`, OCI `darwin/arm64`.
    MacosAarch64,
    /// `windows-x86_64`, OCI `windows/amd64`.
    WindowsX86_64,
    /// `windows-aarch64`, OCI `windows/arm64`.
    WindowsAarch64,
}

/// An OCI platform: the `os` and `architecture` fields of an index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OciPlatform {
    /// OCI `os`, e.g. `linux`, `darwin`, `windows`.
    pub os: &'static str,
    /// OCI `architecture`, e.g. `amd64`, `arm64`.
    pub architecture: &'static str,
}

/// A name that is not one of rbee's platforms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform `{given}`; valid platforms: {}", Platform::names().join(", "))]
pub struct PlatformError {
    /// What the caller gave.
    pub given: String,
}

impl Platform {
    /// Every platform, in a stable order.
    pub const ALL: [Platform; 6] = [
        Platform::LinuxX86_64,
        Platform::LinuxAarch64,
        Platform::MacosX86_64,
        Platform::MacosAarch64,
        Platform::WindowsX86_64,
        Platform::WindowsAarch64,
    ];

    /// The rbee name, e.g. `linux-x86_64`.
    pub fn name(self) -> &'static str {
        match self {
            Platform::LinuxX86_64 => "linux-x86_64",
            Platform::LinuxAarch64 => "linux-aarch64",
            Platform::MacosX86_64 => "macos-x86_64",
            Platform::MacosAarch64 => "macos-aarch64",
            Platform::WindowsX86_64 => "windows-x86_64",
            Platform::WindowsAarch64 => "windows-aarch64",
        }
    }

    /// Every rbee name, for error messages that list the valid choices.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|p| p.name()).collect()
    }

    /// The OCI platform this rbee platform maps to.
    pub fn oci(self) -> OciPlatform {
        let (os, architecture) = match self {
            Platform::LinuxX86_64 => ("linux", "amd64"),
            Platform::LinuxAarch64 => ("linux", "arm64"),
            Platform::MacosX86_64 => ("darwin", "amd64"),
            Platform::MacosAarch64 => ("darwin", "arm64"),
            Platform::WindowsX86_64 => ("windows", "amd64"),
            Platform::WindowsAarch64 => ("windows", "arm64"),
        };
        OciPlatform { os, architecture }
    }

    /// The platform of a Rust target, from its `std::env::consts::{OS, ARCH}`
    /// pair (e.g. `("linux", "x86_64")`), if rbee builds for it.
    pub fn from_rust(os: &str, arch: &str) -> Option<Platform> {
        format!("{os}-{arch}").parse().ok()
    }

    /// The platform this program runs on, if rbee builds for it.
    pub fn current() -> Option<Platform> {
        Self::from_rust(std::env::consts::OS, std::env::consts::ARCH)
    }

    /// The rbee platform for an OCI `os`/`architecture` pair, if any.
    pub fn from_oci(os: &str, architecture: &str) -> Option<Platform> {
        Self::ALL
            .into_iter()
            .find(|p| p.oci().os == os && p.oci().architecture == architecture)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| PlatformError {
                given: s.to_owned(),
            })
    }
}

/// Serialized as the rbee name (`"linux-x86_64"`), the form metadata
/// documents and the catalog API use; the OCI pair is for OCI documents.
impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Read from the rbee name; an unknown name fails with the list of valid
/// ones.
impl<'de> serde::Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_round_trips_through_its_name_and_oci_pair() {
        for p in Platform::ALL {
            assert_eq!(p.name().parse::<Platform>(), Ok(p));
            let oci = p.oci();
            assert_eq!(Platform::from_oci(oci.os, oci.architecture), Some(p));
        }
    }

    #[test]
    fn rust_targets_map_to_rbee_names() {
        assert_eq!(
            Platform::from_rust("linux", "x86_64"),
            Some(Platform::LinuxX86_64)
        );
        assert_eq!(
            Platform::from_rust("macos", "aarch64"),
            Some(Platform::MacosAarch64)
        );
        assert_eq!(Platform::from_rust("freebsd", "x86_64"), None);
    }

    #[test]
    fn design_mapping_holds() {
        assert_eq!(
            Platform::LinuxX86_64.oci(),
            OciPlatform {
                os: "linux",
                architecture: "amd64"
            }
        );
        assert_eq!(
            Platform::from_oci("darwin", "arm64"),
            Some(Platform::MacosAarch64)
        );
    }

    #[test]
    fn serde_uses_the_rbee_name() {
        let json = serde_json::to_string(&Platform::MacosAarch64).unwrap();
        assert_eq!(json, r#""macos-aarch64""#);
        assert_eq!(
            serde_json::from_str::<Platform>(&json).unwrap(),
            Platform::MacosAarch64
        );
        let err = serde_json::from_str::<Platform>(r#""linux-amd64""#).unwrap_err();
        assert!(
            err.to_string().contains("valid platforms: linux-x86_64"),
            "{err}"
        );
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let err = "linux-riscv".parse::<Platform>().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("linux-riscv") && msg.contains("linux-x86_64"),
            "{msg}"
        );
    }
}
