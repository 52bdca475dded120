//! Contenders measured in alternating rounds (A B C A B C ...), not one after the other: the
//! machine is shared and its load drifts, so each contender sees the same mix of quiet and
//! busy moments. A row's ops/s is the median of its rounds; its latencies merge all rounds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::json;

use crate::measure::{self, Budget, Op, Sample};
use crate::report::Row;

pub(crate) type Boxed<'a> = Pin<Box<dyn Future<Output = Sample> + 'a>>;

/// One contender of a workload: its operation and how to read its loader count.
pub(crate) struct Entrant {
    contender: &'static str,
    measure: Box<dyn Measurable>,
}

impl Entrant {
    pub(crate) fn new<O: Op>(
        contender: &'static str,
        op: O,
        loads: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) -> Self {
        Entrant {
            contender,
            measure: Box::new(Measured {
                op: Arc::new(op),
                loads,
            }),
        }
    }

    /// A contender measured some other way than by an [`Op`] in this process (Go's, in its
    /// own processes).
    pub(crate) fn custom(contender: &'static str, measure: impl Measurable + 'static) -> Self {
        Entrant {
            contender,
            measure: Box::new(measure),
        }
    }
}

/// How the rounds take one contender's sample, and read its load count before and after.
pub(crate) trait Measurable {
    fn sequential(&self, budget: Budget, batch: u64) -> Boxed<'_>;
    fn concurrent(&self, budget: Budget, callers: usize, batch: u64) -> Boxed<'_>;
    fn loads(&self) -> Option<u64>;
}

struct Measured<O, L> {
    op: Arc<O>,
    loads: L,
}

impl<O: Op, L: Fn() -> Option<u64>> Measurable for Measured<O, L> {
    fn sequential(&self, budget: Budget, batch: u64) -> Boxed<'_> {
        Box::pin(measure::sequential(budget, batch, &self.op))
    }

    fn concurrent(&self, budget: Budget, callers: usize, batch: u64) -> Boxed<'_> {
        Box::pin(measure::concurrent(budget, callers, batch, &self.op))
    }

    fn loads(&self) -> Option<u64> {
        (self.loads)()
    }
}

/// How to run one mode of a workload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    /// Total measuring time per contender, split over the rounds.
    pub(crate) budget: Budget,
    pub(crate) rounds: u32,
    /// `None`: one caller; `Some(n)`: `n` callers at once.
    pub(crate) callers: Option<usize>,
    pub(crate) batch: u64,
}

/// Measures every entrant in `mode`, in alternating rounds; one row each.
pub(crate) async fn run(workload: &str, mode: Mode, entrants: &[Entrant]) -> Vec<Row> {
    let per_round = Budget {
        warmup: mode.budget.warmup / mode.rounds,
        run: mode.budget.run / mode.rounds,
    };
    let mut merged: Vec<Option<Sample>> = entrants.iter().map(|_| None).collect();
    let mut rates: Vec<Vec<f64>> = entrants.iter().map(|_| Vec::new()).collect();
    let mut loads: Vec<Option<u64>> = entrants.iter().map(|_| Some(0)).collect();
    for _ in 0..mode.rounds {
        for (i, entrant) in entrants.iter().enumerate() {
            let before = entrant.measure.loads();
            let sample = match mode.callers {
                None => entrant.measure.sequential(per_round, mode.batch).await,
                Some(n) => entrant.measure.concurrent(per_round, n, mode.batch).await,
            };
            let after = entrant.measure.loads();
            loads[i] = match (loads[i], before, after) {
                (Some(sum), Some(b), Some(a)) => Some(sum + (a - b)),
                _ => None,
            };
            rates[i].push(sample.ops_per_sec());
            merged[i] = Some(match merged[i].take() {
                None => sample,
                Some(so_far) => so_far.merge(sample),
            });
        }
    }
    entrants
        .iter()
        .zip(merged)
        .zip(rates)
        .zip(loads)
        .map(|(((entrant, sample), mut rates), loads)| {
            let mut sample = sample.expect("at least one round");
            rates.sort_by(f64::total_cmp);
            sample.median_rate = Some(rates[rates.len() / 2]);
            let mut row = Row::new(workload, entrant.contender, sample)
                .extra(json!({ "ops_per_sec_by_round": rates }));
            if let Some(loads) = loads {
                row = row.loads(loads);
            }
            row
        })
        .collect()
}
