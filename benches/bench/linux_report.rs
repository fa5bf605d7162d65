//! The Linux section's parsing and figures: `@@LINUX` result lines of the rounds' script, the
//! guest consoles it kept, and from them the table rows and the JSON (docs/performance.md,
//! "Stock Linux boot in the nested host").

use std::fmt::Write as _;
use std::path::Path;

use crate::json::{self, stats};
use crate::linux::{LinuxOutcome, LinuxPeer, LinuxRun, CMDLINE, CPUS, MARKER, MEMORY};
use crate::report::{num, Figure};

/// The guest's printk line at the start of its init.
pub const RUN_INIT: &str = "Run /init as init process";

/// One guest boot as the boot timer and the console saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Boot {
    /// exec -> the marker line on the VMM's stdout, ms.
    pub init_ms: f64,
    /// exec -> the VMM's exit, ms.
    pub exit_ms: f64,
    /// The guest's printk time of "Run /init as init process", s.
    pub guest_init_s: f64,
    /// Peak RSS of the VMM process, KiB.
    pub maxrss_kib: u64,
    /// User + system CPU time of the VMM process (all threads), ms.
    pub cpu_ms: f64,
}

/// The `perf` scenario's MVTEST keys, the figure each becomes, and its unit.
pub const IO_FIGURES: [(&str, &str, &str); 8] = [
    ("io-seq-write-1m", "linux.blk.seq_write_1m", "KiB/s"),
    ("io-seq-read-1m", "linux.blk.seq_read_1m", "KiB/s"),
    ("io-seq-write-4k", "linux.blk.seq_write_4k", "KiB/s"),
    ("io-seq-read-4k", "linux.blk.seq_read_4k", "KiB/s"),
    ("io-par4-read-4k", "linux.blk.par4_read_4k", "KiB/s"),
    ("ping-avg-ms", "linux.net.ping_avg", "ms"),
    ("io-tcp-tx", "linux.net.tcp_guest_to_host", "KiB/s"),
    ("io-tcp-rx", "linux.net.tcp_host_to_guest", "KiB/s"),
];

/// The fields of a `BOOTTIME` line (see boottime.c): marker_ns (None: never seen),
/// exit_ns, wait status, maxrss_kib, utime_us, stime_us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootTime {
    pub marker_ns: Option<u64>,
    pub exit_ns: u64,
    pub status: i32,
    pub maxrss_kib: u64,
    pub utime_us: u64,
    pub stime_us: u64,
}

/// Parses `BOOTTIME marker_ns=N exit_ns=N status=N maxrss_kib=N utime_us=N stime_us=N`
/// (anywhere in `line`).
pub fn parse_boottime(line: &str) -> Option<BootTime> {
    let rest = &line[line.find("BOOTTIME ")? + 9..];
    let get = |key: &str| -> Option<i64> {
        rest.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    let marker = get("marker_ns")?;
    Some(BootTime {
        marker_ns: u64::try_from(marker).ok(),
        exit_ns: u64::try_from(get("exit_ns")?).ok()?,
        status: i32::try_from(get("status")?).ok()?,
        maxrss_kib: u64::try_from(get("maxrss_kib")?).ok()?,
        utime_us: u64::try_from(get("utime_us")?).ok()?,
        stime_us: u64::try_from(get("stime_us")?).ok()?,
    })
}

/// The printk time (s) of the first console line containing `needle`: `[   10.900124] ...`.
pub fn printk_time(console: &str, needle: &str) -> Option<f64> {
    let line = console.lines().find(|l| l.contains(needle))?;
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    line[open + 1..close].trim().parse().ok()
}

/// The value of `key` in the console's `MVTEST` lines.
fn mvtest<'a>(console: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=");
    console
        .lines()
        .filter_map(|l| l.strip_prefix("MVTEST "))
        .flat_map(str::split_whitespace)
        .find_map(|w| w.strip_prefix(pat.as_str()))
}

/// One boot's figures, or why it does not count: the VMM must exit 0 after the guest's
/// `info` scenario saw every vCPU and blk, net and rng, and printed the marker first.
pub fn boot_of(t: &BootTime, console: &str) -> Result<Boot, String> {
    let exited = t.status & 0x7f == 0;
    let code = (t.status >> 8) & 0xff;
    if !exited {
        return Err(format!("killed by signal {} (time-out?)", t.status & 0x7f));
    }
    if code != 0 {
        return Err(format!("VMM exit code {code}"));
    }
    let first = console.lines().find(|l| l.starts_with("MVTEST "));
    if first != Some(MARKER) {
        return Err(format!("first MVTEST line is {first:?}, not {MARKER:?}"));
    }
    if mvtest(console, "cpus") != Some(&CPUS.to_string()) {
        return Err(format!("guest saw cpus={:?}", mvtest(console, "cpus")));
    }
    let found: Vec<&str> = mvtest(console, "virtio").unwrap_or("").split(',').collect();
    if let Some(d) = ["blk", "net", "rng"].iter().find(|d| !found.contains(d)) {
        return Err(format!(
            "guest found no virtio {d} (virtio={})",
            found.join(",")
        ));
    }
    if mvtest(console, "rc") != Some("0") {
        return Err("the guest's scenario did not end with rc=0".into());
    }
    let init_ns = t.marker_ns.ok_or("the marker never appeared")?;
    let guest_init_s = printk_time(console, RUN_INIT).ok_or("no \"Run /init\" printk line")?;
    Ok(Boot {
        init_ms: init_ns as f64 / 1e6,
        exit_ms: t.exit_ns as f64 / 1e6,
        guest_init_s,
        maxrss_kib: t.maxrss_kib,
        cpu_ms: (t.utime_us + t.stime_us) as f64 / 1e3,
    })
}

