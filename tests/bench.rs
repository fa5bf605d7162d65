//! The bench (`cargo bench --bench bench`) runs and emits every figure of issue 7: well-formed
//! JSON, finite numbers (positive where they are times or sizes), every peer measured or
//! skipped with a reason. No test asserts a time.
//!
//! The bench's modules are compiled into this test crate from benches/bench/.

#[path = "../benches/bench/bpf_count.rs"]
mod bpf_count;
#[path = "../benches/bench/floor.rs"]
mod floor;
#[path = "../benches/bench/json.rs"]
mod json;
#[path = "../benches/bench/launch.rs"]
mod launch;
#[path = "../benches/bench/linux.rs"]
mod linux;
#[path = "../benches/bench/linux_report.rs"]
mod linux_report;
#[path = "../benches/bench/peers.rs"]
mod peers;
#[path = "../benches/bench/report/mod.rs"]
mod report;
#[path = "../benches/bench/run.rs"]
mod run;

#[path = "bench/rows.rs"]
mod rows;

use json::Value;

/// The bench tests take turns: their runs would otherwise share the two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const KINDS: [&str; 5] = run::KINDS;

/// Figures that must be present for microvm --seccomp true, measured.
fn required_measured() -> Vec<String> {
    let mut v: Vec<String> = [
        "startup.noop.exit",
        "startup.noop.first_serial_byte",
        "startup.noop.vmm_cpu",
        "startup.noop.rss",
        "startup.first_serial_byte",
        "startup.exit",
        "startup.vmm_cpu_to_first_kvm_run",
        "startup.timings.args",
        "startup.timings.kvm_setup",
        "startup.timings.memory",
        "startup.timings.kernel_load",
        "startup.timings.vcpus_started",
        "startup.timings.first_kvm_run",
        "startup.timings.guest_exit",
        "startup.timings.threads_joined",
        "startup.timings.teardown",
        "rss.peak.mem128.cpus1",
        "rss.peak.mem1024.cpus1",
        "rss.peak.mem8192.cpus1",
        "rss.peak.mem128.cpus4",
        "rss.peak.mem128.cpus16",
        "rss.peak.mem128.cpus32",
        "rss.per_vcpu",
        "rss.growth.mem128_to_mem8192",
        "seccomp.bpf_insns.vcpu.ioctl(vcpu_fd, KVM_RUN)",
        "seccomp.bpf_insns.rng.read(eventfd, 8)",
        "seccomp.bpf_insns.rng.write(eventfd, 8)",
        "seccomp.bpf_insns.rng.epoll_wait",
        "exit.irqfd-roundtrip",
        "exit.irqfd-roundtrip.vmm_user_cpu",
        "exit.irqfd-roundtrip.vmm_sys_cpu",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for k in KINDS {
        for suffix in ["", ".ratio_to_floor", ".vmm_user_cpu"] {
            v.push(format!("exit.{k}{suffix}"));
        }
        v.push(format!("seccomp.cost.{k}"));
    }
    for (k, _, _) in run::DEV_KINDS {
        v.push(format!("devices.{k}"));
    }
    v
}

/// Figures that must be present for microvm --isolate devices, measured: every figure
/// where its device processes matter, and what they cost against device threads.
fn required_isolate() -> Vec<String> {
    let mut v: Vec<String> = [
        "startup.first_serial_byte",
        "startup.exit",
        "startup.vmm_cpu_to_first_kvm_run",
        "rss.peak.mem128.cpus1",
        "exit.irqfd-roundtrip",
        "exit.irqfd-roundtrip.vmm_sys_cpu",
        "isolate.cost.startup.exit",
        "isolate.cost.exit.irqfd-roundtrip",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for k in run::ISOLATE_KINDS {
        v.push(format!("exit.{k}"));
        v.push(format!("isolate.cost.exit.{k}"));
    }
    for (k, _, _) in run::DEV_KINDS {
        v.push(format!("devices.{k}"));
        v.push(format!("isolate.cost.devices.{k}"));
    }
    v
}

/// (figure, peer) that must be listed, measured or skipped with a reason.
const REQUIRED_LISTED: [(&str, &str); 3] = [
    ("exit.irqfd-roundtrip", "microvm-seccomp-false"),
    ("exit.irqfd-roundtrip", "qemu-microvm"),
    ("exit.irqfd-roundtrip", "kvm-floor"),
];

/// Whether figure `f` has a number; a device loop's, or a cost ratio of processes against
/// threads, may instead be lost in the boot's noise, as in a short run under load (no test
/// asserts a time).
fn measured(name: &str, f: &Value) -> bool {
    let noise = f.get("skipped").and_then(Value::as_str) == Some(report::LOST_IN_NOISE);
    let short_loop = name.starts_with("devices.") || name.starts_with("isolate.cost.");
    f.get("median").is_some() || (short_loop && noise)
}

fn check(path: &std::path::Path, qemu_expected: Option<bool>) {
    let text = std::fs::read_to_string(path).expect("the bench wrote its JSON");
    let doc = json::parse(&text).unwrap_or_else(|e| panic!("malformed JSON ({e}):\n{text}"));
    let peers = doc.get("peers").and_then(Value::as_array).expect("peers");
    let names: Vec<&str> = peers
        .iter()
        .filter_map(|p| p.get("name")?.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "microvm-seccomp-true",
            "microvm-seccomp-false",
            "microvm-isolate-devices",
            "firecracker",
            "qemu-microvm",
            "kvm-floor"
        ]
    );
    for p in peers {
        match p.get("status").and_then(Value::as_str) {
            Some("measured") => {}
            Some("skipped") => assert!(
                p.get("reason")
                    .and_then(Value::as_str)
                    .is_some_and(|r| !r.is_empty()),
                "a skipped peer needs a reason: {p:?}"
            ),
            other => panic!("peer status {other:?}: {p:?}"),
        }
    }
    let status = |name: &str| {
        peers
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("status")?.as_str())
    };
    let musts = [
        "microvm-seccomp-true",
        "microvm-seccomp-false",
        "microvm-isolate-devices",
        "kvm-floor",
    ];
    for must in musts {
        assert_eq!(
            status(must),
            Some("measured"),
            "{must} must run here:\n{text}"
        );
    }
    if let Some(q) = qemu_expected {
        assert_eq!(status("qemu-microvm") == Some("measured"), q, "{text}");
    }
    // The Linux section is listed, run or skipped with a reason.
    let linux = doc.get("linux").expect("a linux member");
    match linux.get("status").and_then(Value::as_str) {
        Some("skipped") => assert!(linux.get("reason").and_then(Value::as_str).is_some()),
        Some("measured") => assert!(linux.get("peers").and_then(Value::as_array).is_some()),
        other => panic!("linux status {other:?}"),
    }

    let figs = doc
        .get("figures")
        .and_then(Value::as_array)
        .expect("figures");
    for f in figs {
        let name = f.get("name").and_then(Value::as_str).expect("figure name");
        assert!(f.get("scenario").and_then(Value::as_str).is_some(), "{f:?}");
        assert!(f.get("unit").and_then(Value::as_str).is_some(), "{f:?}");
        if let Some(why) = f.get("skipped") {
            assert!(why.as_str().is_some_and(|w| !w.is_empty()), "{f:?}");
            continue;
        }
        let num = |k: &str| {
            f.get(k)
                .and_then(Value::as_f64)
                .unwrap_or_else(|| panic!("{name}: no number {k}: {f:?}"))
        };
        let (median, min, max) = (num("median"), num("min"), num("max"));
        assert!(
            median.is_finite() && min <= median && median <= max,
            "{f:?}"
        );
        assert!(num("n") >= 1.0, "{f:?}");
        let is_size_or_time = name.starts_with("startup.")
            || name.starts_with("rss.peak")
            || name.starts_with("seccomp.bpf_insns");
        if is_size_or_time {
            assert!(min > 0.0, "{name} must be positive: {f:?}");
        }
    }
    let find = |name: &str, peer: &str| {
        figs.iter().find(|f| {
            f.get("name").and_then(Value::as_str) == Some(name)
                && f.get("peer").and_then(Value::as_str) == Some(peer)
        })
    };
    for name in required_measured() {
        let f = find(&name, "microvm-seccomp-true")
            .unwrap_or_else(|| panic!("figure {name} missing:\n{text}"));
        assert!(measured(&name, f), "{name} not measured: {f:?}");
    }
    for name in required_isolate() {
        let f = find(&name, "microvm-isolate-devices")
            .unwrap_or_else(|| panic!("figure {name} of the isolate peer missing:\n{text}"));
        assert!(measured(&name, f), "{name} not measured: {f:?}");
    }
    for k in KINDS {
        let f = find(&format!("exit.{k}"), "kvm-floor").expect("floor figure");
        assert!(f.get("median").is_some(), "floor exit.{k}: {f:?}");
        assert!(
            find(&format!("exit.{k}"), "qemu-microvm").is_some(),
            "qemu exit.{k}"
        );
    }
    for (name, peer) in REQUIRED_LISTED {
        assert!(find(name, peer).is_some(), "{name} of {peer} missing");
    }
    // Firecracker, when on PATH, boots the do-nothing guest beside microvm; the ratio is
    // listed either way (measured, or skipped with the reason).
    let ratio = find(
        "startup.noop.exit.ratio_to_firecracker",
        "microvm-seccomp-true",
    );
    let ratio = ratio.expect("the ratio to Firecracker is listed");
    if status("firecracker") == Some("measured") {
        let fc = find("startup.noop.exit", "firecracker").expect("firecracker's figure");
        assert!(fc.get("median").is_some(), "{fc:?}");
        assert!(ratio.get("median").is_some(), "{ratio:?}");
    }
    let irq = find("exit.irqfd-roundtrip", "microvm-seccomp-true").expect("irqfd figure");
    // The median, not the min: each figure is a difference of two whole runs, and on a
    // loaded machine one round's boot noise can exceed a --quick loop.
    assert!(
        irq.get("median")
            .and_then(Value::as_f64)
            .is_some_and(|v| v > 0.0),
        "the irqfd round trip must take time: {irq:?}"
    );
}

