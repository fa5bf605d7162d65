//! Startup figures of every VMM peer (exec → first serial byte, exec → exit, microvm's
//! `--timings` phases and CPU to the first KVM_RUN) and its peak RSS at 128 MiB / 1 vCPU.

use super::{fig, skipped, vm, Ctx, Figure};
use crate::launch::RunResult;
use crate::run::{Case, Peer};

/// microvm's `--timings` phases, in the order it marks them.
const PHASES: [&str; 9] = [
    "args",
    "kvm_setup",
    "memory",
    "kernel_load",
    "vcpus_started",
    "first_kvm_run",
    "guest_exit",
    "threads_joined",
    "teardown",
];

/// `cpu_at_start` or a phase from microvm's `--timings` line, in ms.
fn timing_ms(r: &RunResult, key: &str) -> Option<f64> {
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("timings (us since main)"))?;
    let v = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?;
    v.parse::<f64>().ok().map(|us| us / 1000.0)
}

/// The startup and base-RSS figures of every VMM peer.
pub fn figures(c: &Ctx, out: &mut Vec<Figure>) {
    let base = Case::Exit("none", 0);
    for peer in [
        Peer::MicrovmSeccomp,
        Peer::MicrovmNoSeccomp,
        Peer::MicrovmIsolate,
        Peer::Qemu,
    ] {
        let sc = base.scenario();
        if let Some(why) = c.skip_reason(peer) {
            for (name, unit) in [
                ("startup.first_serial_byte", "ms"),
                ("startup.exit", "ms"),
                ("rss.peak.mem128.cpus1", "KiB"),
            ] {
                let why = format!("peer skipped: {why}");
                out.push(skipped(name, peer, sc.clone(), unit, &why));
            }
            continue;
        }
        let b = c.runs(peer, base);
        let first = b.iter().filter_map(|s| vm(*s)?.first_byte_ms()).collect();
        out.push(fig(
            "startup.first_serial_byte",
            peer,
            sc.clone(),
            "ms",
            first,
            None,
        ));
        let wall = b.iter().filter_map(|s| Some(vm(*s)?.wall_ms())).collect();
        let target = (peer == Peer::MicrovmSeccomp).then_some("< qemu-microvm");
        out.push(fig("startup.exit", peer, sc.clone(), "ms", wall, target));
        if peer.is_microvm() {
            timings(peer, &b, &sc, out);
        } else {
            out.push(skipped(
                "startup.vmm_cpu_to_first_kvm_run",
                peer,
                sc.clone(),
                "ms",
                "not measured: QEMU has no equivalent of --timings",
            ));
        }
        let rss = b
            .iter()
            .filter_map(|s| Some(vm(*s)?.maxrss_kib as f64))
            .collect();
        out.push(fig("rss.peak.mem128.cpus1", peer, sc, "KiB", rss, None));
    }
}

/// microvm's CPU to the first KVM_RUN and its `--timings` phases, from the base runs `b`.
fn timings(peer: Peer, b: &[Option<&crate::run::Sample>], sc: &str, out: &mut Vec<Figure>) {
    let cpu = b
        .iter()
        .filter_map(|s| timing_ms(vm(*s)?, "cpu_at_start"))
        .collect();
    out.push(fig(
        "startup.vmm_cpu_to_first_kvm_run",
        peer,
        sc.to_string(),
        "ms",
        cpu,
        Some("<= 2 ms"),
    ));
    for phase in PHASES {
        let v = b.iter().filter_map(|s| timing_ms(vm(*s)?, phase)).collect();
        let name = format!("startup.timings.{phase}");
        out.push(fig(name, peer, sc.to_string(), "ms", v, None));
    }
}
