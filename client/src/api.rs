//! A typed client for the catalog's `/workers` and `/v1` routes.
//!
//! Trust: the license key goes only to the catalog's own origin (scheme,
//! host and port of its base URL), on a client that follows no redirect;
//! a redirect is followed without it. Every answer is read with a size
//! cap and the [`Timeouts`], and a download answer is checked field by
//! field against what was asked (`check_download`) before the
//! installer uses any of it.

use std::time::Duration;

use futures_util::StreamExt as _;
use rbee_schemas::Platform;
use reqwest::{StatusCode, Url, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::checked::{Sha256Digest, WorkerId, check_file_name, parse_version};
use crate::error::ClientError;
use crate::limits::{MAX_ANSWER_BYTES, Timeouts};

// The answers' shapes are the catalog's own, defined once in rbee-schemas.
// `Build` and `DownloadInfo` are this crate's earlier names for them.
pub use rbee_schemas::v1::{
    Download as DownloadInfo, PlatformBuild as Build, Price, Version, Versions, Worker,
};

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    available_platforms: Vec<String>,
    #[serde(default)]
    purchase_url: Option<String>,
}

/// A download answer whose every field was checked against its grammar
/// and against the request: only this reaches the downloader and paths.
#[derive(Debug, Clone)]
pub(crate) struct CheckedDownload {
    /// The version, exactly the one asked for.
    pub version: semver::Version,
    /// Where to GET the tar.gz (http or https).
    pub url: Url,
    /// What it must hash to.
    pub digest: Sha256Digest,
    /// Its size, at most the installer's maximum.
    pub size: u64,
}

/// Checks the answer `info` to a download request for `worker` `version`
/// on `platform`: the same worker, version and platform, a sha256 digest,
/// a plain file name and an http(s) URL (relative ones are resolved against
/// the catalog's address `base`).
pub(crate) fn check_download(
    info: &DownloadInfo,
    base: &Url,
    worker: &WorkerId,
    version: &semver::Version,
    platform: Platform,
) -> Result<CheckedDownload, ClientError> {
    let bad = ClientError::catalog;
    if info.worker_id != worker.as_str() {
        return Err(bad(format!(
            "asked for {worker}, the answer is for `{}`",
            info.worker_id.escape_debug()
        )));
    }
    let answered = parse_version(&info.version).map_err(bad)?;
    if answered != *version {
        return Err(bad(format!(
            "asked for {worker} {version}, the answer is for {answered}"
        )));
    }
    if info.platform != platform {
        return Err(bad(format!(
            "asked for {platform}, the answer is for {}",
            info.platform
        )));
    }
    let digest = Sha256Digest::parse(&info.checksum).map_err(bad)?;
    check_file_name(&info.filename).map_err(bad)?;
    let url = base
        .join(&info.download_url)
        .map_err(|e| bad(format!("bad download_url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("download_url `{url}` is not http(s)")));
    }
    Ok(CheckedDownload {
        version: answered,
        url,
        digest,
        size: info.size,
    })
}

/// A license key: a secret that never appears in a `Debug` print, a log
/// line or an error message.
#[derive(Clone)]
pub(crate) struct LicenseKey(String);

impl std::fmt::Debug for LicenseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LicenseKey(<redacted>)")
    }
}

/// A client of one catalog.
#[derive(Debug, Clone)]
pub struct CatalogClient {
    /// Follows redirects; never carries the license key.
    pub(crate) http: reqwest::Client,
    /// Carries the license key to the catalog's origin; follows no
    /// redirect, so the key cannot be forwarded anywhere.
    keyed: reqwest::Client,
    base: Url,
    license_key: Option<LicenseKey>,
    timeouts: Timeouts,
}