/// The `perf` scenario's figures a console printed: (key, value) for every [`IO_FIGURES`]
/// key with a number. A boot that failed later (a hang in a later step) still measured
/// these.
pub fn io_of(console: &str) -> Vec<(&'static str, f64)> {
    IO_FIGURES
        .iter()
        .filter_map(|(key, _, _)| Some((*key, mvtest(console, key)?.parse::<f64>().ok()?)))
        .collect()
}

/// Fills `out.runs` (recorded rounds only) from the script's stdout and the consoles in
/// `logs/logs/`, and notes each peer's failed boots (warm-up included) in its status: a peer
/// none of whose boots counted is skipped with the first reason.
pub fn collect(out: &mut LinuxOutcome, stdout: &str, logs: &Path) {
    // Per peer: boots, failed boots, the first failure.
    let mut tally: Vec<(LinuxPeer, usize, usize, String)> = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("@@LINUX round=") else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let round: Option<usize> = w.next().and_then(|r| r.parse().ok());
        let peer = w
            .next()
            .and_then(|p| p.strip_prefix("peer="))
            .and_then(|p| LinuxPeer::ALL.into_iter().find(|x| x.name() == p));
        let (Some(round), Some(peer)) = (round, peer) else {
            continue;
        };
        let (result, io) = if line.ends_with(" skipped") {
            (
                Err("not run: two of its boots had failed".to_string()),
                Vec::new(),
            )
        } else {
            let name = format!("r{round}-{}", peer.name());
            let console = std::fs::read_to_string(logs.join("logs").join(format!("{name}.out")))
                .unwrap_or_default();
            let result = match parse_boottime(line) {
                None => Err(format!("no BOOTTIME result ({line})")),
                Some(t) => boot_of(&t, &console).map_err(|e| format!("{e} (console: {name}.out)")),
            };
            (result, io_of(&console))
        };
        let i = match tally.iter().position(|t| t.0 == peer) {
            Some(i) => i,
            None => {
                tally.push((peer, 0, 0, String::new()));
                tally.len() - 1
            }
        };
        tally[i].1 += 1;
        if let Err(e) = &result {
            let what = match round.checked_sub(out.warmup) {
                None => "warm-up".to_string(),
                Some(r) => format!("round {}", r + 1),
            };
            eprintln!("bench: Linux {} {what}: {e}", peer.name());
            tally[i].2 += 1;
            if tally[i].3.is_empty() {
                tally[i].3 = format!("{what}: {e}");
            }
        }
        if round >= out.warmup {
            out.runs.push(LinuxRun { peer, result, io });
        }
    }
    for (peer, st) in &mut out.peers {
        let Ok(detail) = st else { continue };
        let Some((_, boots, failed, first)) = tally.iter().find(|t| t.0 == *peer) else {
            *st = Err("cannot run here: no boot reported".into());
            continue;
        };
        if failed == boots {
            *st = Err(format!(
                "cannot run here: every boot failed; first, {first}"
            ));
        } else if *failed > 0 {
            *st = Ok(format!(
                "{detail}; {failed} of {boots} boots failed or not run, first: {first}"
            ));
        }
    }
}

/// The figures of the section (none when it did not run; a skipped peer gets one skip
/// entry per figure).
pub fn figures(out: &LinuxOutcome) -> Vec<Figure> {
    let mut figs = Vec::new();
    if out.status.is_err() {
        return figs;
    }
    let scenario = format!(
        "stock Debian cloud kernel (bzImage-cloud), initramfs-cloud, {CPUS} vCPUs, {MEMORY} MiB, virtio blk+net+rng, \"{CMDLINE}\""
    );
    type Get = fn(&Boot) -> f64;
    // exec_to_guest_clock: exec -> init on the host minus the guest's own time to init,
    // i.e. what happens before the guest kernel's clock starts (VMM set-up, firmware, kernel
    // load and decompression).
    let list: [(&str, &'static str, Get, Option<&'static str>); 6] = [
        ("linux.boot.exec_to_init", "ms", |b| b.init_ms, None),
        ("linux.boot.exec_to_exit", "ms", |b| b.exit_ms, None),
        (
            "linux.boot.exec_to_guest_clock",
            "ms",
            |b| b.init_ms - b.guest_init_s * 1e3,
            None,
        ),
        (
            "linux.boot.guest_run_init",
            "s",
            |b| b.guest_init_s,
            Some("<= 5.2 s (Firecracker, same kind of nested host)"),
        ),
        ("linux.boot.vmm_cpu", "ms", |b| b.cpu_ms, None),
        ("linux.boot.peak_rss", "KiB", |b| b.maxrss_kib as f64, None),
    ];
    for (name, unit, get, target) in list {
        for (peer, st) in &out.peers {
            let value = match st {
                Err(why) => Err(format!("peer skipped: {why}")),
                Ok(_) => {
                    let v: Vec<f64> = out
                        .runs
                        .iter()
                        .filter(|r| r.peer == *peer)
                        .filter_map(|r| r.result.as_ref().ok().map(get))
                        .collect();
                    stats(&v).ok_or_else(|| "no successful boot (see the bench's stderr)".into())
                }
            };
            let target = target.filter(|_| *peer == LinuxPeer::Microvm);
            figs.push(Figure {
                name: name.into(),
                peer: peer.name(),
                scenario: scenario.clone(),
                unit,
                value,
                target,
            });
        }
    }
    io_figures(out, &scenario, &mut figs);
    figs
}

