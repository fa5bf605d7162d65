//! microvm runs as an unprivileged user given only access to /dev/kvm (here through a
//! group, as a `kvm` group would give it) and its files.
//!
//! The test never changes the host's /dev/kvm: in a private mount namespace it mounts an
//! empty /dev and creates a /dev/kvm node (same device numbers) owned by a test group.

mod common;

use common::*;

#[test]
fn boots_as_nobody_with_only_group_access_to_dev_kvm() {
    let bin = env!("CARGO_BIN_EXE_microvm");
    let gid = 4242;
    let script = format!(
        "set -e; mount -t tmpfs -o mode=0755 none /dev; \
         mknod -m 0660 /dev/kvm c 10 232; chgrp {gid} /dev/kvm; \
         exec setpriv --reuid=65534 --regid=65534 --groups={gid} --no-new-privs \
           {bin} --kernel {TINY_BZIMAGE} --cpus 2 --cmdline 'console=ttyS0 tiny.cpus=2'"
    );
    let run = run_in_mount_namespace(&script);
    run.assert_pass();
    assert!(
        run.stdout.contains("tiny: smp: 2 of 2 cpus online"),
        "{}",
        run.describe()
    );
}

#[test]
fn without_the_group_the_refusal_is_one_clear_line() {
    let bin = env!("CARGO_BIN_EXE_microvm");
    let script = format!(
        "set -e; mount -t tmpfs -o mode=0755 none /dev; \
         mknod -m 0660 /dev/kvm c 10 232; chgrp 4242 /dev/kvm; \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups {bin} --kernel {TINY_BZIMAGE}"
    );
    let run = run_in_mount_namespace(&script);
    assert_eq!(run.code(), 1, "{}", run.describe());
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{}", run.describe());
    assert!(
        errors[0].contains("permission denied") && errors[0].contains("kvm"),
        "{}",
        run.describe()
    );
}
