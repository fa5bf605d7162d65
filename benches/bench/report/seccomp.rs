//! Seccomp figures: `--seccomp true` against `false` on every exit loop, and the BPF
//! instructions each thread kind's filter runs before it allows its hot calls.

use super::{fig, skipped, Ctx, Figure};
use crate::bpf_count;
use crate::json::Stats;
use crate::run::{Case, Peer, KINDS};

/// The cost ratios, then the instruction counts.
pub fn figures(c: &Ctx, out: &mut Vec<Figure>) {
    cost(c, out);
    bpf_insns(out);
}

/// Per round: per-exit time with `--seccomp true` / with `false`.
fn cost(c: &Ctx, out: &mut Vec<Figure>) {
    let base = Case::Exit("none", 0);
    let n = f64::from(c.o.exits);
    for kind in KINDS {
        let case = Case::Exit(kind, c.o.exits);
        let t = c.delta_ns(Peer::MicrovmSeccomp, case, base, n);
        let f = c.delta_ns(Peer::MicrovmNoSeccomp, case, base, n);
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
}

/// One figure per (thread kind, hot call): the BPF simulator's count, n = 1.
fn bpf_insns(out: &mut Vec<Figure>) {
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
}
