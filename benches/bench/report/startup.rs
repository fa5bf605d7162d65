//! Startup figures of every VMM peer: the do-nothing guest's exec → exit, CPU and peak RSS
//! (every VMM with its defaults, the headline figures), and the tiny guest's (exec → first
//! serial byte, exec → exit, microvm's `--timings` phases and CPU to the first KVM_RUN,
//! peak RSS at 128 MiB / 1 vCPU).

use super::{fig, paired, skipped, vm, Ctx, Figure};
use crate::launch::RunResult;
use crate::run::{Case, Peer, FIRECRACKER_NO_TINY};

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

/// The VMM peers, in table order.
const VMMS: [Peer; 5] = [
    Peer::MicrovmSeccomp,
    Peer::MicrovmNoSeccomp,
    Peer::MicrovmIsolate,
    Peer::Firecracker,
    Peer::Qemu,
];

/// The do-nothing guest's figures of every VMM peer, and microvm's ratio to Firecracker.
pub fn noop_figures(c: &Ctx, out: &mut Vec<Figure>) {
    let sc = Case::Noop.scenario();
    let names = [
        ("startup.noop.exit", "ms"),
        ("startup.noop.first_serial_byte", "ms"),
        ("startup.noop.vmm_cpu", "ms"),
        ("startup.noop.rss", "KiB"),
    ];
    for peer in VMMS {
        if let Some(why) = c.skip_reason(peer) {
            for (name, unit) in names {
                let why = format!("peer skipped: {why}");
                out.push(skipped(name, peer, sc.clone(), unit, &why));
            }
            continue;
        }
        let runs: Vec<_> = c.runs(peer, Case::Noop).into_iter().flatten().collect();
        let runs: Vec<_> = runs.into_iter().filter_map(|s| vm(Some(s))).collect();
        let mine = peer == Peer::MicrovmSeccomp;
        let wall = runs.iter().map(|r| r.wall_ms()).collect();
        let target = mine.then_some("<= 0.5 x firecracker");
        out.push(fig(names[0].0, peer, sc.clone(), "ms", wall, target));
        let first = runs.iter().filter_map(|r| r.first_byte_ms()).collect();
        out.push(fig(names[1].0, peer, sc.clone(), "ms", first, None));
        let cpu = runs
            .iter()
            .map(|r| (r.utime_us + r.stime_us) as f64 / 1000.0)
            .collect();
        out.push(fig(names[2].0, peer, sc.clone(), "ms", cpu, None));
        let rss = runs.iter().map(|r| r.maxrss_kib as f64).collect();
        let target = mine.then_some("<= 2048 KiB");
        out.push(fig(names[3].0, peer, sc.clone(), "KiB", rss, target));
    }
    let name = "startup.noop.exit.ratio_to_firecracker";
    let (me, fc) = (Peer::MicrovmSeccomp, Peer::Firecracker);
    if let Some(why) = c.skip_reason(fc).or_else(|| c.skip_reason(me)) {
        out.push(skipped(name, me, sc, "x", &format!("peer skipped: {why}")));
        return;
    }
    let ratio = paired(&c.runs(me, Case::Noop), &c.runs(fc, Case::Noop), |a, b| {
        let (a, b) = (vm(Some(a))?, vm(Some(b))?);
        Some(a.wall_ms() / b.wall_ms())
    });
    out.push(fig(name, me, sc, "x", ratio, Some("<= 0.5")));
}

/// The tiny guest's startup and base-RSS figures of every VMM peer.
pub fn figures(c: &Ctx, out: &mut Vec<Figure>) {
    noop_figures(c, out);
    let base = Case::Exit("none", 0);
    for peer in VMMS {
        let sc = base.scenario();
        let why = match peer {
            Peer::Firecracker => Some(FIRECRACKER_NO_TINY.to_string()),
            _ => c
                .skip_reason(peer)
                .map(|why| format!("peer skipped: {why}")),
        };
        if let Some(why) = why {
            for (name, unit) in [
                ("startup.first_serial_byte", "ms"),
                ("startup.exit", "ms"),
                ("rss.peak.mem128.cpus1", "KiB"),
            ] {
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
        let target = None;
        out.push(fig("startup.exit", peer, sc.clone(), "ms", wall, target));
        if peer.is_microvm() {
            timings(peer, &b, &sc, out);
        } else {
            out.push(skipped(
                "startup.vmm_cpu_to_first_kvm_run",
                peer,
                sc.clone(),
                "ms",
                "not measured: no equivalent of microvm's --timings",
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