fn http_clients(timeouts: &Timeouts) -> Result<(reqwest::Client, reqwest::Client), ClientError> {
    let builder = || {
        reqwest::Client::builder()
            .user_agent(concat!("rbee-worker/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read_idle)
            .timeout(timeouts.total)
    };
    Ok((
        builder()
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()?,
        builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
    ))
}

impl CatalogClient {
    /// A client of the catalog at `base` (e.g. `http://localhost:8787`),
    /// with the default [`Timeouts`].
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let base = Url::parse(base)
            .map_err(|e| ClientError::Invalid(format!("bad catalog URL `{base}`: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Invalid(format!(
                "bad catalog URL `{base}`: not http(s) (write http://HOST:PORT or https://HOST)"
            )));
        }
        let timeouts = Timeouts::default();
        let (http, keyed) = http_clients(&timeouts)?;
        Ok(CatalogClient {
            http,
            keyed,
            base,
            license_key: None,
            timeouts,
        })
    }

    /// Uses `timeouts` for every request (the catalog's and the downloads').
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Result<Self, ClientError> {
        (self.http, self.keyed) = http_clients(&timeouts)?;
        self.timeouts = timeouts;
        Ok(self)
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The catalog's address.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Sends `key` as `Authorization: Bearer` (premium workers), to the
    /// catalog's own origin only.
    pub fn with_license_key(mut self, key: Option<String>) -> Self {
        self.license_key = key.map(LicenseKey);
        self
    }

    /// Reads the license key from `path`: the file's text, surrounding
    /// white space removed (at most 4 KiB; an empty file is an error).
    pub fn with_license_file(self, path: &std::path::Path) -> Result<Self, ClientError> {
        use std::io::Read as _;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(4096).read_to_string(&mut text))
            .map_err(|e| {
                ClientError::Invalid(format!("cannot read license file {}: {e}", path.display()))
            })?;
        let key = text.trim();
        if key.is_empty() || key.contains(char::is_whitespace) || text.len() >= 4096 {
            return Err(ClientError::Invalid(format!(
                "license file {} must hold one license key (rbee_lic_...)",
                path.display()
            )));
        }
        Ok(self.with_license_key(Some(key.to_owned())))
    }

    /// Whether `url` is on the catalog's origin (scheme, host, port).
    fn is_catalog_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// GETs `url`, from `offset` on when it is not 0, within `timeout`.
    /// The license key goes along only when `url` is on the catalog's
    /// origin, and a redirect from there is followed without it.
    pub(crate) async fn get_url(
        &self,
        url: Url,
        offset: u64,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let request = |client: &reqwest::Client, url: Url| {
            let mut req = client.get(url).timeout(timeout);
            if offset > 0 {
                req = req.header(header::RANGE, format!("bytes={offset}-"));
            }
            req
        };
        let Some(key) = self
            .license_key
            .as_ref()
            .filter(|_| self.is_catalog_origin(&url))
        else {
            return Ok(request(&self.http, url).send().await?);
        };
        let resp = request(&self.keyed, url.clone())
            .bearer_auth(&key.0)
            .send()
            .await?;
        if !resp.status().is_redirection() {
            return Ok(resp);
        }
        let next = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url.join(l).ok())
            .ok_or_else(|| ClientError::catalog("a redirect without a usable Location"))?;
        Ok(request(&self.http, next).send().await?)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, ClientError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let resp = self.get_url(url, 0, self.timeouts.answer()).await?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(16).collect::<String>());
        let body = read_capped(resp).await?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ClientError::catalog(format!("not the JSON expected: {e}")));
        }
        let body: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        Err(match status {
            StatusCode::NOT_FOUND if !body.available_platforms.is_empty() => {
                ClientError::NoBuildForPlatform {
                    platform: what.to_owned(),
                    available: body.available_platforms,
                }
            }
            StatusCode::NOT_FOUND if body.message.is_empty() => ClientError::NotFound(format!(
                "{what} (the server at {} answered 404 without a catalog error: is it an rbee catalog? A plain registry goes to --registry)",
                self.base
            )),
            StatusCode::NOT_FOUND => ClientError::NotFound(format!("{what}: {}", body.message)),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::PAYMENT_REQUIRED
                if self.license_key.is_some() =>
            {
                ClientError::LicenseNotAccepted {
                    purchase_url: body.purchase_url,
                }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::PAYMENT_REQUIRED => {
                ClientError::LicenseRequired {
                    purchase_url: body.purchase_url,
                }
            }
            StatusCode::TOO_MANY_REQUESTS => ClientError::Server {
                status: 429,
                message: format!(
                    "{} (retry after {} s)",
                    body.message,
                    retry_after.as_deref().unwrap_or("?")
                ),
            },
            s => ClientError::Server {
                status: s.as_u16(),
                message: if body.message.is_empty() {
                    body.error
                } else {
                    body.message
                },
            },
        })
    }

    /// `GET /v1/workers`.
    pub async fn workers(&self) -> Result<Vec<Worker>, ClientError> {
        let list: rbee_schemas::v1::Workers = self.get("/v1/workers", "workers").await?;
        Ok(list.workers)
    }

    /// `GET /v1/workers/:id`.
    pub async fn worker(&self, id: &str) -> Result<Worker, ClientError> {
        let id = worker_id(id)?;
        self.get(&format!("/v1/workers/{id}"), id.as_str()).await
    }

    /// `GET /v1/workers/:id/versions`.
    pub async fn versions(&self, id: &str) -> Result<Versions, ClientError> {
        let id = worker_id(id)?;
        self.get(&format!("/v1/workers/{id}/versions"), id.as_str())
            .await
    }

    /// [`CatalogClient::versions`] with yanked versions too
    /// (`?include_yanked=true`), each marked `yanked` with its reason; the
    /// installer needs them to install an exactly named yanked version.
    pub async fn versions_with_yanked(&self, id: &str) -> Result<Versions, ClientError> {
        let id = worker_id(id)?;
        self.get(
            &format!("/v1/workers/{id}/versions?include_yanked=true"),
            id.as_str(),
        )
        .await
    }

    /// `GET /v1/workers/:id/:version/download?platform=…`; `version` is an
    /// exact version or `latest`.
    pub async fn download_info(
        &self,
        id: &str,
        version: &str,
        platform: Platform,
    ) -> Result<DownloadInfo, ClientError> {
        self.download_info_from(id, version, platform, None).await
    }

    /// [`download_info`](Self::download_info) for an upgrade from the
    /// installed archive `from`: the answer names a delta from it when
    /// the publisher attached one (`DownloadInfo::delta`).
    pub async fn download_info_from(
        &self,
        id: &str,
        version: &str,
        platform: Platform,
        from: Option<&Sha256Digest>,
    ) -> Result<DownloadInfo, ClientError> {
        let id = worker_id(id)?;
        if version != "latest" {
            parse_version(version).map_err(ClientError::Invalid)?;
        }
        let from = from.map(|d| format!("&from={d}")).unwrap_or_default();
        self.get(
            &format!("/v1/workers/{id}/{version}/download?platform={platform}{from}"),
            platform.name(),
        )
        .await
    }
}

