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
#[path = "../benches/bench/report.rs"]
mod report;
#[path = "../benches/bench/run.rs"]
mod run;

use json::Value;

/// The bench tests take turns: their runs would otherwise share the two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const KINDS: [&str; 5] = run::KINDS;

/// Figures that must be present for microvm --seccomp true, measured.
fn required_measured() -> Vec<String> {
    let mut v: Vec<String> = [
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

/// (figure, peer) that must be listed, measured or skipped with a reason.
const REQUIRED_LISTED: [(&str, &str); 3] = [
    ("exit.irqfd-roundtrip", "microvm-seccomp-false"),
    ("exit.irqfd-roundtrip", "qemu-microvm"),
    ("exit.irqfd-roundtrip", "kvm-floor"),
];

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
    for must in ["microvm-seccomp-true", "microvm-seccomp-false", "kvm-floor"] {
        assert_eq!(
            status(must),
            Some("measured"),
            "{must} must run here:\n{text}"
        );
    }
    if let Some(q) = qemu_expected {
        assert_eq!(status("qemu-microvm") == Some("measured"), q, "{text}");
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
        assert!(f.get("median").is_some(), "{name} not measured: {f:?}");
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
    let irq = find("exit.irqfd-roundtrip", "microvm-seccomp-true").expect("irqfd figure");
    assert!(
        irq.get("min")
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
    assert_eq!(
        v.get("a").and_then(Value::as_array).map(<[Value]>::len),
        Some(2)
    );
    assert!(json::parse("{\"a\": }").is_err());
}
