//! A page's failure: the catalog's [`ApiError`], shown as an HTML page
//! with the same status, title and message as the JSON body would carry
//! (`ApiError::describe` is the one mapping).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::layout::{Layout, Section};
use crate::domain::CatalogError;
use crate::error::ApiError;

/// Why a page could not be shown.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl PageError {
    /// No page here.
    pub fn not_found() -> PageError {
        PageError(ApiError::NotFound)
    }

    /// A template failed to render (it writes into a `String`, so only a
    /// value's own `Display` can fail it); the detail goes to the log.
    pub fn render(e: &askama::Error) -> PageError {
        PageError(ApiError::Unavailable(format!("a page did not render: {e}")))
    }

    /// A cached stats answer did not read back (it was written by this
    /// process, so this is a bug); the detail goes to the log.
    pub fn bad_data(e: &serde_json::Error) -> PageError {
        PageError(ApiError::Unavailable(format!(
            "a stats answer did not read back: {e}"
        )))
    }

    /// A query parameter a page does not accept.
    pub fn bad_request(message: String) -> PageError {
        PageError(ApiError::BadRequest(message))
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<CatalogError> for PageError {
    fn from(e: CatalogError) -> Self {
        PageError(e.into())
    }
}

impl From<rbee_store::StoreError> for PageError {
    fn from(e: rbee_store::StoreError) -> Self {
        PageError(e.into())
    }
}

/// `templates/error.html`.
#[derive(Debug, Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: Layout,
    status: u16,
    title: &'static str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = self.0.describe();
        let page = ErrorPage {
            page: Layout::new(title, Section::None, false),
            status: status.as_u16(),
            title,
            message,
        };
        let body = page.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the error page did not render");
            String::from("error")
        });
        let mut resp = (status, Html(body)).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(super::CSP),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(rbee_registry::limits::RETRY_AFTER_SECS),
            );
        }
        resp
    }
}
