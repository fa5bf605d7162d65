//! `--boot pvh`: the tiny guest's ELF carries a XEN_ELFNOTE_PHYS32_ENTRY note; microvm starts
//! the boot vCPU there in 32-bit protected mode with hvm_start_info in EBX, and the guest
//! reports the PVH path and checks the same machine as on the 64-bit path.

mod common;

use common::*;

fn pvh(cpus: u8, extra: &[&str]) -> Run {
    let cmdline = format!("console=ttyS0 reboot=k tiny.cpus={cpus}");
    let cpus = cpus.to_string();
    let mut args = vec![
        "--kernel",
        TINY_VMLINUX,
        "--boot",
        "pvh",
        "--cpus",
        &cpus,
        "--rng",
        "off",
        "--cmdline",
        &cmdline,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn pvh_boot_1_and_4_vcpus() {
    for cpus in [1u8, 4] {
        let r = pvh(cpus, &[]);
        r.assert_pass();
        let out = r.stdout.replace('\r', "");
        assert!(
            out.contains("tiny: boot: PVH entry, hvm_start_info at 0x6000 (version 1, 3 memmap entries, 0 modules)"),
            "{}",
            r.describe()
        );
        assert!(
            out.contains(&format!(
                "tiny: cmdline: console=ttyS0 reboot=k tiny.cpus={cpus}\n"
            )),
            "{}",
            r.describe()
        );
        assert!(out.contains(&format!("tiny: smp: {cpus} of {cpus} cpus online")));
    }
}

#[test]
fn pvh_passes_the_initramfs_as_a_module() {
    let dir = scratch("pvh-initrd");
    let initrd = write_file(&dir, "initrd", b"0123456789abcdefPVH module");
    let r = pvh(1, &["--initramfs", &initrd]);
    r.assert_pass();
    assert!(r.stdout.contains("1 modules)"), "{}", r.describe());
    assert!(
        r.stdout.contains("initramfs: 26 bytes at 0x")
            && r.stdout.contains("starts \"0123456789abcdef\""),
        "{}",
        r.describe()
    );
}

#[test]
fn the_default_entry_of_an_elf_is_the_64_bit_one() {
    let r = boot(TINY_VMLINUX, 1, "true", "");
    r.assert_pass();
    assert!(!r.stdout.contains("boot: PVH"), "{}", r.describe());
}

#[test]
fn pvh_needs_a_pvh_note() {
    let r = run(&["--kernel", TINY_BZIMAGE, "--boot", "pvh", "--rng", "off"]);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(
        r.stderr
            .contains("--boot pvh needs an ELF vmlinux with a PVH note"),
        "{}",
        r.describe()
    );
}
