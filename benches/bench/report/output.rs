//! The bench's two outputs: the table on stdout and the JSON document.

use std::fmt::Write as _;

use super::Figure;
use crate::json;
use crate::run::{Options, PeerStatus};

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
