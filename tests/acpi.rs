//! Both ways the tiny guest finds its hardware: the ACPI tables (`--acpi on`, the default:
//! MADT for CPUs, DSDT for virtio-mmio devices, RSDP in boot_params / hvm_start_info) and,
//! with `--acpi off`, the MP table and the `virtio_mmio.device=` command-line entries. The
//! guest checks the tables themselves (signatures, checksums, MADT against MP table, DSDT
//! resources); these tests check which source it used and that every scenario works from
//! either.

mod common;

use common::*;

/// `--acpi on` (the default, given explicitly here) or `--acpi off`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    Acpi,
    Legacy,
}

impl Source {
    fn flag(self) -> &'static str {
        match self {
            Source::Acpi => "on",
            Source::Legacy => "off",
        }
    }

    fn cpus_line(self, n: usize) -> String {
        match self {
            Source::Acpi => format!("tiny: cpus from ACPI MADT: {n}\n"),
            Source::Legacy => format!("tiny: cpus from MP table: {n}\n"),
        }
    }

    fn devices_line(self, n: usize) -> String {
        match self {
            Source::Acpi => format!("tiny: devices from ACPI DSDT: {n}\n"),
            Source::Legacy => format!("tiny: devices from command line: {n}\n"),
        }
    }
}

/// Output with `\r\n` turned into `\n`, for whole-line matches.
fn lines(r: &Run) -> String {
    r.stdout.replace('\r', "")
}

fn assert_has(r: &Run, want: &str) {
    assert!(
        lines(r).contains(want),
        "expected {want:?}:\n{}",
        r.describe()
    );
}

fn assert_lacks(r: &Run, unwanted: &str) {
    assert!(
        !lines(r).contains(unwanted),
        "unexpected {unwanted:?}:\n{}",
        r.describe()
    );
}

/// The tiny bzImage with `tiny.test=<test>` (and `extra` guest parameters) on `cpus` vCPUs.
fn boot_with(source: Source, cpus: usize, test: &str, extra: &str, args: &[&str]) -> Run {
    let cmdline = format!("console=ttyS0 reboot=k tiny.cpus={cpus} tiny.test={test} {extra}");
    let cpus = cpus.to_string();
    let mut all = vec![
        "--kernel",
        TINY_BZIMAGE,
        "--acpi",
        source.flag(),
        "--cpus",
        &cpus,
        "--cmdline",
        cmdline.trim(),
    ];
    all.extend_from_slice(args);
    run(&all)
}

/// Every vCPU online, listed by the expected table, each with its own APIC id.
fn check_cpus(source: Source, cpus: usize) {
    let r = boot_with(source, cpus, "boot", "", &["--rng", "off"]);
    r.assert_pass();
    assert_has(&r, &source.cpus_line(cpus));
    assert_has(&r, &format!("tiny: smp: {cpus} of {cpus} cpus online\n"));
    // Logical numbers follow the APs' arrival order; every APIC id must come online.
    for cpu in 0..cpus {
        assert_has(
            &r,
            &format!(" online (apic id {cpu}, cpuid apic id {cpu})\n"),
        );
    }
    let ids: String = (0..cpus).map(|i| format!(" {i}")).collect();
    assert_has(&r, &format!("tiny: mptable: {cpus} cpus, apic ids{ids}\n"));
    if source == Source::Acpi {
        assert_has(
            &r,
            &format!(
                "tiny: acpi: MADT: local APIC 0xfee00000, flags 0x0, {cpus} cpus, apic ids{ids};"
            ),
        );
        assert_has(&r, "tiny: acpi: MADT agrees with the MP table");
    } else {
        assert_has(&r, "tiny: acpi: no RSDP");
    }
}

#[test]
fn cpus_from_the_madt_on_1_2_and_4_vcpus() {
    for cpus in [1, 2, 4] {
        check_cpus(Source::Acpi, cpus);
    }
}

#[test]
fn cpus_from_the_mp_table_on_1_2_and_4_vcpus_without_acpi() {
    for cpus in [1, 2, 4] {
        check_cpus(Source::Legacy, cpus);
    }
}

