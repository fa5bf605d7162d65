//! From the recorded rounds to figures: the table on stdout and the JSON file.

use std::fmt::Write as _;

use crate::bpf_count;
use crate::json::{self, stats, Stats};
use crate::run::{
    irq_rounds, Case, Options, Peer, PeerStatus, Results, Sample, DEV_KINDS, IRQ_KIND,
    IRQ_NO_FLOOR, KINDS, RSS_SWEEP,
};

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

fn runs(r: &Results, peer: Peer, case: Case) -> Vec<Option<&Sample>> {
    r.get(&(peer, case))
        .map(|v| v.iter().map(|s| s.as_ref().ok()).collect())
        .unwrap_or_default()
}

fn vm(s: Option<&Sample>) -> Option<&crate::launch::RunResult> {
    match s {
        Some(Sample::Vm(r)) => Some(r),
        _ => None,
    }
}

/// Wall time of a sample, ns (process exec to exit, or the floor's loop).
fn wall_ns(s: Option<&Sample>) -> Option<f64> {
    match s? {
        Sample::Vm(r) => Some(r.t_exit_ns.saturating_sub(r.t_start_ns) as f64),
        Sample::Floor(ns) => Some(*ns as f64),
    }
}

/// `cpu_at_start` or a phase from microvm's `--timings` line, in ms.
fn timing_ms(r: &crate::launch::RunResult, key: &str) -> Option<f64> {
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("timings (us since main)"))?;
    let v = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?;
    v.parse::<f64>().ok().map(|us| us / 1000.0)
}

