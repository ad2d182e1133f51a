//! What a finished transfer is, for analytics: which build (or which
//! layer, to be mapped to a build), by whom, and whether it completed.
//!
//! Completion: a download counts when the whole layer was sent. A `Range`
//! request counts only when its range reaches the layer's last byte: then
//! it is the end of a download (a resume after an abandoned transfer, or
//! the last part of a download in ranges), complete if every byte of the
//! range went out, and marked `resumed` when it started past byte 0. A
//! range that stops short of the end is a part, or a probe, and is not
//! recorded at all. So a download resumed any number of times counts once,
//! when its last byte is sent; the abandoned attempts before it are
//! incomplete transfers, and each resumed download takes one of them off
//! the attempts of the completion rate (`domain::stats::completion_rate`).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use rbee_registry::{Action, Event, Target};

/// Where a download went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The catalog's `/v1` routes: streamed by `/v1/.../blob`, or a
    /// registry pull of the layer a `/v1/.../download` answer just named
    /// for the same client.
    V1,
    /// A direct OCI pull of a worker layer (oras, skopeo, crane...).
    Registry,
}

impl Source {
    /// As stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::V1 => "v1",
            Source::Registry => "registry",
        }
    }
}

/// The kind of client, from its user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientFamily {
    /// rbee-hive (`rbee-hive/...`).
    RbeeHive,
    /// The installer CLI or library (`rbee-worker/...`).
    RbeeWorker,
    /// oras (Go or Python, `oras...`).
    Oras,
    /// skopeo (and other `containers/image` tools).
    Skopeo,
    /// crane (`go-containerregistry`).
    Crane,
    /// curl.
    Curl,
    /// Anything else, or no user agent.
    Other,
}

impl ClientFamily {
    /// The family of a `User-Agent` value.
    pub fn of(user_agent: Option<&str>) -> ClientFamily {
        let Some(ua) = user_agent else {
            return ClientFamily::Other;
        };
        let ua = ua.to_ascii_lowercase();
        let has = |needle: &str| ua.contains(needle);
        if has("rbee-hive") {
            ClientFamily::RbeeHive
        } else if has("rbee-worker") {
            ClientFamily::RbeeWorker
        } else if has("oras") {
            ClientFamily::Oras
        } else if has("skopeo") || ua.starts_with("containers/") {
            ClientFamily::Skopeo
        } else if has("crane") || has("go-containerregistry") {
            ClientFamily::Crane
        } else if ua.starts_with("curl/") {
            ClientFamily::Curl
        } else {
            ClientFamily::Other
        }
    }

    /// As stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientFamily::RbeeHive => "rbee-hive",
            ClientFamily::RbeeWorker => "rbee-worker",
            ClientFamily::Oras => "oras",
            ClientFamily::Skopeo => "skopeo",
            ClientFamily::Crane => "crane",
            ClientFamily::Curl => "curl",
            ClientFamily::Other => "other",
        }
    }
}

/// What was transferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A blob of a registry repository, to be mapped to a worker build
    /// (or left out if it is none: a config, another repository's blob).
    Layer {
        /// `<namespace>/<worker id>`.
        repository: String,
        /// The blob's digest.
        digest: String,
    },
    /// A known build (the `/v1` blob route resolved it already).
    Build {
        /// Worker id.
        worker: String,
        /// Version.
        version: String,
        /// rbee platform name.
        platform: String,
    },
}

/// A finished transfer, as queued for the writer. `Debug` never shows the
/// client address.
#[derive(Clone, PartialEq, Eq)]
pub struct Observed {
    /// What was sent.
    pub subject: Subject,
    /// When it ended.
    pub at: DateTime<Utc>,
    /// Through where.
    pub source: Source,
    /// The peer's address: hashed by the writer, never stored.
    pub client_addr: Option<IpAddr>,
    /// The client family.
    pub family: ClientFamily,
    /// The license (the registry gate's verified subject), if any.
    pub license_id: Option<String>,
    /// Whether the whole layer was sent.
    pub complete: bool,
    /// Whether a ranged request completed it from past byte 0.
    pub resumed: bool,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("subject", &self.subject)
            .field("at", &self.at)
            .field("source", &self.source)
            .field("client_addr", &self.client_addr.map(|_| "<redacted>"))
            .field("family", &self.family)
            .field("license_id", &self.license_id)
            .field("complete", &self.complete)
            .field("resumed", &self.resumed)
            .finish()
    }
}

