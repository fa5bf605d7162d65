//! Boots a real Debian kernel (made by resources/make-linux-guest.sh) with a busybox
//! initramfs, as ELF vmlinux and as bzImage, directly on this machine's KVM.
//!
//! - With VT-x/AMD-V: the init marker ("MICROVM-INIT-OK cpus=2") and a clean exit 0.
//! - Without (our nested-PVM hosts, where KVM emulates guest kernel code): the boot
//!   milestones that show microvm's side of the boot protocol is right (command line,
//!   e820 map, CPUs from the MP table, console), then microvm's plain-words report of the
//!   emulation failure and a non-zero exit within the time budget.
//!
//! Each test prints which of the two cases it checked. The stock cloud kernel's scenarios
//! (every vCPU and device, disks, network, power-off) are in linux_devices.rs, linux_disk.rs
//! and linux_net.rs, which use the nested host where this machine has no VT-x/AMD-V.

mod common;

use std::time::Duration;

use common::linux::linux_guest;
use common::*;

/// Safety net for one real-kernel boot (70 s to 150 s to the emulator's failure here when
/// the machine is otherwise idle; much longer when other builds compete for the cores).
const LINUX_TIMEOUT: Duration = Duration::from_secs(420);

/// The e820 lines Linux prints for the map microvm builds for 512 MiB.
const E820_512M: [&str; 3] = [
    "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
    "BIOS-e820: [mem 0x000000000009fc00-0x00000000000fffff] reserved",
    "BIOS-e820: [mem 0x0000000000100000-0x000000001fffffff] usable",
];

fn boot_linux(kernel: &str, mp_table_kernel: bool) {
    let dir = linux_guest();
    let kernel = dir.join(kernel);
    let initramfs = dir.join("initramfs.cpio.gz");
    let hw = host_has_hw_virt();
    // Where KVM emulates, tell Linux not to use cmpxchg16b (the emulator lacks it), so the
    // boot gets past memory set-up to the console before the next missing instruction.
    let cmdline = if hw {
        "console=ttyS0 earlyprintk=serial reboot=k panic=1".to_string()
    } else {
        "console=ttyS0 earlyprintk=serial reboot=k panic=1 clearcpuid=cx16".to_string()
    };
    let child = microvm()
        .arg("--kernel")
        .arg(&kernel)
        .arg("--initramfs")
        .arg(&initramfs)
        // No virtio devices: the stock kernels have no virtio-mmio command-line support,
        // and the command line must be exactly ours.
        .args([
            "--cpus",
            "2",
            "--memory",
            "512",
            "--rng",
            "off",
            "--cmdline",
            &cmdline,
        ])
        .spawn()
        .expect("spawn microvm");
    let run = wait_with_timeout(child, LINUX_TIMEOUT);
    let out = run.stdout.replace('\r', "");
    let has = |s: &str| out.contains(s);

    // microvm's side of the protocol, visible in any case.
    assert!(
        has("Linux version 6."),
        "no kernel banner:\n{}",
        run.describe()
    );
    assert!(
        has(&format!("Command line: {cmdline}\n")),
        "command line not as passed:\n{}",
        run.describe()
    );
    for line in E820_512M {
        assert!(has(line), "missing e820 line '{line}':\n{}", run.describe());
    }
    if mp_table_kernel {
        assert!(
            has("found SMP MP-table at [mem 0x0009fc00-0x0009fc0f]"),
            "{}",
            run.describe()
        );
        assert!(
            has("smpboot: Allowing 2 CPUs"),
            "both CPUs must come from the MP table:\n{}",
            run.describe()
        );
    } else {
        eprintln!("note: this kernel is built without CONFIG_X86_MPPARSE; the MP table is checked with the ELF vmlinux");
    }

    if hw {
        eprintln!("host has VT-x/AMD-V: checked a full boot to the init marker");
        assert!(
            has("MICROVM-INIT-OK cpus=2"),
            "init did not report 2 CPUs:\n{}",
            run.describe()
        );
        assert_eq!(run.code(), 0, "{}", run.describe());
    } else {
        eprintln!(
            "host has no VT-x/AMD-V: checked boot milestones, then the emulation-failure report"
        );
        assert!(
            has("console [ttyS0] enabled"),
            "console never enabled:\n{}",
            run.describe()
        );
        let error = run.error_line();
        assert!(
            error.contains("KVM could not emulate a guest instruction")
                && error.contains("instruction bytes"),
            "{}",
            run.describe()
        );
        assert_eq!(run.code(), 4, "{}", run.describe());
    }
}

#[test]
#[ignore = "boots a real Linux kernel (1-3 minutes here); run by .ci/run and the README test command via --include-ignored"]
fn real_linux_elf_vmlinux() {
    boot_linux("vmlinux", true);
}

#[test]
#[ignore = "boots a real Linux kernel (1-3 minutes here); run by .ci/run and the README test command via --include-ignored"]
fn real_linux_bzimage() {
    if host_has_hw_virt() {
        boot_linux("bzImage", true);
    } else {
        // The generic kernel's XZ payload takes many minutes to decompress in KVM's
        // emulator; Debian's cloud kernel is LZ4-compressed and gets through in about a
        // minute. It has no MP-table support, which the ELF test covers.
        eprintln!("host has no VT-x/AMD-V: booting the LZ4 cloud bzImage");
        boot_linux("bzImage-cloud", false);
    }
}
