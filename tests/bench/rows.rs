//! The report's rows from made-up rounds: how figures pair runs of one round, and what a
//! skipped peer's rows say.

use super::{launch, report, run};

/// A VMM run of `wall_ms` from exec to exit (the rest as a passing tiny guest leaves it).
fn vm_run(wall_ms: u64) -> Result<run::Sample, String> {
    Ok(run::Sample::Vm(Box::new(launch::RunResult {
        t_start_ns: 1_000_000_000,
        t_first_ns: Some(1_010_000_000),
        t_exit_ns: 1_000_000_000 + wall_ms * 1_000_000,
        exit_code: Some(0),
        maxrss_kib: 4000,
        utime_us: 100,
        stime_us: 1000,
        stdout: "tiny: PASS\n".into(),
        stderr: String::new(),
    })))
}

/// Options as `--quick` gives them, with made-up paths.
fn options() -> run::Options {
    let (microvm, vmlinux, noop) = ("/microvm".into(), "/vmlinux".into(), "/noop".into());
    run::Options::parse(&["--quick".into()], microvm, vmlinux, noop).expect("options")
}

/// The report's figures of `r`, every peer of `ran` available.
fn figures_of(o: &run::Options, r: &run::Results, ran: &[run::Peer]) -> Vec<report::Figure> {
    let status: run::PeerStatus = ran.iter().map(|p| (*p, Ok(p.name().to_string()))).collect();
    report::figures(o, r, &status)
}

/// Figure `name` of `peer` (the test fails when it is missing).
fn get<'a>(figs: &'a [report::Figure], name: &str, peer: run::Peer) -> &'a report::Figure {
    let f = figs
        .iter()
        .find(|f| f.name == name && f.peer == peer.name());
    f.unwrap_or_else(|| panic!("{name} of {} missing", peer.name()))
}

/// The do-nothing guest's rows, from made-up rounds: microvm's ratio to Firecracker pairs
/// the runs of one round (a failed run drops its round); every VMM boots the same file with
/// its defaults; a skipped Firecracker leaves the ratio listed with the reason.
#[test]
fn noop_rows_pair_microvm_with_firecracker_per_round() {
    use run::{Case, Peer};
    let o = options();
    let mut r = run::Results::new();
    let failed = Err("the guest did not pass".to_string());
    r.insert(
        (Peer::MicrovmSeccomp, Case::Noop),
        vec![vm_run(10), vm_run(12), failed],
    );
    r.insert(
        (Peer::Firecracker, Case::Noop),
        vec![vm_run(40), vm_run(24), vm_run(30)],
    );
    let figs = figures_of(&o, &r, &[Peer::MicrovmSeccomp, Peer::Firecracker]);
    let get = |name: &str, peer: Peer| self::get(&figs, name, peer);
    let ratio = get(
        "startup.noop.exit.ratio_to_firecracker",
        Peer::MicrovmSeccomp,
    );
    let s = ratio.value.as_ref().expect("measured");
    assert_eq!((s.n, s.min, s.max), (2, 0.25, 0.5), "{ratio:?}");
    let fc = get("startup.noop.exit", Peer::Firecracker);
    assert_eq!(fc.value.as_ref().map(|s| s.median), Ok(30.0), "{fc:?}");
    let rows = figs.iter().filter(|f| f.peer == "firecracker");
    for f in rows.filter(|f| !f.name.starts_with("startup.noop.")) {
        assert!(
            f.value.is_err(),
            "Firecracker boots the do-nothing guest only: {f:?}"
        );
    }
    for peer in [Peer::MicrovmSeccomp, Peer::Firecracker, Peer::Qemu] {
        let (prog, args) = run::command(&o, "/qemu".as_ref(), peer, Case::Noop);
        let args = args.join(" ");
        match peer {
            Peer::MicrovmSeccomp => assert!(args.starts_with("--kernel /noop "), "{args}"),
            Peer::Firecracker => assert!(args.starts_with("--no-api --config-file"), "{args}"),
            _ => assert!(
                prog.ends_with("qemu") && args.contains("-kernel /noop") && !args.contains("-bios"),
                "QEMU with its default firmware: {args}"
            ),
        }
    }
    let status: run::PeerStatus = vec![
        (Peer::MicrovmSeccomp, Ok("microvm".to_string())),
        (Peer::Firecracker, Err("firecracker is not on PATH".into())),
    ];
    let figs = report::figures(&o, &r, &status);
    let ratio = figs
        .iter()
        .find(|f| f.name == "startup.noop.exit.ratio_to_firecracker")
        .expect("listed");
    let why = ratio.value.as_ref().expect_err("skipped");
    assert!(why.contains("not on PATH"), "{why}");
}