/// The `perf` scenario's figures of every peer (see resources/linux-guest/init), from every
/// recorded boot that printed them: a boot that failed in a later step still counts here.
fn io_figures(out: &LinuxOutcome, scenario: &str, figs: &mut Vec<Figure>) {
    for (key, name, unit) in IO_FIGURES {
        for (peer, st) in &out.peers {
            let v: Vec<f64> = (out.runs.iter().filter(|r| r.peer == *peer))
                .filter_map(|r| r.io.iter().find(|(k, _)| *k == key).map(|kv| kv.1))
                .collect();
            let value = match (stats(&v), st) {
                (Some(s), _) => Ok(s),
                (None, Err(why)) => Err(format!("peer skipped: {why}")),
                (None, Ok(_)) => Err(format!("no boot reported {key} (see the consoles)")),
            };
            figs.push(Figure {
                name: name.into(),
                peer: peer.name(),
                scenario: format!("{scenario}: {key}"),
                unit,
                value,
                target: None,
            });
        }
    }
}

/// The section's table.
pub fn table(out: &LinuxOutcome, figs: &[Figure]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "\nStock Linux boot in the nested host:");
    let st = match &out.status {
        Err(why) => {
            let _ = writeln!(t, "  SKIPPED: {why}");
            return t;
        }
        Ok(st) => st,
    };
    let _ = writeln!(
        t,
        "  {} rounds after {} warm-up round(s), random order per round, {st}; medians [min, max]",
        out.rounds, out.warmup
    );
    let _ = writeln!(
        t,
        "  load {}; consoles: {}/logs",
        out.load,
        out.logs.display()
    );
    for (peer, st) in &out.peers {
        match st {
            Ok(d) => {
                let _ = writeln!(t, "  peer {:<14} measured: {d}", peer.name());
            }
            Err(e) => {
                let _ = writeln!(t, "  peer {:<14} SKIPPED: {e}", peer.name());
            }
        }
    }
    let _ = writeln!(
        t,
        "\n{:<31} {:<14} {:>9} {:>9} {:>9} {:>3} {:<5} target",
        "figure", "peer", "median", "min", "max", "n", "unit"
    );
    for f in figs {
        match &f.value {
            Ok(s) => {
                let _ = writeln!(
                    t,
                    "{:<31} {:<14} {:>9} {:>9} {:>9} {:>3} {:<5} {}",
                    f.name,
                    f.peer,
                    num(s.median),
                    num(s.min),
                    num(s.max),
                    s.n,
                    f.unit,
                    f.target.unwrap_or("")
                );
            }
            Err(e) => {
                let _ = writeln!(t, "{:<31} {:<14} skipped: {e}", f.name, f.peer);
            }
        }
    }
    t
}

/// The section's JSON member (`"linux": {...},` with a trailing comma and newline); its
/// figures go into the document's `figures` array.
pub fn json_member(out: &LinuxOutcome) -> String {
    let s = json::string;
    let mut j = String::from("  \"linux\": {");
    match &out.status {
        Err(why) => {
            let _ = write!(j, "\"status\": \"skipped\", \"reason\": {}", s(why));
        }
        Ok(st) => {
            let _ = write!(
                j,
                "\"status\": \"measured\", \"detail\": {}, \"rounds\": {}, \"warmup_rounds\": {}, \"load\": {}, \"logs\": {}, \"peers\": [",
                s(st), out.rounds, out.warmup, s(&out.load), s(&out.logs.join("logs").display().to_string())
            );
            for (i, (peer, st)) in out.peers.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                let (k, v) = match st {
                    Ok(d) => ("\"measured\", \"detail\"", d),
                    Err(e) => ("\"skipped\", \"reason\"", e),
                };
                let _ = write!(
                    j,
                    "{sep}{{\"name\": {}, \"status\": {k}: {}}}",
                    s(peer.name()),
                    s(v)
                );
            }
            j.push(']');
        }
    }
    j.push_str("},\n");
    j
}
