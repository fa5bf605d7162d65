//! Per-exit figures of the exit loops (time, ratio to the floor, the VMM's user and system
//! CPU) and the guest-observed irqfd round trip.

use super::{fig, paired, skipped, vm, Ctx, Figure, NOT_IN_QUICK};
use crate::run::{
    irq_rounds, Case, Peer, Sample, FIRECRACKER_NO_LOOPS, IRQ_KIND, IRQ_NO_FLOOR, KINDS,
};

/// Per round: (cpu(k) - cpu(z)) / n of the VMM, user (`user`) or system time, µs.
fn cpu_per(k: &[Option<&Sample>], z: &[Option<&Sample>], n: f64, user: bool) -> Vec<f64> {
    paired(k, z, |k, z| {
        let (k, z) = (vm(Some(k))?, vm(Some(z))?);
        let (a, b) = match user {
            true => (k.utime_us, z.utime_us),
            false => (k.stime_us, z.stime_us),
        };
        Some((a as f64 - b as f64) / n)
    })
}

/// Every exit loop of every peer.
pub fn figures(c: &Ctx, out: &mut Vec<Figure>) {
    for kind in KINDS {
        let case = Case::Exit(kind, c.o.exits);
        let floor = c.per_op_us(Peer::Floor, case, Case::Exit("none", 0), n_exits(c));
        for peer in Peer::ALL {
            loop_figures(c, peer, kind, &floor, out);
        }
    }
}

/// N of the exit loops.
fn n_exits(c: &Ctx) -> f64 {
    f64::from(c.o.exits)
}

/// One exit loop of one peer: µs per exit, its ratio to the floor's (`floor`, per round),
/// and the VMM's user and system CPU per exit.
fn loop_figures(c: &Ctx, peer: Peer, kind: &'static str, floor: &[f64], out: &mut Vec<Figure>) {
    let (case, base) = (Case::Exit(kind, c.o.exits), Case::Exit("none", 0));
    let (sc, name) = (case.scenario(), format!("exit.{kind}"));
    if !peer.runs_exit_loop(kind) {
        if peer == Peer::Firecracker {
            out.push(skipped(name, peer, sc, "us", FIRECRACKER_NO_LOOPS));
        }
        return;
    }
    if let Some(why) = c.skip_reason(peer) {
        let why = format!("peer skipped: {why}");
        out.push(skipped(name, peer, sc, "us", &why));
        return;
    }
    let (k, z) = (c.runs(peer, case), c.runs(peer, base));
    if k.is_empty() {
        out.push(skipped(name, peer, sc, "us", NOT_IN_QUICK));
        return;
    }
    let per_exit = c.per_op_us(peer, case, base, n_exits(c));
    let target =
        (peer == Peer::MicrovmSeccomp && kind.starts_with("pio")).then_some("<= 1.1 x floor");
    out.push(fig(&name, peer, sc.clone(), "us", per_exit.clone(), target));
    if peer == Peer::Floor {
        return;
    }
    let ratio: Vec<f64> = per_exit.iter().zip(floor).map(|(p, f)| p / f).collect();
    let rname = format!("{name}.ratio_to_floor");
    out.push(fig(rname, peer, sc.clone(), "x", ratio, target));
    let n = n_exits(c);
    // The target is the default's (device threads); device processes' CPU counts too.
    let threads = peer.is_microvm() && peer != Peer::MicrovmIsolate;
    let target = threads.then_some("<= 0.3 us");
    let user = cpu_per(&k, &z, n, true);
    let uname = format!("{name}.vmm_user_cpu");
    out.push(fig(uname, peer, sc.clone(), "us", user, target));
    let sys = cpu_per(&k, &z, n, false);
    out.push(fig(
        format!("{name}.vmm_sys_cpu"),
        peer,
        sc,
        "us",
        sys,
        None,
    ));
}

/// The guest-observed interrupt round trip: (t(N) - t(0)) / N of the irqfd loop, plus the
/// VMM's user and system CPU per round trip.
pub fn irqfd_figures(c: &Ctx, out: &mut Vec<Figure>) {
    let n_irq = irq_rounds(c.o.exits);
    let n = f64::from(n_irq);
    let (case, base) = (Case::Exit(IRQ_KIND, n_irq), Case::Exit("none", 0));
    let sc = format!("{} --rng on", case.scenario());
    let name = format!("exit.{IRQ_KIND}");
    for peer in Peer::ALL {
        let why = match (peer, c.skip_reason(peer)) {
            (Peer::Floor, _) => Some(IRQ_NO_FLOOR.to_string()),
            (Peer::Firecracker, _) => Some(FIRECRACKER_NO_LOOPS.to_string()),
            (_, Some(why)) => Some(format!("peer skipped: {why}")),
            _ => None,
        };
        if let Some(why) = why {
            out.push(skipped(&name, peer, sc.clone(), "us", &why));
            continue;
        }
        let per = c.per_op_us(peer, case, base, n);
        out.push(fig(&name, peer, sc.clone(), "us", per, None));
        let (k, z) = (c.runs(peer, case), c.runs(peer, base));
        for (what, user) in [("user", true), ("sys", false)] {
            let v = cpu_per(&k, &z, n, user);
            let fname = format!("{name}.vmm_{what}_cpu");
            out.push(fig(fname, peer, sc.clone(), "us", v, None));
        }
    }
}
