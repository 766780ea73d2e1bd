//! Scatter-gather with a deadline and a quorum.

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
    /// The failures seen before the quorum was reached.
    pub failures: Vec<Error>,
}

/// Sends every request at once and returns as soon as `quorum` of them
/// succeeded (first k of n); the others are dropped (cancelled).
///
/// Fails with [`Kind::Unavailable`] as soon as so many requests failed that
/// the quorum cannot be reached, and with [`Kind::Timeout`] when `deadline`
/// passes first; both errors say how many answered.
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
) -> Result<Gathered<T>, Error>
where
    F: Future<Output = Result<T, E>>,
    E: Into<Error>,
{
    let mut pending: FuturesUnordered<F> = requests.into_iter().collect();
    let total = pending.len();
    if quorum == 0 || quorum > total {
        return Err(Error::new(
            Kind::InvalidInput,
            format!("a quorum of {quorum} out of {total} requests cannot be reached"),
        ));
    }
    let mut gathered = Gathered {
        answers: Vec::with_capacity(quorum),
        failures: Vec::new(),
    };
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
                        return Err(Error::new(
                            Kind::Unavailable,
                            format!(
                                "{} of {total} requests failed; a quorum of {quorum} cannot be reached",
                                gathered.failures.len()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    };
    match tokio::time::timeout(deadline, collect).await {
        Ok(Ok(())) => Ok(gathered),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(Error::new(
            Kind::Timeout,
            format!(
                "{} of {quorum} answers within {deadline:?} ({} failed)",
                gathered.answers.len(),
                gathered.failures.len()
            ),
        )),
    }
}
