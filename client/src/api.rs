//! A typed client for the catalog's `/workers` and `/v1` routes.

use std::time::Duration;

use rbee_schemas::Platform;
use reqwest::{StatusCode, Url, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;

/// A worker in `/v1/workers`.
#[derive(Debug, Clone, Deserialize)]
pub struct Worker {
    /// Worker id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `cpu`, `cuda`, `metal`, `rocm`.
    pub backend: String,
    /// One-line description.
    pub description: String,
    /// Latest stable version.
    pub latest_version: String,
    /// Every published version.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Platforms the latest version declares.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Whether a license key is needed to download it.
    #[serde(default)]
    pub requires_license: bool,
}

/// One build of a version.
#[derive(Debug, Clone, Deserialize)]
pub struct Build {
    /// rbee platform name.
    pub platform: String,
    /// `sha256:` of the tar.gz.
    pub layer_digest: String,
    /// Size of the tar.gz.
    pub size: u64,
}

/// One published version.
#[derive(Debug, Clone, Deserialize)]
pub struct Version {
    /// The version.
    pub version: String,
    /// When it was published.
    pub published_at: Option<String>,
    /// Its builds.
    #[serde(default)]
    pub platforms: Vec<Build>,
}

/// `/v1/workers/:id/versions`.
#[derive(Debug, Clone, Deserialize)]
pub struct Versions {
    /// Newest first.
    pub versions: Vec<Version>,
    /// The latest stable version.
    pub latest: Option<String>,
}

/// `/v1/workers/:id/:version/download`.
#[derive(Debug, Clone, Deserialize)]
pub struct DownloadInfo {
    /// The worker.
    pub worker_id: String,
    /// The exact version.
    pub version: String,
    /// The platform.
    pub platform: String,
    /// Where to GET the tar.gz.
    pub download_url: String,
    /// `sha256:<hex>` it must hash to.
    pub checksum: String,
    /// Its size.
    pub size: u64,
    /// Its file name.
    pub filename: String,
    /// `registry/repo@sha256:…` of the platform manifest.
    pub oci_reference: String,
}

#[derive(Debug, Deserialize)]
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

/// A client of one catalog.
#[derive(Debug, Clone)]
pub struct CatalogClient {
    pub(crate) http: reqwest::Client,
    base: Url,
    license_key: Option<String>,
}

impl CatalogClient {
    /// A client of the catalog at `base` (e.g. `http://localhost:8787`).
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let base = Url::parse(base)
            .map_err(|e| ClientError::Invalid(format!("bad catalog URL `{base}`: {e}")))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("rbee-worker/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(CatalogClient {
            http,
            base,
            license_key: None,
        })
    }

    /// Sends `key` as `Authorization: Bearer` (premium workers).
    pub fn with_license_key(mut self, key: Option<String>) -> Self {
        self.license_key = key;
        self
    }

    pub(crate) fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.license_key {
            Some(key) => req.header(header::AUTHORIZATION, format!("Bearer {key}")),
            None => req,
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, ClientError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let resp = self.authorize(self.http.get(url)).send().await?;
        let status = resp.status();
        if status.is_success() {
            return resp
                .json()
                .await
                .map_err(|e| ClientError::Network(format!("bad answer from the catalog: {e}")));
        }
        let body: ErrorBody = resp.json().await.unwrap_or(ErrorBody {
            error: String::new(),
            message: String::new(),
            available_platforms: Vec::new(),
            purchase_url: None,
        });
        Err(match status {
            StatusCode::NOT_FOUND if !body.available_platforms.is_empty() => {
                ClientError::NoBuildForPlatform {
                    platform: what.to_owned(),
                    available: body.available_platforms,
                }
            }
            StatusCode::NOT_FOUND => ClientError::NotFound(format!("{what}: {}", body.message)),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::PAYMENT_REQUIRED => {
                ClientError::LicenseRequired {
                    purchase_url: body.purchase_url,
                }
            }
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
        #[derive(Deserialize)]
        struct List {
            workers: Vec<Worker>,
        }
        Ok(self.get::<List>("/v1/workers", "workers").await?.workers)
    }

    /// `GET /v1/workers/:id`.
    pub async fn worker(&self, id: &str) -> Result<Worker, ClientError> {
        self.get(&format!("/v1/workers/{id}"), id).await
    }

    /// `GET /v1/workers/:id/versions`.
    pub async fn versions(&self, id: &str) -> Result<Versions, ClientError> {
        self.get(&format!("/v1/workers/{id}/versions"), id).await
    }

    /// `GET /v1/workers/:id/:version/download?platform=…`.
    pub async fn download_info(
        &self,
        id: &str,
        version: &str,
        platform: Platform,
    ) -> Result<DownloadInfo, ClientError> {
        self.get(
            &format!("/v1/workers/{id}/{version}/download?platform={platform}"),
            platform.name(),
        )
        .await
    }
}