#[test]
fn the_rsdp_is_in_boot_params_and_the_bios_area_only_with_acpi() {
    let r = boot_with(Source::Acpi, 1, "boot", "", &["--rng", "off"]);
    r.assert_pass();
    assert_has(
        &r,
        "tiny: acpi: RSDP at 0xe0000 (from boot_params.acpi_rsdp_addr, the scan finds it too)\n",
    );
    assert_has(
        &r,
        "tiny: acpi: RSDP revision 2, OEM \"MICROV\", length 36,",
    );
    for table in ["XSDT", "FACP", "APIC", "DSDT"] {
        assert_has(&r, &format!("tiny: acpi: {table} at 0xe"));
    }
    let r = boot_with(Source::Legacy, 1, "boot", "", &["--rng", "off"]);
    r.assert_pass();
    assert_has(
        &r,
        "tiny: acpi: no RSDP (boot_params.acpi_rsdp_addr is 0, none in the EBDA or 0xe0000-0xfffff)\n",
    );
    assert_lacks(&r, "tiny: acpi: RSDP at");
}

#[test]
fn pvh_guests_get_the_rsdp_in_hvm_start_info_only_with_acpi() {
    for (source, cpus) in [(Source::Acpi, 2), (Source::Legacy, 2)] {
        let cmdline = format!("console=ttyS0 reboot=k tiny.cpus={cpus}");
        let n = cpus.to_string();
        let r = run(&[
            "--kernel",
            TINY_VMLINUX,
            "--boot",
            "pvh",
            "--acpi",
            source.flag(),
            "--cpus",
            &n,
            "--cmdline",
            &cmdline,
        ]);
        r.assert_pass();
        assert_has(&r, "tiny: boot: PVH entry");
        assert_has(&r, &source.cpus_line(cpus));
        assert_has(&r, &source.devices_line(1)); // virtio-rng
        match source {
            Source::Acpi => assert_has(
                &r,
                "tiny: acpi: RSDP at 0xe0000 (from hvm_start_info.rsdp_paddr, the scan finds it too)\n",
            ),
            Source::Legacy => assert_has(
                &r,
                "tiny: acpi: no RSDP (hvm_start_info.rsdp_paddr is 0, none in the EBDA",
            ),
        }
    }
}

const SECTOR0: &[u8] = b"ACPI-TEST-DISK-SECTOR0";

/// A 64 KiB raw image whose sector 0 starts with `head`.
fn image(dir: &std::path::Path, name: &str, head: &[u8]) -> String {
    let mut bytes = vec![0u8; 64 * 1024];
    bytes[..head.len()].copy_from_slice(head);
    write_file(dir, name, &bytes)
}

/// The virtio scenario on a disk and the rng, with the devices from `source`.
fn check_virtio(source: Source) {
    let dir = scratch(&format!("acpi-virtio-{source:?}"));
    let _guard = DirGuard(dir.clone());
    let disk = format!("path={}", image(&dir, "d.img", SECTOR0));
    let r = boot_with(source, 2, "virtio", "", &["--disk", &disk, "--rng", "on"]);
    r.assert_pass();
    assert_has(&r, &source.devices_line(2));
    assert_has(
        &r,
        "tiny: virtio: device 0 at 0xd0000000 irq 5: id 2 (blk)\n",
    );
    assert_has(
        &r,
        "tiny: virtio: device 1 at 0xd0001000 irq 6: id 4 (rng)\n",
    );
    assert_has(&r, "tiny: blk0: sector 0 starts \"ACPI-TEST-DISK-S\"\n");
    assert_has(&r, "tiny: blk0: write+flush+read-back ok\n");
    assert_has(&r, "tiny: rng0: 32 bytes: ");
    // Only one source: with ACPI the command line carries no device entries.
    let cmdline = lines(&r)
        .lines()
        .find(|l| l.starts_with("tiny: cmdline: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no cmdline line:\n{}", r.describe()));
    let entries = cmdline.matches("virtio_mmio.device=").count();
    match source {
        Source::Acpi => {
            assert_eq!(entries, 0, "{cmdline}");
            assert_has(&r, "tiny: acpi: DSDT V000: LNRO0005 uid 0, mem 0xd0000000+0x1000 (rw), irq 5 (edge, active high)\n");
            assert_has(&r, "tiny: acpi: DSDT V001: LNRO0005 uid 1, mem 0xd0001000+0x1000 (rw), irq 6 (edge, active high)\n");
            assert_has(&r, "tiny: acpi: DSDT COM1: PNP0501, io 0x3f8+8, irq 4");
            assert_has(
                &r,
                "tiny: acpi: DSDT PS2K: PNP0303, io 0x60+1 and 0x64+1, irq 1",
            );
            assert_has(
                &r,
                "tiny: acpi: DSDT: 2 virtio-mmio devices, COM1 yes, i8042 yes, \\_S5_ yes\n",
            );
        }
        Source::Legacy => {
            assert_eq!(entries, 2, "{cmdline}");
            assert_lacks(&r, "tiny: acpi: DSDT");
        }
    }
    let after = std::fs::read(dir.join("d.img")).unwrap();
    assert_eq!(
        &after[512..528],
        b"TINY-WROTE-BLK0-",
        "sector 1 reached the file"
    );
}