fn fig(
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

fn skipped(
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
fn paired(
    a: &[Option<&Sample>],
    b: &[Option<&Sample>],
    f: impl Fn(&Sample, &Sample) -> Option<f64>,
) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter_map(|(x, y)| f((*x)?, (*y)?))
        .collect()
}

/// Every figure, for the peers in `status` (a skipped peer gets one skip entry per figure).
pub fn figures(o: &Options, r: &Results, status: &PeerStatus) -> Vec<Figure> {
    let mut out = Vec::new();
    let base = Case::Exit("none", 0);
    let n = f64::from(o.exits);
    let skip_reason = |peer: Peer| {
        status
            .iter()
            .find(|(p, _)| *p == peer)
            .and_then(|(_, s)| s.as_ref().err().cloned())
    };
    let vmm_peers = [Peer::MicrovmSeccomp, Peer::MicrovmNoSeccomp, Peer::Qemu];

    // Startup and peak RSS at 128 MiB / 1 vCPU.
    for peer in vmm_peers {
        let sc = base.scenario();
        if let Some(why) = skip_reason(peer) {
            for (name, unit) in [
                ("startup.first_serial_byte", "ms"),
                ("startup.exit", "ms"),
                ("rss.peak.mem128.cpus1", "KiB"),
            ] {
                out.push(skipped(
                    name,
                    peer,
                    sc.clone(),
                    unit,
                    &format!("peer skipped: {why}"),
                ));
            }
            continue;
        }
        let b = runs(r, peer, base);
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
            let cpu = b
                .iter()
                .filter_map(|s| timing_ms(vm(*s)?, "cpu_at_start"))
                .collect();
            out.push(fig(
                "startup.vmm_cpu_to_first_kvm_run",
                peer,
                sc.clone(),
                "ms",
                cpu,
                Some("<= 2 ms"),
            ));
            for phase in [
                "args",
                "kvm_setup",
                "memory",
                "kernel_load",
                "vcpus_started",
                "first_kvm_run",
                "guest_exit",
                "threads_joined",
                "teardown",
            ] {
                let v = b.iter().filter_map(|s| timing_ms(vm(*s)?, phase)).collect();
                out.push(fig(
                    format!("startup.timings.{phase}"),
                    peer,
                    sc.clone(),
                    "ms",
                    v,
                    None,
                ));
            }
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

    // RSS sweep (microvm --seccomp true).
    let peer = Peer::MicrovmSeccomp;
    let rss_of = |case: Case| runs(r, peer, case);
    let rss_diff = |a: Case, b: Case, div: f64| {
        paired(&rss_of(a), &rss_of(b), |x, y| {
            let (x, y) = (vm(Some(x))?, vm(Some(y))?);
            Some((x.maxrss_kib as f64 - y.maxrss_kib as f64) / div)
        })
    };
    if skip_reason(peer).is_none() {
        for (mem, cpus) in RSS_SWEEP {
            let case = Case::Rss(mem, cpus);
            let v = rss_of(case)
                .iter()
                .filter_map(|s| Some(vm(*s)?.maxrss_kib as f64))
                .collect();
            out.push(fig(
                format!("rss.peak.mem{mem}.cpus{cpus}"),
                peer,
                case.scenario(),
                "KiB",
                v,
                None,
            ));
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

    // Exit loops.
    for kind in KINDS {
        let case = Case::Exit(kind, o.exits);
        let sc = case.scenario();
        let floor = paired(
            &runs(r, Peer::Floor, case),
            &runs(r, Peer::Floor, base),
            |k, z| Some((wall_ns(Some(k))? - wall_ns(Some(z))?) / n / 1000.0),
        );
        for peer in Peer::ALL {
            let name = format!("exit.{kind}");
            if let Some(why) = skip_reason(peer) {
                out.push(skipped(
                    name,
                    peer,
                    sc.clone(),
                    "us",
                    &format!("peer skipped: {why}"),
                ));
                continue;
            }
            let k = runs(r, peer, case);
            if k.is_empty() {
                out.push(skipped(
                    name,
                    peer,
                    sc.clone(),
                    "us",
                    "not run in --quick mode (QEMU boots take seconds here); run without --quick",
                ));
                continue;
            }
            let per_exit = paired(&k, &runs(r, peer, base), |k, z| {
                Some((wall_ns(Some(k))? - wall_ns(Some(z))?) / n / 1000.0)
            });
            let target = (peer == Peer::MicrovmSeccomp && kind.starts_with("pio"))
                .then_some("<= 1.1 x floor");
            out.push(fig(&name, peer, sc.clone(), "us", per_exit.clone(), target));
            if peer == Peer::Floor {
                continue;
            }
            let ratio: Vec<f64> = per_exit.iter().zip(&floor).map(|(p, f)| p / f).collect();
            out.push(fig(
                format!("{name}.ratio_to_floor"),
                peer,
                sc.clone(),
                "x",
                ratio,
                target,
            ));
            let cpu = paired(&k, &runs(r, peer, base), |k, z| {
                let (k, z) = (vm(Some(k))?, vm(Some(z))?);
                Some((k.utime_us as f64 - z.utime_us as f64) / n)
            });
            let target = peer.is_microvm().then_some("<= 0.3 us");
            out.push(fig(
                format!("{name}.vmm_user_cpu"),
                peer,
                sc.clone(),
                "us",
                cpu,
                target,
            ));
            let sys = paired(&k, &runs(r, peer, base), |k, z| {
                let (k, z) = (vm(Some(k))?, vm(Some(z))?);
                Some((k.stime_us as f64 - z.stime_us as f64) / n)
            });
            out.push(fig(
                format!("{name}.vmm_sys_cpu"),
                peer,
                sc.clone(),
                "us",
                sys,
                None,
            ));
        }
    }
    irqfd_figures(o, r, &skip_reason, &mut out);

    // Seccomp: true vs false on every exit loop, and BPF instructions on the hot calls.
    for kind in KINDS {
        let case = Case::Exit(kind, o.exits);
        let per_exit = |peer| {
            paired(&runs(r, peer, case), &runs(r, peer, base), |k, z| {
                Some((wall_ns(Some(k))? - wall_ns(Some(z))?) / n)
            })
        };
        let (t, f) = (
            per_exit(Peer::MicrovmSeccomp),
            per_exit(Peer::MicrovmNoSeccomp),
        );
        let ratio = t.iter().zip(&f).map(|(t, f)| t / f).collect();
        out.push(fig(
            format!("seccomp.cost.{kind}"),
            Peer::MicrovmSeccomp,
            format!("{} (true / false)", case.scenario()),
            "x",
            ratio,
            Some("<= 1.01"),
        ));
    }
    for c in bpf_count::counts() {
        let name = format!("seccomp.bpf_insns.{}.{}", c.kind, c.call);
        let target = (c.kind == "vcpu").then_some("<= 8");
        out.push(match c.insns {
            Ok(v) => Figure {
                name,
                peer: Peer::MicrovmSeccomp.name(),
                scenario: "BPF simulation of the compiled filter".into(),
                unit: "insns",
                value: Ok(Stats {
                    median: v as f64,
                    min: v as f64,
                    max: v as f64,
                    n: 1,
                }),
                target,
            },
            Err(e) => skipped(
                name,
                Peer::MicrovmSeccomp,
                "BPF simulation".into(),
                "insns",
                &e,
            ),
        });
    }
    // Device throughput: bytes / (t(bytes) - t(0)).
    for (kind, quick, full) in DEV_KINDS {
        let bytes = if o.quick { quick } else { full };
        let case = Case::Dev(kind, bytes);
        for peer in [Peer::MicrovmSeccomp, Peer::Qemu] {
            let name = format!("devices.{kind}");
            if let Some(why) = skip_reason(peer) {
                out.push(skipped(
                    name,
                    peer,
                    case.scenario(),
                    "MiB/s",
                    &format!("peer skipped: {why}"),
                ));
                continue;
            }
            let k = runs(r, peer, case);
            if k.is_empty() {
                out.push(skipped(
                    name,
                    peer,
                    case.scenario(),
                    "MiB/s",
                    "not run in --quick mode (QEMU boots take seconds here); run without --quick",
                ));
                continue;
            }
            let v = paired(&k, &runs(r, peer, base), |k, z| {
                let secs = (wall_ns(Some(k))? - wall_ns(Some(z))?) / 1e9;
                (secs > 0.0).then(|| bytes as f64 / secs / f64::from(1u32 << 20))
            });
            out.push(fig(name, peer, case.scenario(), "MiB/s", v, None));
        }
    }
    out
}

/// The guest-observed interrupt round trip: (t(N) - t(0)) / N of the irqfd loop, plus the
/// VMM's user and system CPU per round trip.
fn irqfd_figures(
    o: &Options,
    r: &Results,
    skip_reason: &dyn Fn(Peer) -> Option<String>,
    out: &mut Vec<Figure>,
) {
    let n_irq = irq_rounds(o.exits);
    let n = f64::from(n_irq);
    let (case, base) = (Case::Exit(IRQ_KIND, n_irq), Case::Exit("none", 0));
    let sc = format!("{} --rng on", case.scenario());
    let name = format!("exit.{IRQ_KIND}");
    for peer in Peer::ALL {
        let why = match (peer, skip_reason(peer)) {
            (Peer::Floor, _) => Some(IRQ_NO_FLOOR.to_string()),
            (_, Some(why)) => Some(format!("peer skipped: {why}")),
            _ => None,
        };
        if let Some(why) = why {
            out.push(skipped(&name, peer, sc.clone(), "us", &why));
            continue;
        }
        let (k, z) = (runs(r, peer, case), runs(r, peer, base));
        let per = paired(&k, &z, |k, z| {
            Some((wall_ns(Some(k))? - wall_ns(Some(z))?) / n / 1000.0)
        });
        out.push(fig(&name, peer, sc.clone(), "us", per, None));
        for (what, user) in [("user", true), ("sys", false)] {
            let v = paired(&k, &z, |k, z| {
                let (k, z) = (vm(Some(k))?, vm(Some(z))?);
                let (a, b) = match user {
                    true => (k.utime_us, z.utime_us),
                    false => (k.stime_us, z.stime_us),
                };
                Some((a as f64 - b as f64) / n)
            });
            let fname = format!("{name}.vmm_{what}_cpu");
            out.push(fig(fname, peer, sc.clone(), "us", v, None));
        }
    }
}

/// A number for the tables: 3 significant digits or whole units.
pub fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The table printed on stdout.
pub fn table(o: &Options, status: &PeerStatus, figs: &[Figure]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "microvm bench ({}): {} rounds after {} warm-up round(s), N = {} exits per loop; medians [min, max]",
        if o.quick { "quick" } else { "full" },
        o.rounds,
        o.warmup,
        o.exits
    );
    for (peer, st) in status {
        match st {
            Ok(d) => {
                let _ = writeln!(t, "  peer {:<22} measured: {d}", peer.name());
            }
            Err(e) => {
                let _ = writeln!(t, "  peer {:<22} SKIPPED: {e}", peer.name());
            }
        }
    }
    let _ = writeln!(
        t,
        "\n{:<44} {:<22} {:>9} {:>9} {:>9} {:<5} target",
        "figure", "peer", "median", "min", "max", "unit"
    );
    for f in figs {
        match &f.value {
            Ok(s) => {
                let _ = writeln!(
                    t,
                    "{:<44} {:<22} {:>9} {:>9} {:>9} {:<5} {}",
                    f.name,
                    f.peer,
                    num(s.median),
                    num(s.min),
                    num(s.max),
                    f.unit,
                    f.target.unwrap_or("")
                );
            }
            Err(e) => {
                let _ = writeln!(t, "{:<44} {:<22} skipped: {e}", f.name, f.peer);
            }
        }
    }
    t
}

/// The JSON document; `member` is inserted after the host (e.g. `"linux": {...},\n`).
pub fn to_json(o: &Options, status: &PeerStatus, figs: &[Figure], member: &str) -> String {
    let s = json::string;
    let mut j = String::from("{\n");
    let _ = writeln!(
        j,
        "  \"bench\": \"microvm\",\n  \"mode\": {},",
        s(if o.quick { "quick" } else { "full" })
    );
    let _ = writeln!(
        j,
        "  \"rounds\": {},\n  \"warmup_rounds\": {},\n  \"exits_per_loop\": {},",
        o.rounds, o.warmup, o.exits
    );
    let _ = writeln!(
        j,
        "  \"host\": {{\"cpus\": {}, \"kernel\": {}}},",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        s(&host_kernel())
    );
    j.push_str(member);
    j.push_str("  \"peers\": [\n");
    for (i, (peer, st)) in status.iter().enumerate() {
        let comma = if i + 1 < status.len() { "," } else { "" };
        match st {
            Ok(d) => {
                let _ = writeln!(
                    j,
                    "    {{\"name\": {}, \"status\": \"measured\", \"detail\": {}}}{comma}",
                    s(peer.name()),
                    s(d)
                );
            }
            Err(e) => {
                let _ = writeln!(
                    j,
                    "    {{\"name\": {}, \"status\": \"skipped\", \"reason\": {}}}{comma}",
                    s(peer.name()),
                    s(e)
                );
            }
        }
    }
    j.push_str("  ],\n  \"figures\": [\n");
    for (i, f) in figs.iter().enumerate() {
        let comma = if i + 1 < figs.len() { "," } else { "" };
        let _ = write!(
            j,
            "    {{\"name\": {}, \"peer\": {}, \"scenario\": {}, \"unit\": {}",
            s(&f.name),
            s(f.peer),
            s(&f.scenario),
            s(f.unit)
        );
        if let Some(t) = f.target {
            let _ = write!(j, ", \"target\": {}", s(t));
        }
        match &f.value {
            Ok(v) => {
                let _ = write!(
                    j,
                    ", \"median\": {}, \"min\": {}, \"max\": {}, \"n\": {}",
                    json::number(v.median),
                    json::number(v.min),
                    json::number(v.max),
                    v.n
                );
            }
            Err(e) => {
                let _ = write!(j, ", \"skipped\": {}", s(e));
            }
        }
        let _ = writeln!(j, "}}{comma}");
    }
    j.push_str("  ]\n}\n");
    j
}

fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
