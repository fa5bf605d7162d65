//! The RSS sweep of microvm `--seccomp true`: peak RSS at each (MiB, vCPUs), per vCPU and
//! from 128 to 8192 MiB.

use super::{fig, paired, vm, Ctx, Figure};
use crate::run::{Case, Peer, RSS_SWEEP};

/// The sweep's figures (none when the peer was skipped: its base entry says why).
pub fn figures(c: &Ctx, out: &mut Vec<Figure>) {
    let peer = Peer::MicrovmSeccomp;
    if c.skip_reason(peer).is_some() {
        return;
    }
    let base = Case::Exit("none", 0);
    let rss_diff = |a: Case, b: Case, div: f64| {
        paired(&c.runs(peer, a), &c.runs(peer, b), |x, y| {
            let (x, y) = (vm(Some(x))?, vm(Some(y))?);
            Some((x.maxrss_kib as f64 - y.maxrss_kib as f64) / div)
        })
    };
    for (mem, cpus) in RSS_SWEEP {
        let case = Case::Rss(mem, cpus);
        let v = c
            .runs(peer, case)
            .iter()
            .filter_map(|s| Some(vm(*s)?.maxrss_kib as f64))
            .collect();
        let name = format!("rss.peak.mem{mem}.cpus{cpus}");
        out.push(fig(name, peer, case.scenario(), "KiB", v, None));
    }
    let v = rss_diff(Case::Rss(128, 32), base, 31.0);
    out.push(fig(
        "rss.per_vcpu",
        peer,
        "(rss at 32 vCPUs - rss at 1) / 31".into(),
        "KiB",
        v,
        Some("<= 64 KiB"),
    ));
    let v = rss_diff(Case::Rss(8192, 1), base, 1.0);
    out.push(fig(
        "rss.growth.mem128_to_mem8192",
        peer,
        "rss at 8192 MiB - rss at 128 MiB".into(),
        "KiB",
        v,
        Some("flat (~0)"),
    ));
}
