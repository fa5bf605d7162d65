//! The JSON the `print --format json` command writes is seccompiler's format: seccompiler's own
//! `compile_from_json` accepts it, and reading it back gives filters that decide exactly like
//! the built-in ones.

use seccomp::bpf::{simulate, SeccompData};
use seccomp::{ArgRule, CustomFilters, FilterContext, Mode, ThreadKind};

fn builtin_json() -> String {
    let filters: Vec<_> = ThreadKind::all()
        .iter()
        .map(|k| (*k, seccomp::builtin_rules(*k, &FilterContext::default())))
        .collect();
    seccomp::json::to_json(&filters)
}

#[test]
fn seccompiler_accepts_the_printed_json() {
    let json = builtin_json();
    let map = seccompiler::compile_from_json(json.as_bytes(), seccompiler::TargetArch::x86_64)
        .expect("seccompiler compiles our JSON");
    for kind in ThreadKind::all() {
        assert!(map.contains_key(kind.name()), "{kind}");
    }
}

/// Probes: every syscall number with zero arguments, plus each argument value a rule names.
fn probes(kind: ThreadKind) -> Vec<SeccompData> {
    let mut out: Vec<SeccompData> = (0..335).map(|nr| SeccompData::new(nr, [0; 6])).collect();
    for rule in seccomp::builtin_rules(kind, &FilterContext::default()) {
        let mut args = [0u64; 6];
        match &rule.args {
            ArgRule::Any => {}
            ArgRule::Ioctls { fd, requests } => {
                for r in requests {
                    args[0] = fd.map_or(0, |f| f as u64);
                    args[1] = r.request;
                    out.push(SeccompData::new(rule.nr, args));
                    args[1] = r.request ^ 1;
                    out.push(SeccompData::new(rule.nr, args));
                }
            }
            ArgRule::Match(alts) => {
                for conds in alts {
                    for c in conds {
                        args[c.index as usize] = c.value;
                    }
                    out.push(SeccompData::new(rule.nr, args));
                    for c in conds {
                        args[c.index as usize] = c.value ^ 0xffff;
                        out.push(SeccompData::new(rule.nr, args));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn json_round_trip_decides_like_the_builtin_filters() {
    let custom = CustomFilters::parse(&builtin_json()).expect("our own JSON parses");
    assert!(custom.warnings.is_empty(), "{:?}", custom.warnings);
    for (kind, rules) in &custom.kinds {
        let theirs = seccomp::compile_rules(*kind, Mode::Kill, rules).unwrap();
        let ours = seccomp::compile(*kind, Mode::Kill, &FilterContext::default())
            .unwrap()
            .unwrap();
        for p in probes(*kind) {
            assert_eq!(
                simulate(&ours, &p).action(),
                simulate(&theirs, &p).action(),
                "{kind}: {p:?}"
            );
        }
    }
}