impl Observed {
    /// The transfer a registry event reports, if it is one that counts: a
    /// client's blob GET (not a HEAD, a manifest or the process's own
    /// read) that reached, or was meant to reach, the blob's end.
    pub fn of_registry(event: &Event) -> Option<Observed> {
        if event.action != Action::Pull || event.target != Target::Blob || event.context.internal {
            return None;
        }
        let transfer = event.transfer.as_ref()?;
        let resumed = match (transfer.range, event.size) {
            (None, _) => false,
            (Some(range), Some(size)) if range.end == size => range.start > 0,
            // A part that stops short of the end, or a range of a blob of
            // unknown size: not the end of a download.
            (Some(_), _) => return None,
        };
        Some(Observed {
            subject: Subject::Layer {
                repository: event.repository.clone(),
                digest: event.digest.clone(),
            },
            at: event.timestamp,
            source: Source::Registry,
            client_addr: event.context.client_addr,
            family: ClientFamily::of(event.context.user_agent.as_deref()),
            license_id: event.context.subject.clone(),
            complete: transfer.completed,
            resumed: resumed && transfer.completed,
        })
    }
}

#[cfg(test)]
mod tests {
    use rbee_registry::{ByteRange, RequestContext, Transfer};

    use super::*;

    fn pull(range: Option<ByteRange>, completed: bool) -> Event {
        let repo = rbee_registry::reference::RepoName::parse("rbee/w").unwrap();
        let digest =
            rbee_registry::reference::Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let mut e = Event::new(
            Action::Pull,
            Target::Blob,
            &repo,
            &digest,
            &RequestContext {
                client_addr: Some("192.0.2.1".parse().unwrap()),
                user_agent: Some("oras-py/0.2".into()),
                ..RequestContext::default()
            },
        );
        e.size = Some(100);
        e.transfer = Some(Transfer {
            bytes_sent: 0,
            completed,
            range,
            redirected: false,
        });
        e
    }

    #[test]
    fn whole_pulls_count_complete_or_not_and_ranges_only_at_the_end() {
        let full = Observed::of_registry(&pull(None, true)).unwrap();
        assert!(full.complete && !full.resumed);
        assert_eq!(full.family, ClientFamily::Oras);
        let aborted = Observed::of_registry(&pull(None, false)).unwrap();
        assert!(!aborted.complete);
        let resume = Observed::of_registry(&pull(Some((40..100).into()), true)).unwrap();
        assert!(resume.complete && resume.resumed);
        assert!(Observed::of_registry(&pull(Some((0..40).into()), true)).is_none());
        let mut head = pull(None, true);
        head.action = Action::Head;
        assert!(Observed::of_registry(&head).is_none());
        let mut manifest = pull(None, true);
        manifest.target = Target::Manifest;
        assert!(Observed::of_registry(&manifest).is_none());
        let mut internal = pull(None, true);
        internal.context.internal = true;
        assert!(Observed::of_registry(&internal).is_none());
    }

    #[test]
    fn user_agents_map_to_families() {
        let f = |ua| ClientFamily::of(Some(ua)).as_str();
        assert_eq!(f("rbee-hive/0.1 rbee-worker/0.1"), "rbee-hive");
        assert_eq!(f("rbee-worker/0.1.0"), "rbee-worker");
        assert_eq!(f("oras-py"), "oras");
        assert_eq!(f("containers/5.29 (github.com/containers/image)"), "skopeo");
        assert_eq!(f("skopeo/1.13"), "skopeo");
        assert_eq!(f("go-containerregistry/v0.20"), "crane");
        assert_eq!(f("curl/8.5.0"), "curl");
        assert_eq!(f("Mozilla/5.0"), "other");
        assert_eq!(ClientFamily::of(None).as_str(), "other");
    }

    #[test]
    fn the_client_address_is_not_in_debug_output() {
        let o = Observed::of_registry(&pull(None, true)).unwrap();
        assert!(!format!("{o:?}").contains("192.0.2.1"));
    }
}