fn args(extra: &[&str], json: &std::path::Path) -> Vec<String> {
    let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    a.push("--json".into());
    a.push(json.display().to_string());
    a
}

/// A shortened bench (one round, no QEMU): runs in seconds with every microvm and floor figure.
#[test]
fn short_bench_without_qemu_emits_every_figure() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let json = std::env::temp_dir().join(format!("microvm-bench-test-{}.json", std::process::id()));
    let out = run::bench_main(&args(
        &["--quick", "--no-qemu", "--rounds", "1", "--exits", "10000"],
        &json,
    ))
    .expect("the bench runs");
    check(&out, Some(false));
    let _ = std::fs::remove_file(&json);
}

/// The documented `--quick` run with every peer (QEMU is installed by the bench when root).
#[test]
#[ignore = "the full --quick bench with QEMU microvm takes about a minute"]
fn quick_bench_emits_every_figure() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let json =
        std::env::temp_dir().join(format!("microvm-bench-quick-{}.json", std::process::id()));
    let out = run::bench_main(&args(&["--quick"], &json)).expect("the bench runs");
    check(&out, None);
    let _ = std::fs::remove_file(&json);
}

#[test]
fn floor_loop_code_jumps_where_it_should() {
    let c = floor::code(floor::Kind::PioRead);
    assert_eq!(c, [0x85, 0xC9, 0x74, 5, 0xEC, 0xFF, 0xC9, 0x75, 0xFB, 0xF4]);
    let c = floor::code(floor::Kind::MmioRead);
    assert_eq!((c[3], c[9]), (6, (-6i8) as u8));
}

