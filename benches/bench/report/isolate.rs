//! What `--isolate devices` costs: per round, the time a device figure takes with each
//! virtio device in a process of its own (`microvm-isolate-devices`) over the time it
//! takes with device threads (`microvm-seccomp-true`; both `--seccomp true`). Above 1:
//! processes are slower. For a throughput figure that is threads' MiB/s over processes'.

use super::{devices, wall_ns, Ctx, Figure};
use crate::run::{irq_rounds, Case, Peer, DEV_KINDS, IRQ_KIND, ISOLATE_KINDS};

/// (figure, case) pairs compared; `startup.exit` is the base run's whole wall time.
fn compared(c: &Ctx) -> Vec<(String, Case)> {
    let mut v = vec![("startup.exit".to_string(), Case::Exit("none", 0))];
    for kind in ISOLATE_KINDS {
        v.push((format!("exit.{kind}"), Case::Exit(kind, c.o.exits)));
    }
    let irq = Case::Exit(IRQ_KIND, irq_rounds(c.o.exits));
    v.push((format!("exit.{IRQ_KIND}"), irq));
    for (kind, _, _) in DEV_KINDS {
        v.push((format!("devices.{kind}"), devices::case(c, kind)));
    }
    v
}

/// Per round, the time `case` took for `peer` in ns: the base run's wall time for the base
/// case, t(case) - t(base) otherwise (None where a run of that round failed).
fn times(c: &Ctx, peer: Peer, case: Case) -> Vec<Option<f64>> {
    let base = Case::Exit("none", 0);
    let (k, z) = (c.runs(peer, case), c.runs(peer, base));
    if case == base {
        return k.iter().map(|s| wall_ns(*s)).collect();
    }
    k.iter()
        .zip(&z)
        .map(|(k, z)| Some(wall_ns(*k)? - wall_ns(*z)?))
        .collect()
}

/// `isolate.cost.<figure>` for every compared figure.
pub fn figures(c: &Ctx, out: &mut Vec<Figure>) {
    let (iso, thr) = (Peer::MicrovmIsolate, Peer::MicrovmSeccomp);
    let why = [iso, thr]
        .into_iter()
        .find_map(|p| Some(format!("peer {} skipped: {}", p.name(), c.skip_reason(p)?)));
    for (name, case) in compared(c) {
        let name = format!("isolate.cost.{name}");
        let sc = format!("{} (devices / threads)", case.scenario());
        if let Some(why) = &why {
            out.push(super::skipped(name, iso, sc, "x", why));
            continue;
        }
        // A round where either loop took no time (t(N) <= t(0)) gives 0, which does not count.
        let (p, t) = (times(c, iso, case), times(c, thr, case));
        let ratio = p
            .iter()
            .zip(&t)
            .filter_map(|(p, t)| Some((p.as_ref()?, t.as_ref()?)))
            .map(|(p, t)| if *p > 0.0 && *t > 0.0 { p / t } else { 0.0 })
            .collect();
        out.push(super::positive_fig(name, iso, sc, "x", ratio));
    }
}