#[test]
fn virtio_blk_and_rng_found_in_the_dsdt() {
    check_virtio(Source::Acpi);
}

#[test]
fn virtio_blk_and_rng_found_on_the_command_line_without_acpi() {
    check_virtio(Source::Legacy);
}

/// hostile (H1..H8) and the bench's irqfd and blk loops, which take the first device of a
/// type and, for irqfd-roundtrip, route its interrupt through the IOAPIC.
fn check_other_scenarios(source: Source) {
    let dir = scratch(&format!("acpi-scenarios-{source:?}"));
    let _guard = DirGuard(dir.clone());
    let disk = format!("path={}", image(&dir, "h.img", SECTOR0));
    let r = boot_with(source, 1, "hostile", "", &["--disk", &disk, "--rng", "on"]);
    r.assert_pass();
    assert_has(&r, &source.devices_line(2));
    for k in 1..=8 {
        assert_has(&r, &format!("tiny: hostile: H{k} "));
    }
    for (bench, done) in [
        (
            "irqfd-roundtrip:20",
            "tiny: bench: irqfd-roundtrip x 20 done\n",
        ),
        (
            "blk-read-4k:16384",
            "tiny: bench: blk-read-4k x 16384 done\n",
        ),
        (
            "ioeventfd-notify:100",
            "tiny: bench: ioeventfd-notify x 100 done\n",
        ),
    ] {
        let extra = format!("tiny.bench={bench}");
        let r = boot_with(
            source,
            1,
            "bench",
            &extra,
            &["--disk", &disk, "--rng", "on"],
        );
        r.assert_pass();
        assert_has(&r, &source.devices_line(2));
        assert_has(&r, done);
    }
}

#[test]
fn hostile_and_bench_scenarios_with_devices_from_the_dsdt() {
    check_other_scenarios(Source::Acpi);
}

#[test]
fn hostile_and_bench_scenarios_with_devices_from_the_command_line() {
    check_other_scenarios(Source::Legacy);
}

/// The largest machine: 32 vCPUs and all 19 virtio-mmio slots (18 disks and the rng), so
/// the MADT, the DSDT and their AML package lengths are at their biggest.
#[test]
fn thirty_two_vcpus_and_nineteen_devices_from_acpi() {
    let dir = scratch("acpi-max");
    let _guard = DirGuard(dir.clone());
    let disks: Vec<String> = (0..18)
        .map(|i| format!("path={}", image(&dir, &format!("d{i}.img"), SECTOR0)))
        .collect();
    let mut args: Vec<&str> = vec!["--rng", "on", "--memory", "256"];
    for d in &disks {
        args.extend_from_slice(&["--disk", d]);
    }
    let r = boot_with(Source::Acpi, 32, "boot", "", &args);
    r.assert_pass();
    assert_has(&r, &Source::Acpi.cpus_line(32));
    assert_has(&r, "tiny: smp: 32 of 32 cpus online\n");
    assert_has(&r, &Source::Acpi.devices_line(19));
    assert_has(&r, "tiny: acpi: DSDT V018: LNRO0005 uid 18, mem 0xd0012000+0x1000 (rw), irq 23 (edge, active high)\n");
    assert_has(&r, "tiny: acpi: MADT agrees with the MP table");
}

#[test]
fn garbage_on_the_legacy_and_power_ports_is_answered_and_survived() {
    for source in [Source::Acpi, Source::Legacy] {
        let r = boot_with(source, 1, "legacy-garbage", "", &["--rng", "off"]);
        r.assert_pass();
        assert_has(&r, "tiny: legacy-garbage: 256 values on 6 ports answered\n");
        assert_has(
            &r,
            "tiny: legacy-garbage: the i8042 still answers its probe\n",
        );
    }
}
