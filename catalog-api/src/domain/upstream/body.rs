//! Reading upstream bodies safely: small ones under a byte cap (checked
//! against `Content-Length`, then counted), large ones as a stream that
//! verifies length and digest before it lets the last bytes through.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sha2::Digest as _;

use super::UpstreamError;

/// A digest algorithm the catalog verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `sha256:` (64 hex digits).
    Sha256,
    /// `sha512:` (128 hex digits).
    Sha512,
}

impl Algorithm {
    /// The digest of `data`, as `<algorithm>:<hex>`.
    pub fn of(self, data: &[u8]) -> String {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }

    fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// A digest from upstream data, checked before it reaches a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 hex>` or `sha512:<128 hex>` (lower-case).
    pub fn parse(text: &str) -> Result<Digest, UpstreamError> {
        let bad = || {
            UpstreamError::Invalid(format!(
                "`{}` is not a sha256 or sha512 digest",
                text.escape_debug().take(80).collect::<String>()
            ))
        };
        let (algorithm, hex) = text.split_once(':').ok_or_else(bad)?;
        let (algorithm, len) = match algorithm {
            "sha256" => (Algorithm::Sha256, 64),
            "sha512" => (Algorithm::Sha512, 128),
            _ => return Err(bad()),
        };
        if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Checks that `bytes` hash to this digest; otherwise upstream sent
    /// invalid data for `what`.
    pub fn check(&self, what: &str, bytes: &[u8]) -> Result<(), UpstreamError> {
        let actual = self.algorithm.of(bytes);
        if actual.split_once(':').map(|(_, hex)| hex) != Some(self.hex.as_str()) {
            return Err(UpstreamError::Invalid(format!(
                "{what} has digest {actual}"
            )));
        }
        Ok(())
    }

    /// The tag of the referrers tag schema: `sha256-<hex>`.
    pub fn fallback_tag(&self) -> String {
        let alg = match self.algorithm {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        };
        format!("{alg}-{}", self.hex)
    }
}

/// Reads a whole body of at most `limit` bytes: refused at once when
/// `Content-Length` says more, and as soon as the count passes the limit
/// otherwise, so memory never holds more than `limit` bytes of it.
pub async fn read_capped(
    resp: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Bytes, UpstreamError> {
    let too_big = || UpstreamError::Invalid(format!("{what} is larger than {limit} bytes"));
    let announced = resp.content_length();
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(too_big());
    }
    // Trust Content-Length only up to the limit for the allocation.
    let mut out = BytesMut::with_capacity(announced.map_or(8 << 10, |n| n as usize));
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(super::transport_error)?;
        if out.len() + chunk.len() > limit {
            return Err(too_big());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// State of [`verified_stream`].
struct Verifying {
    inner: BoxStream<'static, std::io::Result<Bytes>>,
    hasher: Option<Hasher>,
    expected: String,
    size: u64,
    seen: u64,
    /// The newest chunk, held back until the next one arrives (or the end
    /// is verified): the last bytes are only sent once the digest matched.
    held: Option<Bytes>,
    what: String,
}

/// The body of `resp` as a stream that ends in an error, without its last
/// chunk, when the body is longer or shorter than `size` or does not hash
/// to `digest` ([`verify_stream`]).
pub fn verified_stream(
    resp: reqwest::Response,
    digest: Digest,
    size: u64,
    what: String,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    let body = resp
        .bytes_stream()
        .map(|chunk| {
            chunk.map_err(|e| std::io::Error::other(super::transport_error(e).to_string()))
        })
        .boxed();
    verify_stream(body, digest, size, what)
}

/// `inner` as a stream that ends in an error, without its last chunk,
/// when it is longer or shorter than `size` or does not hash to `digest`.
/// With a `Content-Length` of `size` on the response, the client then
/// sees a truncated transfer, never a complete wrong one.
pub fn verify_stream(
    inner: BoxStream<'static, std::io::Result<Bytes>>,
    digest: Digest,
    size: u64,
    what: String,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    let state = Verifying {
        inner,
        hasher: Some(digest.algorithm.hasher()),
        expected: format!(
            "{}:{}",
            match digest.algorithm {
                Algorithm::Sha256 => "sha256",
                Algorithm::Sha512 => "sha512",
            },
            digest.hex
        ),
        size,
        seen: 0,
        held: None,
        what,
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        // The end was verified and the held chunk sent: do not poll the
        // finished body again.
        st.hasher.as_ref()?;
        loop {
            match st.inner.next().await {
                Some(Ok(chunk)) => {
                    st.seen += chunk.len() as u64;
                    if st.seen > st.size {
                        let e = format!("{} is longer than its {} bytes", st.what, st.size);
                        return Some((Err(invalid(e)), None));
                    }
                    if let Some(h) = st.hasher.as_mut() {
                        h.update(&chunk);
                    }
                    if let Some(previous) = st.held.replace(chunk)
                        && !previous.is_empty()
                    {
                        return Some((Ok(previous), Some(st)));
                    }
                }
                Some(Err(e)) => {
                    let e = format!("{}: {e}", st.what);
                    return Some((Err(std::io::Error::other(e)), None));
                }
                None => {
                    let hasher = st.hasher.take()?;
                    if st.seen != st.size {
                        let e = format!("{} ended at {} of {} bytes", st.what, st.seen, st.size);
                        return Some((Err(invalid(e)), None));
                    }
                    let actual = hasher.finish();
                    if actual != st.expected {
                        tracing::warn!(blob = %st.what, %actual, "upstream blob does not match its digest; download aborted");
                        let e = format!("{} has digest {actual}", st.what);
                        return Some((Err(invalid(e)), None));
                    }
                    return st.held.take().map(|last| (Ok(last), Some(st)));
                }
            }
        }
    })
    .boxed()
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked() {
        let d = Digest::parse(&Algorithm::Sha256.of(b"x")).unwrap();
        assert_eq!(
            d.fallback_tag(),
            Algorithm::Sha256.of(b"x").replace(':', "-")
        );
        assert!(Digest::parse(&Algorithm::Sha512.of(b"x")).is_ok());
        for bad in [
            "sha256:",
            "sha256:ABC",
            "md5:00",
            "sha256",
            &format!("sha256:{}", "g".repeat(64)),
            &format!("sha256:{}/..", "a".repeat(62)),
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }
}
