//! Bad input gets one clear error line and a non-zero exit, never a panic.

mod common;

use common::*;

/// Asserts exit code `code` and exactly one `microvm: error:` line containing `needle`.
fn assert_one_error(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code(), code, "{}", run.describe());
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line expected:\n{}",
        run.describe()
    );
    assert!(
        errors[0].contains(needle),
        "error line must mention '{needle}':\n{}",
        run.describe()
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.describe());
}

#[test]
fn missing_kernel() {
    let run = run(&["--kernel", "/nonexistent/bzImage"]);
    assert_one_error(&run, 1, "/nonexistent/bzImage");
    assert!(run.stderr.contains("No such file"), "{}", run.describe());
}

#[test]
fn a_directory_is_not_a_kernel() {
    let dir = scratch("dir-kernel");
    let run = run(&["--kernel", dir.to_str().expect("utf-8 path")]);
    assert_one_error(&run, 1, "not a regular file");
}

#[test]
fn unreadable_kernel() {
    // Root reads everything, so read as nobody a file only root may read. The kernel is
    // opened before /dev/kvm, so the refusal names the kernel.
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("unreadable");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let path = write_file(&dir, "bzImage", &std::fs::read(TINY_BZIMAGE).expect("tiny"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let child = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_microvm"))
        .args(["--kernel", &path])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) must be installed");
    let run = wait_with_timeout(child, BOOT_TIMEOUT);
    assert_one_error(&run, 1, "cannot read kernel");
    assert!(
        run.stderr.contains("Permission denied"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_file_that_is_not_a_kernel() {
    let dir = scratch("notakernel");
    let path = write_file(&dir, "notes.txt", &b"this is not a kernel\n".repeat(200));
    let run = run(&["--kernel", &path]);
    assert_one_error(&run, 1, "not a kernel");
}

#[test]
fn a_tiny_file() {
    let dir = scratch("tinyfile");
    let path = write_file(&dir, "x", b"MZ");
    let run = run(&["--kernel", &path]);
    assert_one_error(&run, 1, "too short");
}

#[test]
fn truncated_bzimage() {
    let image = std::fs::read(TINY_BZIMAGE).expect("tiny bzImage");
    let dir = scratch("truncated");
    let path = write_file(&dir, "bzImage", &image[..image.len() - 100]);
    let run = run(&["--kernel", &path]);
    assert_one_error(&run, 1, "truncated bzImage");
}

#[test]
fn truncated_elf() {
    let image = std::fs::read(TINY_VMLINUX).expect("tiny vmlinux");
    let dir = scratch("truncated-elf");
    let path = write_file(&dir, "vmlinux", &image[..200]);
    let run = run(&["--kernel", &path]);
    assert_one_error(&run, 1, "ELF");
}

#[test]
fn ram_too_small_for_the_kernel() {
    // The tiny bzImage with init_size (offset 0x260) claiming 64 MiB.
    let mut image = std::fs::read(TINY_BZIMAGE).expect("tiny bzImage");
    image[0x260..0x264].copy_from_slice(&(64u32 << 20).to_le_bytes());
    let dir = scratch("bigkernel");
    let path = write_file(&dir, "bzImage", &image);
    let run = run(&["--kernel", &path, "--memory", "32"]);
    assert_one_error(&run, 1, "RAM is too small");
}

#[test]
fn ram_too_small_for_the_initramfs() {
    let dir = scratch("biginitrd");
    let initrd = write_file(&dir, "initrd", &vec![0u8; 40 << 20]);
    let run = run(&[
        "--kernel",
        TINY_BZIMAGE,
        "--memory",
        "32",
        "--initramfs",
        &initrd,
    ]);
    assert_one_error(&run, 1, "initramfs");
}

#[test]
fn missing_initramfs() {
    let run = run(&[
        "--kernel",
        TINY_BZIMAGE,
        "--initramfs",
        "/nonexistent/initrd",
    ]);
    assert_one_error(&run, 1, "/nonexistent/initrd");
}

#[test]
fn zero_cpus_is_a_usage_error() {
    let run = run(&["--cpus", "0"]);
    assert_one_error(&run, 2, "--cpus");
}

#[test]
fn too_many_cpus_is_a_usage_error() {
    let run = run(&["--cpus", "33"]);
    assert_one_error(&run, 2, "--cpus");
}

#[test]
fn bad_seccomp_mode_is_a_usage_error() {
    let run = run(&["--seccomp", "maybe"]);
    assert_one_error(&run, 2, "--seccomp");
}

#[test]
fn command_line_too_long() {
    let long = "a".repeat(5000);
    let run = run(&["--kernel", TINY_BZIMAGE, "--cmdline", &long]);
    assert_one_error(&run, 1, "command line");
}

#[test]
fn no_dev_kvm() {
    // A private mount namespace with an empty /dev: /dev/kvm does not exist there.
    let run = run_without_dev_kvm(&format!("--kernel {TINY_BZIMAGE}"));
    assert_one_error(&run, 1, "/dev/kvm");
    assert!(run.stderr.contains("does not exist"), "{}", run.describe());
}

// No permission on /dev/kvm: tests/unprivileged.rs (run as nobody without the kvm group).

#[test]
fn a_disk_image_in_use_is_refused_read_only_ones_are_shared() {
    let dir = scratch("disk-lock");
    let image = write_file(&dir, "disk.img", &[0u8; 4096]);
    let rw = format!("path={image}");
    let ro = format!("path={image},readonly=on");
    let run = run(&["--disk", &rw, "--disk", &rw, "--rng", "off"]);
    assert_one_error(
        &run,
        1,
        "is in use: another VM (or another --disk of this one) holds its lock",
    );
    let run = common::run(&["--disk", &ro, "--disk", &rw, "--rng", "off"]);
    assert_one_error(&run, 1, "holds its lock");
    let run = common::run(&["--disk", &ro, "--disk", &ro, "--rng", "off"]);
    run.assert_pass();
}
