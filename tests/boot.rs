//! Boots the tiny guest as bzImage and as ELF vmlinux, on 1 and 4 vCPUs, under every
//! seccomp mode, and checks what the guest reports about the machine microvm built.

mod common;

use common::*;

fn check_boot(kernel: &str, cpus: u8, seccomp: &str) {
    let run = boot(kernel, cpus, seccomp, "");
    run.assert_pass();
    let online = format!("tiny: smp: {cpus} of {cpus} cpus online");
    assert!(
        run.stdout.contains(&online),
        "expected '{online}':\n{}",
        run.describe()
    );
    // APs take their logical number in the order they arrive, which the host's scheduling
    // decides: check every APIC id came online with its own CPUID id, whatever its number.
    for cpu in 0..cpus {
        let line = format!(" online (apic id {cpu}, cpuid apic id {cpu})");
        assert!(
            run.stdout.contains(&line),
            "expected '{line}':\n{}",
            run.describe()
        );
    }
    let cmdline = format!("tiny: cmdline: console=ttyS0 reboot=k tiny.cpus={cpus}\n");
    assert!(
        run.stdout.replace('\r', "").contains(&cmdline),
        "the guest must see exactly our command line:\n{}",
        run.describe()
    );
}

#[test]
fn bzimage_1_vcpu_seccomp_true() {
    check_boot(TINY_BZIMAGE, 1, "true");
}

#[test]
fn bzimage_4_vcpus_seccomp_true() {
    check_boot(TINY_BZIMAGE, 4, "true");
}

#[test]
fn bzimage_1_vcpu_seccomp_false() {
    check_boot(TINY_BZIMAGE, 1, "false");
}

#[test]
fn bzimage_4_vcpus_seccomp_log() {
    check_boot(TINY_BZIMAGE, 4, "log");
}

#[test]
fn bzimage_4_vcpus_seccomp_false() {
    check_boot(TINY_BZIMAGE, 4, "false");
}

#[test]
fn bzimage_1_vcpu_seccomp_log() {
    check_boot(TINY_BZIMAGE, 1, "log");
}

#[test]
fn elf_1_vcpu_seccomp_true() {
    check_boot(TINY_VMLINUX, 1, "true");
}

#[test]
fn elf_4_vcpus_seccomp_true() {
    check_boot(TINY_VMLINUX, 4, "true");
}

#[test]
fn elf_1_vcpu_seccomp_log() {
    check_boot(TINY_VMLINUX, 1, "log");
}

#[test]
fn elf_4_vcpus_seccomp_false() {
    check_boot(TINY_VMLINUX, 4, "false");
}

#[test]
fn elf_4_vcpus_seccomp_log() {
    check_boot(TINY_VMLINUX, 4, "log");
}

#[test]
fn elf_1_vcpu_seccomp_false() {
    check_boot(TINY_VMLINUX, 1, "false");
}

#[test]
fn without_kernel_boots_the_built_in_tiny_guest() {
    let run = run(&["--cpus", "2"]);
    run.assert_pass();
    let notes: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("built-in tiny guest"))
        .collect();
    assert_eq!(notes.len(), 1, "one line must say so:\n{}", run.describe());
    assert!(
        run.stdout.contains("tiny: smp: 2 of 2 cpus online"),
        "{}",
        run.describe()
    );
}

#[test]
fn e820_matches_the_memory_size_below_and_across_the_mmio_gap() {
    for mib in ["128", "3072", "5120"] {
        let cmdline = format!("console=ttyS0 tiny.mem={mib}");
        let run = run(&[
            "--kernel",
            TINY_BZIMAGE,
            "--memory",
            mib,
            "--cmdline",
            &cmdline,
        ]);
        run.assert_pass();
        assert!(run.stdout.contains("tiny: e820:"), "{}", run.describe());
    }
    // RAM above 4 GiB must be announced as such: 5 GiB = 3 GiB below the gap + 2 GiB above.
    let run = run(&["--kernel", TINY_BZIMAGE, "--memory", "5120"]);
    assert!(
        run.stdout
            .contains("[mem 0x0000000100000000-0x000000017fffffff] usable"),
        "{}",
        run.describe()
    );
}