#[test]
fn stats_and_json_round_trip() {
    let s = json::stats(&[3.0, 1.0, 2.0, 10.0]).expect("stats");
    assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 10.0, 4));
    let doc = format!(
        "{{\"a\": [{}, {}], \"b\": null}}",
        json::number(1.5),
        json::string("x\"y\n")
    );
    let v = json::parse(&doc).expect("parses");
    assert_eq!(v.get("a").and_then(Value::as_array).map(Vec::len), Some(2));
    assert!(json::parse("{\"a\": }").is_err());
}

/// A console as the stock kernel and the scenario init print it (shortened).
const CONSOLE: &str = "[    0.000000] Linux version 6.1.0-57-cloud-amd64\n\
[   10.900124] Run /init as init process\n\
MVTEST init=start\n\
MVTEST cpus=2 online=0-1\n\
MVTEST virtio=blk,net,rng\n\
MVTEST io-seq-read-1m=20480\n\
MVTEST io-tcp-tx=failed\n\
MVTEST ping-avg-ms=0.512\n\
MVTEST end=info,perf rc=0\n\
[   15.614540] reboot: Power down\n";

#[test]
fn linux_section_parses_boot_timer_lines_and_consoles() {
    use linux_report::*;
    let line = "@@LINUX round=1 peer=microvm BOOTTIME marker_ns=11500000000 exit_ns=16250000000 status=0 maxrss_kib=40000 utime_us=250000 stime_us=750000";
    let t = parse_boottime(line).expect("parses");
    assert_eq!(
        (t.marker_ns, t.exit_ns, t.status),
        (Some(11_500_000_000), 16_250_000_000, 0)
    );
    let never = parse_boottime(
        "BOOTTIME marker_ns=-1 exit_ns=5 status=9 maxrss_kib=1 utime_us=0 stime_us=0",
    );
    assert_eq!(never.map(|t| (t.marker_ns, t.status)), Some((None, 9)));
    assert!(parse_boottime("BOOTTIME exit_ns=5").is_none());
    assert_eq!(printk_time(CONSOLE, RUN_INIT), Some(10.900124));
    let b = boot_of(&t, CONSOLE).expect("a good boot");
    assert_eq!(
        (b.init_ms, b.exit_ms, b.guest_init_s, b.cpu_ms),
        (11500.0, 16250.0, 10.900124, 1000.0)
    );
    // The perf scenario's figures, a failed one left out.
    assert_eq!(
        io_of(CONSOLE),
        [("io-seq-read-1m", 20480.0), ("ping-avg-ms", 0.512)]
    );
    // What does not count: a failed exit, a missing device, the marker not first, a kill.
    assert!(boot_of(
        &BootTime {
            status: 1 << 8,
            ..t
        },
        CONSOLE
    )
    .unwrap_err()
    .contains("exit code 1"));
    assert!(boot_of(&BootTime { status: 9, ..t }, CONSOLE)
        .unwrap_err()
        .contains("signal 9"));
    let no_net = CONSOLE.replace("blk,net,rng", "blk,rng");
    assert!(boot_of(&t, &no_net).unwrap_err().contains("virtio net"));
    let late = CONSOLE
        .replace("MVTEST init=start\n", "")
        .replace("MVTEST end", "MVTEST init=start\nMVTEST end");
    assert!(boot_of(&t, &late).is_err());
}

