//! Scatter-gather with a deadline and a quorum.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use pattern_error::{Error, Kind};

/// What a scatter-gather collected.
#[derive(Debug)]
#[non_exhaustive]
pub struct Gathered<T> {
    /// The successful answers, first `quorum` of them, in the order they came.
    pub answers: Vec<T>,
    /// The failures seen before the scatter-gather ended.
    pub failures: Vec<Error>,
}

/// A scatter-gather that did not reach its quorum: why, and what it had
/// gathered by then (the answers that came, each failure with its cause).
///
/// Its [`error`](Self::error) is classified by the failures: their kind
/// when they all share one (every replica answered not found: not found),
/// else [`Kind::Unavailable`], transient only if some failure was (so a
/// quorum lost to permanent failures is not retried); [`Kind::Timeout`]
/// when the deadline passed first. It converts into that [`Error`] (for
/// `?`), dropping the partial answers.
#[derive(Debug)]
pub struct ScatterError<T> {
    error: Error,
    gathered: Gathered<T>,
}

impl<T> ScatterError<T> {
    /// Why the quorum was not reached.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.error.kind()
    }

    /// What was gathered before it ended.
    pub fn gathered(&self) -> &Gathered<T> {
        &self.gathered
    }

    /// The error and what was gathered.
    pub fn into_parts(self) -> (Error, Gathered<T>) {
        (self.error, self.gathered)
    }
}

impl<T> fmt::Display for ScatterError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T: fmt::Debug> std::error::Error for ScatterError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

impl<T> From<ScatterError<T>> for Error {
    fn from(err: ScatterError<T>) -> Self {
        err.error
    }
}

/// The error of a quorum lost to failures, classified by them; the last
/// failure (its whole chain as text: the failures themselves stay in
/// [`Gathered::failures`]) is its source.
fn quorum_lost(failures: &[Error], total: usize, quorum: usize) -> Error {
    let last = failures
        .last()
        .expect("a quorum is lost to at least one failure");
    let kind = if failures.iter().all(|f| f.kind() == last.kind()) {
        last.kind()
    } else {
        Kind::Unavailable
    };
    let message = format!(
        "{} of {total} requests failed; a quorum of {quorum} cannot be reached",
        failures.len()
    );
    let cause = Error::new(last.kind(), last.report().to_string());
    Error::with_source(kind, message, cause)
        .with_transient(failures.iter().any(Error::is_transient))
}

/// Sends every request at once and returns as soon as `quorum` of them
/// succeeded (first k of n); the others are dropped (cancelled).
///
/// Fails as soon as so many requests failed that the quorum cannot be
/// reached, or when `deadline` passes first ([`Kind::Timeout`]); the
/// [`ScatterError`] carries what was gathered by then and is classified by
/// the failures.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use pattern_error::{Error, Kind};
/// use pattern_network::fan::scatter_gather;
///
/// // Three replicas; two must answer within 100 ms.
/// let replica = |ms: u64, ok: bool| async move {
///     tokio::time::sleep(Duration::from_millis(ms)).await;
///     if ok { Ok(ms) } else { Err(Error::from_kind(Kind::Unavailable)) }
/// };
/// let got = scatter_gather(
///     vec![replica(30, true), replica(10, false), replica(50, true)],
///     2,
///     Duration::from_millis(100),
/// )
/// .await
/// .unwrap();
/// assert_eq!(got.answers, [30, 50]);
/// assert_eq!(got.failures.len(), 1);
/// # }
/// ```
pub async fn scatter_gather<F, T, E>(
    requests: impl IntoIterator<Item = F>,
    quorum: usize,
    deadline: Duration,
) -> Result<Gathered<T>, ScatterError<T>>
where
    F: Future<Output = Result<T, E>>,
    E: Into<Error>,
{
    let mut pending: FuturesUnordered<F> = requests.into_iter().collect();
    let total = pending.len();
    let mut gathered = Gathered {
        answers: Vec::with_capacity(quorum.min(total)),
        failures: Vec::new(),
    };
    if quorum == 0 || quorum > total {
        return Err(ScatterError {
            error: Error::new(
                Kind::InvalidInput,
                format!("a quorum of {quorum} out of {total} requests cannot be reached"),
            ),
            gathered,
        });
    }
    let collect = async {
        while let Some(result) = pending.next().await {
            match result {
                Ok(answer) => {
                    gathered.answers.push(answer);
                    if gathered.answers.len() == quorum {
                        return Ok(());
                    }
                }
                Err(err) => {
                    gathered.failures.push(err.into());
                    if total - gathered.failures.len() < quorum {
                        return Err(quorum_lost(&gathered.failures, total, quorum));
                    }
                }
            }
        }
        Ok(())
    };
    let error = match tokio::time::timeout(deadline, collect).await {
        Ok(Ok(())) => return Ok(gathered),
        Ok(Err(err)) => err,
        Err(_) => Error::new(
            Kind::Timeout,
            format!(
                "{} of {quorum} answers within {deadline:?} ({} failed)",
                gathered.answers.len(),
                gathered.failures.len()
            ),
        ),
    };
    Err(ScatterError { error, gathered })
}
