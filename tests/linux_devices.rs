//! Debian's stock cloud kernel (6.1, its own virtio modules) under microvm: every vCPU and
//! every virtio device is found, /dev/hwrng gives bytes, a guest `poweroff` ends microvm
//! with exit 0 (and `reboot -f` through the i8042 too), the bzImage and its extracted ELF
//! both boot, and `--seccomp log` sees no violation in a boot that uses every device.
//!
//! The kernel finds CPUs (MADT) and virtio-mmio devices (DSDT, `LNRO0005`) through ACPI
//! only: it has neither CONFIG_X86_MPPARSE nor CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES.
//! Sessions run natively with VT-x/AMD-V, in the nested host otherwise (common/linux.rs);
//! each says which on stderr.

mod common;

use std::time::Duration;

use common::linux::{Boot, Session};

/// Devices for a boot: a 1 MiB blank disk, tap0 and (default) virtio-rng.
const DEVICES: &str = "--disk path=\"$RUN/blank.img\" --net tap=tap0";

/// Checks what `info` reported for an `n`-vCPU boot with [`DEVICES`].
fn assert_sees_everything(b: &Boot, what: &str, n: u32) {
    let last = n - 1;
    assert_eq!(
        b.mv("cpus"),
        Some(n.to_string().as_str()),
        "{what}: vCPUs:\n{}",
        b.describe()
    );
    assert_eq!(
        b.mv("online"),
        Some(format!("0-{last}").as_str()),
        "{what}: online vCPUs:\n{}",
        b.describe()
    );
    let found: Vec<&str> = b.mv("virtio").unwrap_or_default().split(',').collect();
    for dev in ["blk", "net", "rng"] {
        assert!(
            found.contains(&dev),
            "{what}: virtio {dev} not found:\n{}",
            b.describe()
        );
    }
    assert_eq!(b.mv("blk"), Some("vda"), "{what}:\n{}", b.describe());
    assert_eq!(
        b.mv("sectors"),
        Some("2048"),
        "{what}: disk size:\n{}",
        b.describe()
    );
    assert_eq!(b.mv("net"), Some("eth0"), "{what}:\n{}", b.describe());
    assert!(
        b.mv("rng").is_some_and(|r| r.starts_with("virtio_rng")),
        "{what}: hwrng source:\n{}",
        b.describe()
    );
    assert_eq!(
        b.mv("hwrng-bytes"),
        Some("32"),
        "{what}: /dev/hwrng:\n{}",
        b.describe()
    );
    let hex = b.mv("hex").unwrap_or_default();
    assert!(
        hex.len() == 64 && hex.chars().any(|c| c != '0'),
        "{what}: 32 random bytes expected, got '{hex}':\n{}",
        b.describe()
    );
}

/// Makes blank.img, the disk of DEVICES; each step that boots with it stages it.
fn blank_disk(s: &mut Session) {
    std::fs::write(s.work().join("blank.img"), vec![0u8; 1 << 20]).expect("write blank.img");
}

#[test]
#[ignore = "boots Debian's cloud kernel (in the nested host without VT-x, ~1.5 min); run by .ci/run via --include-ignored"]
fn stock_kernel_sees_every_vcpu_and_device_and_powers_off() {
    let mut s = Session::new("devices");
    blank_disk(&mut s);
    s.sh("stage blank.img");
    s.boot(
        "bz2",
        "bzImage-cloud",
        "info",
        "",
        &format!("--cpus 2 {DEVICES}"),
    );
    // Its own step: a nested host that dies now costs this boot only.
    s.step().sh("stage blank.img");
    s.boot(
        "elf4",
        "vmlinux-cloud",
        "info",
        "",
        &format!("--cpus 4 {DEVICES}"),
    );
    let o = s.run(Duration::from_secs(400));
    for (name, n, what) in [
        ("bz2", 2, "bzImage, --cpus 2"),
        ("elf4", 4, "ELF vmlinux, --cpus 4"),
    ] {
        let b = o.boot(name);
        assert_sees_everything(b, what, n);
        assert!(
            b.stdout.contains("reboot: Power down"),
            "{what}: the guest's poweroff -f must be an ACPI power-off:\n{}",
            b.describe()
        );
        b.assert_clean(what);
    }
}

#[test]
#[ignore = "boots Debian's cloud kernel (in the nested host without VT-x, ~1.5 min); run by .ci/run via --include-ignored"]
fn seccomp_log_sees_no_violation_and_reboot_ends_microvm() {
    let mut s = Session::new("seccomp-log");
    blank_disk(&mut s);
    s.sh("stage blank.img");
    // Every device busy: parallel direct I/O on the disk, ping and TCP both ways, hwrng.
    s.sh("dd if=/dev/urandom of=\"$RUN/hostdata\" bs=1048576 count=2 2>/dev/null")
        .sh("echo \"HOST hostdata sha=$(sha \"$RUN/hostdata\")\"");
    std::fs::write(s.work().join("dio.img"), vec![0u8; 16 << 20]).expect("write dio.img");
    s.sh("stage dio.img")
        .sh("listen log 5001")
        .sh("send_to_guest \"$RUN/hostdata\" 5002");
    s.boot(
        "log",
        "bzImage-cloud",
        "dio,net",
        "mvarg=2",
        "--cpus 2 --seccomp log --disk path=\"$RUN/dio.img\" --net tap=tap0",
    );
    // reboot -f with reboot=k: the i8042 reset, independent of ACPI.
    s.step();
    s.boot(
        "reboot",
        "vmlinux-cloud",
        "info",
        "mvend=reboot",
        "--cpus 2",
    );
    let o = s.run(Duration::from_secs(400));

    let b = o.boot("log");
    let violations: Vec<&str> = b
        .stderr
        .lines()
        .filter(|l| l.contains("microvm: seccomp") || l.contains("forbidden"))
        .collect();
    assert!(
        violations.is_empty(),
        "--seccomp log reported violations:\n{}",
        b.describe()
    );
    assert_eq!(b.mv("dio-failed-dd"), Some("0"), "{}", b.describe());
    assert_eq!(b.mv("ping-loss"), Some("0%"), "{}", b.describe());
    assert_eq!(
        b.mv("rx-sha").map(str::to_string),
        o.host_value("hostdata", "sha"),
        "{}",
        b.describe()
    );
    assert_eq!(
        b.mv("tx-sha").map(str::to_string),
        o.host_value("log", "sha"),
        "{}",
        b.describe()
    );
    b.assert_clean("--seccomp log boot");

    let r = o.boot("reboot");
    assert_eq!(r.mv("end"), Some("info"), "{}", r.describe());
    assert_eq!(
        r.rc,
        0,
        "reboot -f (i8042 reset) must end microvm with exit 0:\n{}",
        r.describe()
    );
}
