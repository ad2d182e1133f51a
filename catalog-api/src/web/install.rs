//! The install commands a worker page offers, for one platform build: the
//! rbee installer, `oras` and `crane`, ready to copy; and the guess of the
//! visitor's platform from the `User-Agent`, used when the page's URL
//! does not name one.

use rbee_schemas::Platform;

use crate::domain::catalog::{PlatformBuild, Release};

/// The rbee installer's default catalog: no `--catalog` flag needed.
const DEFAULT_CATALOGS: [&str; 2] = ["http://localhost:8787", "http://127.0.0.1:8787"];

/// One command with what it does.
#[derive(Debug)]
pub struct Command {
    /// Unique on the page (the copy button names it).
    pub id: &'static str,
    /// What the command is for.
    pub label: &'static str,
    /// The command line.
    pub text: String,
}

/// Where the catalog and its registry are, as a visitor reaches them.
#[derive(Debug)]
pub struct Endpoints<'a> {
    /// The catalog's public URL (`http://127.0.0.1:8787`).
    pub catalog: &'a str,
    /// The registry's host as OCI clients name it (`127.0.0.1:8787`).
    pub registry_host: &'a str,
    /// The registry speaks plain HTTP (clients need a flag for that).
    pub plain_http: bool,
}

/// The commands that install or fetch `build` of `release`.
pub fn commands(release: &Release, build: &PlatformBuild, at: &Endpoints<'_>) -> Vec<Command> {
    let id = &release.metadata.id;
    let premium = release.metadata.distribution.requires_license;
    let reference = format!(
        "{}/{}:{}",
        at.registry_host, release.repository, release.version
    );
    let mut rbee = String::new();
    if premium {
        rbee.push_str("RBEE_WORKER_LICENSE=rbee_lic_... ");
    }
    rbee.push_str("rbee-worker ");
    if !DEFAULT_CATALOGS.contains(&at.catalog) {
        rbee.push_str(&format!("--catalog {} ", at.catalog));
    }
    rbee.push_str(&format!("install {id}@{}", release.version));
    let credentials = if premium {
        " -u any -p \"$RBEE_WORKER_LICENSE\""
    } else {
        ""
    };
    let oci = build.platform.oci();
    let oras = format!(
        "oras pull{}{credentials} --platform {}/{} {reference}",
        if at.plain_http { " --plain-http" } else { "" },
        oci.os,
        oci.architecture,
    );
    let mut crane = String::new();
    if premium {
        crane.push_str(&format!(
            "crane auth login {} -u any -p \"$RBEE_WORKER_LICENSE\" && ",
            at.registry_host
        ));
    }
    crane.push_str(&format!(
        "crane blob{} {}/{}@{} > {}",
        if at.plain_http { " --insecure" } else { "" },
        at.registry_host,
        release.repository,
        build.layer_digest,
        build.filename
    ));
    vec![
        Command {
            id: "install-rbee",
            label: "rbee-worker (downloads, verifies the sha256, installs)",
            text: rbee,
        },
        Command {
            id: "install-oras",
            label: "oras (this platform's build, unpacked)",
            text: oras,
        },
        Command {
            id: "install-crane",
            label: "crane (the archive of this platform)",
            text: crane,
        },
        Command {
            id: "install-verify",
            label: "check the archive's sha256",
            text: format!(
                "echo \"{}  {}\" | sha256sum -c",
                build.layer_digest.trim_start_matches("sha256:"),
                build.filename
            ),
        },
    ]
}

/// The platform a browser's `User-Agent` runs on, when it says. Browsers
/// on Apple silicon still claim `Intel Mac OS X`, so a Mac is taken for
/// `macos-aarch64` (what rbee builds for current Macs); Windows on ARM
/// is not told apart either.
pub fn platform_of_user_agent(user_agent: &str) -> Option<Platform> {
    let ua = user_agent.to_ascii_lowercase();
    if ua.contains("android") || ua.contains("iphone") || ua.contains("ipad") {
        None
    } else if ua.contains("windows") {
        Some(if ua.contains("arm64") {
            Platform::WindowsAarch64
        } else {
            Platform::WindowsX86_64
        })
    } else if ua.contains("macintosh") || ua.contains("mac os x") {
        Some(Platform::MacosAarch64)
    } else if ua.contains("linux") || ua.contains("x11") {
        Some(if ua.contains("aarch64") || ua.contains("arm64") {
            Platform::LinuxAarch64
        } else {
            Platform::LinuxX86_64
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_taken_for_their_platform() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36",
                Some(Platform::LinuxX86_64),
            ),
            (
                "Mozilla/5.0 (X11; Linux aarch64; rv:120.0) Gecko/20100101 Firefox/120.0",
                Some(Platform::LinuxAarch64),
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1.15",
                Some(Platform::MacosAarch64),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0",
                Some(Platform::WindowsX86_64),
            ),
            (
                "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Mobile Safari/537.36",
                None,
            ),
            ("curl/8.5.0", None),
        ];
        for (ua, want) in cases {
            assert_eq!(platform_of_user_agent(ua), want, "{ua}");
        }
    }
}
