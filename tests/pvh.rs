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
fn an_elf_with_a_pvh_note_boots_pvh_by_default_and_linux_when_forced() {
    let r = boot(TINY_VMLINUX, 1, "true", "");
    r.assert_pass();
    assert!(
        r.stdout.contains("tiny: boot: PVH entry"),
        "{}",
        r.describe()
    );
    let r = run(&["--kernel", TINY_VMLINUX, "--boot", "linux", "--rng", "off"]);
    r.assert_pass();
    assert!(!r.stdout.contains("boot: PVH"), "{}", r.describe());
}

/// The tiny ELF with its XEN_ELFNOTE_PHYS32_ENTRY note turned into an unknown note type.
fn elf_without_pvh_note() -> String {
    let mut elf = std::fs::read(TINY_VMLINUX).unwrap();
    // Note header: namesz = 4, descsz, type = 18, then "Xen\0".
    let at = elf
        .windows(8)
        .enumerate()
        .position(|(i, w)| {
            w == [18, 0, 0, 0, b'X', b'e', b'n', 0] && elf[i - 8..i - 4] == [4, 0, 0, 0]
        })
        .expect("the tiny ELF has a Xen PVH note");
    elf[at] = 0x7f;
    let dir = scratch("elf-no-pvh");
    write_file(&dir, "vmlinux", &elf)
}

#[test]
fn an_elf_without_a_pvh_note_boots_its_64_bit_entry() {
    let elf = elf_without_pvh_note();
    let r = run(&["--kernel", &elf, "--rng", "off"]);
    r.assert_pass();
    assert!(!r.stdout.contains("boot: PVH"), "{}", r.describe());
    let r = run(&["--kernel", &elf, "--boot", "pvh", "--rng", "off"]);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(
        r.error_line().contains("no XEN_ELFNOTE_PHYS32_ENTRY"),
        "{}",
        r.describe()
    );
}

#[test]
fn an_elf_entry_outside_its_segments_is_refused() {
    let mut elf = std::fs::read(TINY_VMLINUX).unwrap();
    elf[24..32].copy_from_slice(&0x700_0000u64.to_le_bytes());
    let dir = scratch("elf-bad-entry");
    let path = write_file(&dir, "vmlinux", &elf);
    let r = run(&["--kernel", &path, "--boot", "linux", "--rng", "off"]);
    assert_eq!(r.code(), 1, "{}", r.describe());
    assert!(
        r.error_line()
            .contains("entry point (e_entry) 0x7000000 is outside its loaded segments"),
        "{}",
        r.describe()
    );
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