#[test]
fn linux_section_script_json_and_figures_have_their_shape() {
    use linux::{LinuxOutcome, LinuxPeer};
    let jobs = [
        (0, LinuxPeer::Qemu),
        (0, LinuxPeer::Microvm),
        (1, LinuxPeer::Microvm),
        (1, LinuxPeer::Qemu),
    ];
    let sh = linux::script(&jobs, 1);
    let syntax = std::process::Command::new("sh")
        .args(["-n", "-c", &sh])
        .status()
        .expect("sh -n");
    assert!(syntax.success(), "the script does not parse:\n{sh}");
    let job_lines: Vec<&str> = sh.lines().filter(|l| l.starts_with("job ")).collect();
    assert_eq!(job_lines.len(), 4, "{sh}");
    assert!(
        job_lines[0].starts_with("job 0 qemu-microvm 1 '/usr/bin/qemu-system-x86_64 -M microvm"),
        "{sh}"
    );
    assert!(
        job_lines[2].starts_with("job 1 microvm 0 '/bin/microvm --kernel"),
        "{sh}"
    );
    for peer in [LinuxPeer::Microvm, LinuxPeer::Qemu] {
        let c = peer.command();
        for same in [
            "bzImage-cloud",
            "initramfs-cloud.cpio.gz",
            "blank.img",
            "tap0",
            "\"$CL\"",
        ] {
            assert!(c.contains(same), "{c} lacks {same}");
        }
    }

    // Collect from a script's stdout and kept consoles: one warm-up and one recorded round,
    // where QEMU fails both boots (its perf figures of the recorded one still count).
    let dir = std::env::temp_dir().join(format!("microvm-bench-linux-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).expect("logs dir");
    for name in [
        "r0-microvm",
        "r1-microvm",
        "r0-qemu-microvm",
        "r1-qemu-microvm",
    ] {
        std::fs::write(dir.join("logs").join(format!("{name}.out")), CONSOLE).expect("console");
    }
    let ok = "BOOTTIME marker_ns=11500000000 exit_ns=16250000000 status=0 maxrss_kib=40000 utime_us=250000 stime_us=750000";
    let stdout = format!(
        "@@LINUX host 6.1.0 cpus=2\n@@LINUX round=0 peer=microvm {ok}\n@@LINUX round=0 peer=qemu-microvm {}\n\
         @@LINUX round=1 peer=microvm {ok}\n@@LINUX round=1 peer=qemu-microvm {}\n\
         @@LINUX round=2 peer=qemu-microvm skipped\n",
        ok.replace("status=0", "status=256"),
        ok.replace("status=0", "status=9")
    );
    let mut out = LinuxOutcome {
        status: Ok("in the nested host".into()),
        rounds: 1,
        warmup: 1,
        peers: vec![
            (LinuxPeer::Microvm, Ok("microvm".into())),
            (LinuxPeer::Qemu, Ok("qemu".into())),
            (
                LinuxPeer::Firecracker,
                Err("firecracker is not on PATH".into()),
            ),
        ],
        runs: Vec::new(),
        logs: dir.clone(),
        load: "load average: 1.00".into(),
    };
    linux_report::collect(&mut out, &stdout, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.runs.len(), 3, "{:?}", out.runs);
    assert_eq!(
        out.peers[0].1,
        Ok("microvm".to_string()),
        "no boot of microvm failed"
    );
    assert!(
        out.peers[1]
            .1
            .as_ref()
            .is_err_and(|e| e.contains("every boot failed; first, warm-up: VMM exit code 1")),
        "{:?}",
        out.peers
    );
    let figs = linux_report::figures(&out);
    let names = [
        "linux.boot.exec_to_init",
        "linux.boot.exec_to_exit",
        "linux.boot.guest_run_init",
        "linux.boot.exec_to_guest_clock",
        "linux.blk.seq_read_1m",
        "linux.net.ping_avg",
    ];
    for name in names {
        for peer in ["microvm", "qemu-microvm", "firecracker"] {
            let f = figs.iter().find(|f| f.name == name && f.peer == peer);
            let f = f.unwrap_or_else(|| panic!("{name} of {peer} missing"));
            let io = name.starts_with("linux.blk") || name.starts_with("linux.net");
            let expected = peer == "microvm" || (io && peer == "qemu-microvm");
            assert_eq!(f.value.is_ok(), expected, "{f:?}");
        }
    }
    let init = figs
        .iter()
        .find(|f| f.name == names[0] && f.peer == "microvm")
        .expect("init");
    assert_eq!(init.value.as_ref().map(|s| s.median).ok(), Some(11500.0));
    let clock = figs
        .iter()
        .find(|f| f.name == names[3] && f.peer == "microvm");
    let clock = clock.and_then(|f| f.value.as_ref().ok()).map(|s| s.median);
    assert!(
        clock.is_some_and(|c| (c - 599.876).abs() < 1e-6),
        "{clock:?}"
    );
    let table = linux_report::table(&out, &figs);
    assert!(
        table.contains("firecracker    SKIPPED: firecracker is not on PATH"),
        "{table}"
    );
    for member in [linux_report::json_member(&out), {
        out.status = Err("not requested".into());
        linux_report::json_member(&out)
    }] {
        let doc = format!("{{\n{}  \"x\": 1\n}}", member);
        let v = json::parse(&doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
        assert!(
            v.get("linux").and_then(|l| l.get("status")).is_some(),
            "{doc}"
        );
    }
    assert!(linux_report::figures(&out).is_empty());
}