/// The isolate peer's rows, from made-up rounds: its costs pair each round's processes with
/// the same round's threads (a failed run drops its round), and it has no rows for the exit
/// loops that never reach a device.
#[test]
fn isolate_peer_rows_pair_processes_with_threads_per_round() {
    use run::{Case, Peer};
    let o = options();
    let base = Case::Exit("none", 0);
    let irq = Case::Exit(run::IRQ_KIND, run::irq_rounds(o.exits));
    let mut r = run::Results::new();
    // Three rounds: base and irqfd loop (ms); the threads' irqfd run of round 2 failed.
    r.insert(
        (Peer::MicrovmSeccomp, base),
        vec![vm_run(100), vm_run(100), vm_run(110)],
    );
    r.insert(
        (Peer::MicrovmIsolate, base),
        vec![vm_run(120), vm_run(130), vm_run(110)],
    );
    let failed = Err("the guest did not pass".to_string());
    r.insert(
        (Peer::MicrovmSeccomp, irq),
        vec![vm_run(300), failed, vm_run(210)],
    );
    r.insert(
        (Peer::MicrovmIsolate, irq),
        vec![vm_run(520), vm_run(530), vm_run(510)],
    );
    let figs = figures_of(&o, &r, &[Peer::MicrovmSeccomp, Peer::MicrovmIsolate]);
    let get = |name: &str, peer: Peer| self::get(&figs, name, peer);
    let cost = get("isolate.cost.exit.irqfd-roundtrip", Peer::MicrovmIsolate);
    let s = cost.value.as_ref().expect("measured");
    // Round 1: 400 / 200 ms; round 2 dropped; round 3: 400 / 100 ms.
    assert_eq!((s.n, s.min, s.max), (2, 2.0, 4.0), "{cost:?}");
    let boot = get("isolate.cost.startup.exit", Peer::MicrovmIsolate);
    let s = boot.value.as_ref().expect("measured");
    assert_eq!((s.n, s.min, s.max), (3, 1.0, 1.3), "{boot:?}");
    let per = get("exit.irqfd-roundtrip", Peer::MicrovmIsolate);
    assert_eq!(per.value.as_ref().map(|s| s.n), Ok(3), "{per:?}");
    assert!(get("devices.blk-read-4k", Peer::MicrovmIsolate)
        .value
        .is_err());
    for kind in run::KINDS {
        let listed = figs
            .iter()
            .any(|f| f.name == format!("exit.{kind}") && f.peer == Peer::MicrovmIsolate.name());
        assert_eq!(listed, run::ISOLATE_KINDS.contains(&kind), "exit.{kind}");
    }
    // A device loop whose runs ended before their round's boot alone: lost in the noise.
    let rng = Case::Dev("rng-read", run::DEV_KINDS[0].1);
    r.insert(
        (Peer::MicrovmIsolate, rng),
        vec![vm_run(110), vm_run(120), vm_run(90)],
    );
    let figs = figures_of(&o, &r, &[Peer::MicrovmSeccomp, Peer::MicrovmIsolate]);
    let lost = self::get(&figs, "devices.rng-read", Peer::MicrovmIsolate);
    let want = Err(report::LOST_IN_NOISE.to_string());
    assert_eq!(lost.value, want);
    let (prog, args) = run::command(&o, "/qemu".as_ref(), Peer::MicrovmIsolate, base);
    assert_eq!(prog, std::path::Path::new("/microvm"));
    let args = args.join(" ");
    assert!(
        args.contains("--seccomp true") && args.contains("--isolate devices"),
        "{args}"
    );
    assert!(
        args.contains("--kernel /vmlinux --boot pvh"),
        "the same guest: {args}"
    );

    // A skipped isolate peer: every row says why, none has a number.
    let status: run::PeerStatus = vec![
        (Peer::MicrovmSeccomp, Ok("microvm".to_string())),
        (Peer::MicrovmIsolate, Err("no user namespaces".into())),
    ];
    let figs = report::figures(&o, &r, &status);
    let rows: Vec<_> = figs
        .iter()
        .filter(|f| f.peer == Peer::MicrovmIsolate.name())
        .collect();
    assert!(rows.len() >= 10, "{rows:?}");
    for f in rows {
        let why = f.value.as_ref().expect_err("skipped");
        assert!(why.contains("no user namespaces"), "{f:?}");
    }
}