/// A worker id given by the caller, checked before it goes into a URL.
pub(crate) fn worker_id(id: &str) -> Result<WorkerId, ClientError> {
    WorkerId::parse(id).map_err(ClientError::Invalid)
}

/// Reads a whole (small) answer, refusing more than [`MAX_ANSWER_BYTES`].
async fn read_capped(resp: reqwest::Response) -> Result<Vec<u8>, ClientError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(ClientError::catalog(format!(
            "an answer of more than {MAX_ANSWER_BYTES} bytes"
        )));
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ClientError::catalog(format!(
                "an answer of more than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod license_tests {
    use super::*;

    #[test]
    fn the_key_never_shows_in_debug() {
        let c = CatalogClient::new("http://127.0.0.1:1")
            .unwrap()
            .with_license_key(Some("rbee_lic_topsecret".into()));
        let text = format!("{c:?}");
        assert!(!text.contains("topsecret"), "{text}");
    }

    #[test]
    fn a_license_file_holds_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  rbee_lic_abc\n").unwrap();
        let c = CatalogClient::new("http://127.0.0.1:1")
            .unwrap()
            .with_license_file(&path)
            .unwrap();
        assert_eq!(c.license_key.unwrap().0, "rbee_lic_abc");
        for bad in ["", "\n", "rbee_lic_a rbee_lic_b"] {
            std::fs::write(&path, bad).unwrap();
            let e = CatalogClient::new("http://127.0.0.1:1")
                .unwrap()
                .with_license_file(&path)
                .unwrap_err();
            assert!(matches!(e, ClientError::Invalid(_)), "{bad:?}: {e}");
            assert!(!e.to_string().contains("rbee_lic_a"), "{e}");
        }
        let e = CatalogClient::new("http://127.0.0.1:1")
            .unwrap()
            .with_license_file(&dir.path().join("missing"))
            .unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
