//! From the recorded rounds to figures: the table on stdout and the JSON file.
//!
//! One file per group of figures ([`startup`], [`rss`], [`exits`], [`seccomp`],
//! [`devices`], [`isolate`]), each reading the rounds through a [`Ctx`]; [`output`] lays
//! them out.

mod devices;
mod exits;
mod isolate;
mod output;
mod rss;
mod seccomp;
mod startup;

pub use output::{num, table, to_json};

use crate::json::{stats, Stats};
use crate::launch::RunResult;
use crate::run::{Case, Options, Peer, PeerStatus, Results, Sample};

/// One figure of one peer.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Figure name, e.g. `exit.pio-read`.
    pub name: String,
    /// Peer name.
    pub peer: &'static str,
    /// The guest scenario that produces it.
    pub scenario: String,
    /// Unit of the numbers.
    pub unit: &'static str,
    /// Median/min/max, or why there is no number.
    pub value: Result<Stats, String>,
    /// The project's target for it, in words.
    pub target: Option<&'static str>,
}

/// What every group of figures reads: the settings, the rounds and each peer's status.
pub struct Ctx<'a> {
    /// The bench's settings.
    pub o: &'a Options,
    /// Every recorded run.
    pub r: &'a Results,
    /// Whether each peer ran.
    pub status: &'a PeerStatus,
}

impl Ctx<'_> {
    /// The recorded rounds of (peer, case), None where that run failed.
    pub fn runs(&self, peer: Peer, case: Case) -> Vec<Option<&Sample>> {
        self.r
            .get(&(peer, case))
            .map(|v| v.iter().map(|s| s.as_ref().ok()).collect())
            .unwrap_or_default()
    }

    /// Why `peer` was skipped, if it was.
    pub fn skip_reason(&self, peer: Peer) -> Option<String> {
        self.status
            .iter()
            .find(|(p, _)| *p == peer)
            .and_then(|(_, s)| s.as_ref().err().cloned())
    }

    /// Per round: (t(case) - t(base)) / div, in ns / div (both runs of that round).
    pub fn delta_ns(&self, peer: Peer, case: Case, base: Case, div: f64) -> Vec<f64> {
        paired(&self.runs(peer, case), &self.runs(peer, base), |k, z| {
            Some((wall_ns(Some(k))? - wall_ns(Some(z))?) / div)
        })
    }

    /// Per round: (t(case) - t(base)) / n, in µs: the time per exit or round trip.
    pub fn per_op_us(&self, peer: Peer, case: Case, base: Case, n: f64) -> Vec<f64> {
        let ns = self.delta_ns(peer, case, base, n);
        ns.into_iter().map(|v| v / 1000.0).collect()
    }
}

/// The VMM run of a sample.
pub fn vm(s: Option<&Sample>) -> Option<&RunResult> {
    match s {
        Some(Sample::Vm(r)) => Some(r),
        _ => None,
    }
}

/// Wall time of a sample, ns (process exec to exit, or the floor's loop).
pub fn wall_ns(s: Option<&Sample>) -> Option<f64> {
    match s? {
        Sample::Vm(r) => Some(r.t_exit_ns.saturating_sub(r.t_start_ns) as f64),
        Sample::Floor(ns) => Some(*ns as f64),
    }
}

/// A figure from its samples (no sample: "no successful run").
pub fn fig(
    name: impl Into<String>,
    peer: Peer,
    scenario: String,
    unit: &'static str,
    values: Vec<f64>,
    target: Option<&'static str>,
) -> Figure {
    let value =
        stats(&values).ok_or_else(|| "no successful run (see the bench's stderr)".to_string());
    Figure {
        name: name.into(),
        peer: peer.name(),
        scenario,
        unit,
        value,
        target,
    }
}

/// A figure listed without a number, and why.
pub fn skipped(
    name: impl Into<String>,
    peer: Peer,
    scenario: String,
    unit: &'static str,
    why: &str,
) -> Figure {
    Figure {
        name: name.into(),
        peer: peer.name(),
        scenario,
        unit,
        value: Err(why.to_string()),
        target: None,
    }
}

/// Pairs round by round: f(a[i], b[i]) where both ran.
pub fn paired(
    a: &[Option<&Sample>],
    b: &[Option<&Sample>],
    f: impl Fn(&Sample, &Sample) -> Option<f64>,
) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter_map(|(x, y)| f((*x)?, (*y)?))
        .collect()
}

/// Why a case has no runs in --quick mode (QEMU's slow loops).
pub const NOT_IN_QUICK: &str =
    "not run in --quick mode (QEMU boots take seconds here); run without --quick";

/// Why a loop's figure has no number although its runs passed: in every round the run with
/// the loop ended no later than the boot alone (a short loop under load).
pub const LOST_IN_NOISE: &str =
    "t(N) <= t(0) in every round: the loop was lost in the boot's noise (use more rounds)";

/// A figure from per-round `values` that count only where positive: LOST_IN_NOISE when
/// rounds ran but none was.
pub fn positive_fig(
    name: String,
    peer: Peer,
    scenario: String,
    unit: &'static str,
    values: Vec<f64>,
) -> Figure {
    let ran = !values.is_empty();
    let values: Vec<f64> = values.into_iter().filter(|v| *v > 0.0).collect();
    match values.is_empty() && ran {
        true => skipped(name, peer, scenario, unit, LOST_IN_NOISE),
        false => fig(name, peer, scenario, unit, values, None),
    }
}

/// Every figure, for the peers in `status` (a skipped peer gets one skip entry per figure).
pub fn figures(o: &Options, r: &Results, status: &PeerStatus) -> Vec<Figure> {
    let c = Ctx { o, r, status };
    let mut out = Vec::new();
    startup::figures(&c, &mut out);
    rss::figures(&c, &mut out);
    exits::figures(&c, &mut out);
    exits::irqfd_figures(&c, &mut out);
    seccomp::figures(&c, &mut out);
    devices::figures(&c, &mut out);
    isolate::figures(&c, &mut out);
    out
}