#[test]
fn initramfs_is_loaded_where_the_guest_can_find_it() {
    let dir = scratch("initrd");
    let mut data = b"MICROVM-INITRD-0123456789abcdef".to_vec();
    data.resize(100_000, 0x5a);
    let initrd = write_file(&dir, "initrd.img", &data);
    let run = run(&["--kernel", TINY_BZIMAGE, "--initramfs", &initrd]);
    run.assert_pass();
    assert!(
        run.stdout.contains("tiny: initramfs: 100000 bytes at 0x")
            && run.stdout.contains("starts \"MICROVM-INITRD-0\""),
        "{}",
        run.describe()
    );
}

#[test]
fn triple_fault_ends_the_vm_with_a_plain_words_error() {
    let run = boot(TINY_BZIMAGE, 1, "true", "tiny.test=triple-fault");
    assert!(
        run.stdout.contains("tiny: causing a triple fault"),
        "{}",
        run.describe()
    );
    let error = run.error_line();
    // A triple fault is KVM_EXIT_SHUTDOWN (exit 3). Under KVM's instruction emulator
    // (no VT-x) the emulator may give up first, which is reported as a KVM failure (4).
    match run.code() {
        3 => assert!(
            error.contains("vcpu0") && error.contains("triple-faulted"),
            "{}",
            run.describe()
        ),
        4 => assert!(
            error.contains("vcpu0") && error.contains("KVM"),
            "{}",
            run.describe()
        ),
        c => panic!("unexpected exit code {c}:\n{}", run.describe()),
    }
}

#[test]
fn an_instruction_kvm_cannot_run_is_reported_in_plain_words() {
    let run = boot(TINY_BZIMAGE, 2, "true", "tiny.test=unsupported-insn");
    assert!(
        run.stdout.contains("tiny: executing int3"),
        "{}",
        run.describe()
    );
    let error = run.error_line();
    if host_has_hw_virt() {
        eprintln!("host has VT-x/AMD-V: int3 with an empty IDT must triple-fault");
        assert_eq!(run.code(), 3, "{}", run.describe());
        assert!(error.contains("triple-faulted"), "{}", run.describe());
    } else {
        eprintln!("host has no VT-x/AMD-V (KVM emulates guest kernel code): expecting an emulation failure report");
        assert_eq!(run.code(), 4, "{}", run.describe());
        for needle in [
            "vcpu0",
            "KVM_EXIT_INTERNAL_ERROR",
            "emulation failure",
            "RIP 0x",
            "instruction bytes cc",
        ] {
            assert!(
                error.contains(needle),
                "missing '{needle}':\n{}",
                run.describe()
            );
        }
    }
}

#[test]
fn a_guest_that_starts_fewer_vcpus_gets_one_warning_line() {
    for acpi in ["on", "off"] {
        let run = common::run(&[
            "--cpus",
            "3",
            "--acpi",
            acpi,
            "--rng",
            "off",
            "--cmdline",
            "console=ttyS0 reboot=k tiny.smp=off",
        ]);
        run.assert_pass();
        let warnings: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("the guest started 1 of 3 vCPUs"))
            .collect();
        assert_eq!(warnings.len(), 1, "{}", run.describe());
        let hint = if acpi == "on" {
            "CONFIG_ACPI"
        } else {
            "try --acpi on"
        };
        assert!(warnings[0].contains(hint), "{}", run.describe());
    }
    let run = boot(TINY_BZIMAGE, 3, "true", "");
    run.assert_pass();
    assert!(!run.stderr.contains("vCPUs:"), "{}", run.describe());
}
