//! Retries: exponential backoff with jitter that honours `Retry-After`.
//!
//! Only what [`ApiError::is_retryable`] allows is retried (429, 500/502/503/504,
//! transport failures), never other 4xx. A call is retried by calling the
//! closure again, so streaming bodies (a file part) are rebuilt each attempt.
//! The defaults follow Moov's official SDKs: 500 ms initial delay, factor 1.5,
//! at most 60 s between attempts.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use progenitor_client::{Error, ResponseValue};

use crate::ApiError;

/// How a call is retried; set per client and overridable per call.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Longest delay between two attempts (Retry-After may ask for more, up to
    /// `max_retry_after`).
    pub max_delay: Duration,
    /// Growth of the delay per attempt.
    pub factor: f32,
    /// Retries after the first attempt (0: no retries).
    pub max_retries: usize,
    /// The longest `Retry-After` honoured; longer requests are capped.
    pub max_retry_after: Duration,
    /// Add random jitter to each delay (off only for deterministic tests).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            factor: 1.5,
            max_retries: 8,
            max_retry_after: Duration::from_secs(600),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::default()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_max_times(self.max_retries);
        if self.jitter {
            builder.with_jitter()
        } else {
            builder
        }
    }

    /// Run `call` until it succeeds, fails for good, or retries run out.
    ///
    /// `call` is a closure so each attempt builds a fresh request:
    /// `policy.run(|| client.list_files(account, None)).await`.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<ResponseValue<T>, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<ResponseValue<T>, Error<()>>>,
    {
        self.run_with(call, |_, _| {}).await
    }

    /// [`run`](Self::run), calling `notify(error, delay)` before each retry
    /// (for logs and metrics).
    pub async fn run_with<T, F, Fut, N>(
        &self,
        mut call: F,
        mut notify: N,
    ) -> Result<ResponseValue<T>, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<ResponseValue<T>, Error<()>>>,
        N: FnMut(&ApiError, Duration),
    {
        let max_retry_after = self.max_retry_after;
        let attempt = || {
            let fut = call();
            async move {
                match fut.await {
                    Ok(value) => Ok(value),
                    Err(e) => Err(ApiError::from_progenitor(e).await),
                }
            }
        };
        attempt
            .retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(ApiError::is_retryable)
            .adjust(move |error: &ApiError, delay| {
                // Wait at least what the server asked for; stop when our own
                // budget of retries is spent.
                let delay = delay?;
                Some(match error.retry_after() {
                    Some(asked) => delay.max(asked.min(max_retry_after)),
                    None => delay,
                })
            })
            .notify(|error, delay| notify(error, delay))
            .await
    }
}
