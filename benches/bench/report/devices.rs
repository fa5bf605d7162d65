//! Device throughput: bytes / (t(bytes) - t(0)) of each virtio-rng and virtio-blk loop.

use super::{paired, positive_fig, skipped, wall_ns, Ctx, Figure, NOT_IN_QUICK};
use crate::run::{Case, Peer, DEV_KINDS};

/// The device loop of `kind` at this run's size (--quick or not).
pub fn case(c: &Ctx, kind: &'static str) -> Case {
    let (_, quick, full) = DEV_KINDS
        .into_iter()
        .find(|(k, _, _)| *k == kind)
        .expect("a device loop");
    Case::Dev(kind, if c.o.quick { quick } else { full })
}

/// MiB/s of every device loop, for each peer that runs them.
pub fn figures(c: &Ctx, out: &mut Vec<Figure>) {
    for (kind, _, _) in DEV_KINDS {
        let case = case(c, kind);
        for peer in [Peer::MicrovmSeccomp, Peer::MicrovmIsolate, Peer::Qemu] {
            out.push(throughput(c, peer, case));
        }
    }
}

/// One device loop of one peer.
fn throughput(c: &Ctx, peer: Peer, case: Case) -> Figure {
    let Case::Dev(kind, bytes) = case else {
        unreachable!("a device case")
    };
    let name = format!("devices.{kind}");
    if let Some(why) = c.skip_reason(peer) {
        let why = format!("peer skipped: {why}");
        return skipped(name, peer, case.scenario(), "MiB/s", &why);
    }
    let k = c.runs(peer, case);
    if k.is_empty() {
        return skipped(name, peer, case.scenario(), "MiB/s", NOT_IN_QUICK);
    }
    // A round whose loop took no time (t(N) <= t(0)) gives 0 (or less), which does not count.
    let v = paired(&k, &c.runs(peer, Case::Exit("none", 0)), |k, z| {
        let secs = (wall_ns(Some(k))? - wall_ns(Some(z))?) / 1e9;
        Some(if secs > 0.0 {
            bytes as f64 / secs / f64::from(1u32 << 20)
        } else {
            0.0
        })
    });
    positive_fig(name, peer, case.scenario(), "MiB/s", v)
}
