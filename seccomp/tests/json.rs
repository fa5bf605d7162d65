//! The JSON the `print --format json` command writes is seccompiler's format: seccompiler's own
//! `compile_from_json` accepts it, and reading it back gives filters that decide exactly like
//! the built-in ones, with the same fd pins (`"comment": "fd:ROLE"`).

use seccomp::bpf::{simulate, SeccompData};
use seccomp::{ArgRule, CustomFilters, FilterContext, Mode, ThreadKind};

fn builtin_json() -> String {
    let filters: Vec<_> = ThreadKind::all()
        .iter()
        .map(|k| (*k, seccomp::builtin_symbolic_rules(*k)))
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
    // seccompiler knows no roles: it compiles a pinned fd as "no fd" (4294967295), so its
    // filter refuses a disk write rather than allowing one on a wrong fd.
    let blk = &map["blk"];
    let ctx = FilterContext::example(ThreadKind::Blk);
    let disk = u64::try_from(ctx.get("disk")[0]).unwrap();
    let pwrite = SeccompData::new(libc::SYS_pwrite64, [disk, 0, 512, 0, 0, 0]);
    assert!(!simulate(blk, &pwrite).allows());
    let log = SeccompData::new(libc::SYS_write, [2, 0, 8, 0, 0, 0]);
    assert!(
        simulate(blk, &log).allows(),
        "stderr is fd 2 in the file too"
    );
}

#[test]
fn printed_json_keeps_the_pins_symbolically() {
    let json = builtin_json();
    assert!(json.contains(r#""comment": "fd:disk""#), "{json}");
    assert!(json.contains(r#""comment": "fd:vcpu""#), "{json}");
    let custom = CustomFilters::parse(&json).unwrap();
    for (kind, rules) in &custom.kinds {
        let sorted = |mut v: Vec<&'static str>| {
            v.sort_unstable();
            v
        };
        assert_eq!(
            sorted(seccomp::fds::roles_used(rules)),
            sorted(seccomp::fds::roles_used(&seccomp::builtin_symbolic_rules(
                *kind
            ))),
            "{kind}"
        );
    }
    let e = CustomFilters::parse(
        r#"{"blk": {"filter": [{"syscall": "pwrite64", "args": [{"index": 0, "type": "dword", "op": "eq", "val": 5, "comment": "fd:disk7"}]}]}}"#,
    )
    .unwrap_err();
    assert!(e.contains(r#"unknown fd role "disk7""#), "{e}");
}

/// Probes: every syscall number with zero arguments, plus each argument value a rule names.
fn probes(kind: ThreadKind) -> Vec<SeccompData> {
    let mut out: Vec<SeccompData> = (0..335).map(|nr| SeccompData::new(nr, [0; 6])).collect();
    let ctx = FilterContext::example(kind);
    // Every fd the example context gives, and a few foreign ones.
    for fd in (0..64).chain([u32::MAX as u64]) {
        for nr in [0, 1, 9, 16, 17, 18, 74, 75, 232, 233] {
            out.push(SeccompData::new(nr, [fd, 0, 0, 0, 0, 0]));
        }
    }
    let _ = &ctx;
    for rule in seccomp::builtin_rules(kind, &ctx) {
        let mut args = [0u64; 6];
        match &rule.args {
            ArgRule::Any => {}
            ArgRule::Ioctls { fd, requests } => {
                for r in requests {
                    assert!(fd.is_none(), "resolved");
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
        let ctx = FilterContext::example(*kind);
        let resolved = seccomp::fds::resolve(rules, &ctx);
        let theirs = seccomp::compile_rules(*kind, Mode::Kill, &resolved).unwrap();
        let ours = seccomp::compile(*kind, Mode::Kill, &ctx).unwrap().unwrap();
        for p in probes(*kind) {
            assert_eq!(
                simulate(&ours, &p).action(),
                simulate(&theirs, &p).action(),
                "{kind}: {p:?}"
            );
        }
    }
}
