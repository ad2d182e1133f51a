//! The one retry policy of the registry client: which failures are worth
//! another attempt, how long to wait before it, and when to give up.
//!
//! The unit retried is a *step*: one request that is safe to repeat (a
//! GET, HEAD, PUT or DELETE, with the answer's body read), a whole
//! monolithic blob upload (a new upload session each time: the blob is
//! content-addressed, and an abandoned session expires on the registry),
//! or one chunk of a chunked upload (resumed from the offset the registry
//! reports). Steps never nest: what a step does inside is sent once per
//! attempt, so a step costs at most [`RetryPolicy::attempts`] attempts,
//! never a product of loops.
//!
//! Retried: connection failures, timeouts (see `transport.rs`), an answer
//! cut off or stalled, and the statuses in [`retryable_status`]. Anything
//! else (a 4xx, bad credentials, a local file error) fails at once.
//! `docs/pusher.md` ("Retries") states the same for users.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Response, StatusCode};

use super::RegistryClient;
use super::http::retry_after;
use super::transport::SendError;
use crate::error::PushError;

/// How failed steps are retried: exponential backoff with jitter, a cap on
/// attempts, and the registry's `Retry-After` when it sends one.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts of one step in all, the first included.
    pub attempts: u32,
    /// Delay before the first retry; doubled for each further one, and
    /// each delay gets a random extra of up to 100% (jitter, so that many
    /// publishers that failed together do not retry together).
    pub base_delay: Duration,
    /// No wait is longer than this, jitter and `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delays between attempts, as backon yields them: `attempts - 1`
    /// of them, then none.
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1) as usize)
    }
}

/// Answers worth another attempt: rate limiting, and a server or gateway
/// that failed or is overloaded. 500 is included: the registry answers it
/// for a storage failure, and by this project's rules never for bad input.
pub(super) fn retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Why one attempt of a step failed, and whether another may help.
#[derive(Debug)]
pub(super) struct Failure {
    error: PushError,
    retryable: bool,
    /// How long the registry asked us to wait (`Retry-After`).
    retry_after: Option<Duration>,
}

impl Failure {
    /// A failure no retry can mend.
    pub(super) fn fatal(error: PushError) -> Self {
        Failure {
            error,
            retryable: false,
            retry_after: None,
        }
    }

    /// A request that got no (complete) answer; `what` names it.
    pub(super) fn send(error: SendError, what: &str) -> Self {
        Failure {
            retryable: error.retryable(),
            error: error.into_push(what),
            retry_after: None,
        }
    }

    /// The error the caller sees.
    pub(super) fn into_error(self) -> PushError {
        self.error
    }
}

impl From<PushError> for Failure {
    fn from(error: PushError) -> Self {
        Failure::fatal(error)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure::fatal(error.into())
    }
}

impl RegistryClient {
    /// The failure an unexpected answer means: retryable for the statuses
    /// of [`retryable_status`], with the registry's own error message.
    pub(super) async fn unexpected(&self, resp: Response) -> Failure {
        let status = resp.status();
        Failure {
            retryable: retryable_status(status),
            retry_after: retry_after(resp.headers()),
            error: self.refusal(resp).await,
        }
    }

    /// Runs `attempt` until it succeeds, fails in a way no retry mends, or
    /// the policy gives up; `step` names it in logs and in the final error.
    pub(super) async fn retrying<T, Fut>(
        &self,
        step: &str,
        attempt: impl FnMut() -> Fut,
    ) -> Result<T, PushError>
    where
        Fut: Future<Output = Result<T, Failure>>,
    {
        let max_delay = self.retry.max_delay;
        let mut tries = 1u32;
        let result = attempt
            .retry(self.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(|f: &Failure| f.retryable)
            .adjust(|f: &Failure, next: Option<Duration>| {
                // `next` is None once the attempts are spent: Retry-After
                // does not buy more of them.
                next.map(|delay| f.retry_after.unwrap_or(delay).min(max_delay))
            })
            .notify(|f: &Failure, wait: Duration| {
                tries += 1;
                tracing::warn!(
                    step,
                    attempt = tries,
                    wait_ms = wait.as_millis() as u64,
                    error = %f.error,
                    "registry busy or failing; retrying"
                );
            })
            .await;
        result.map_err(|f| {
            if f.retryable {
                gave_up(f.error, tries)
            } else {
                f.error
            }
        })
    }
}

/// The error of a step whose attempts are spent: the last failure, and
/// how many attempts were made.
fn gave_up(error: PushError, attempts: u32) -> PushError {
    let note = |m: String| format!("{m} (gave up after {attempts} attempts)");
    match error {
        PushError::Registry(m) => PushError::Registry(note(m)),
        PushError::Rejected(m) => PushError::Rejected(note(m)),
        PushError::Auth(m) => PushError::Auth(note(m)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn only_transient_statuses_are_retried() {
        for code in [429, 500, 502, 503, 504] {
            assert!(
                retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 405, 409, 413, 416, 501] {
            assert!(
                !retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
    }

    #[test]
    fn delays_grow_with_jitter_and_stop_at_the_cap() {
        let policy = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        let delays: Vec<Duration> = policy.backoff().build().collect();
        // Four retries after the first attempt, then none.
        assert_eq!(delays.len(), 4);
        // 100, 200, 300, 300 ms before jitter; jitter adds up to 100%.
        let floors = [100, 200, 300, 300];
        for (delay, floor) in delays.iter().zip(floors) {
            let floor = Duration::from_millis(floor);
            assert!(*delay >= floor && *delay <= floor * 2, "{delays:?}");
        }
    }
}
