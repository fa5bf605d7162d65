//! `--pit`: KVM's in-kernel PIT only when asked for, and in every VM the `vmm` thread's
//! call that ends the set-up's grace period once the guest runs (vmm/src/grace.rs), both
//! read off an `strace -f` of a tiny-guest boot under `--seccomp true` (a call its filter
//! did not allow would kill microvm).

mod common;

use common::*;

/// The VM-fd ioctls of a tiny-guest boot with `args`, as strace names them.
fn vm_ioctls(name: &str, args: &[&str]) -> String {
    let dir = scratch(name);
    let trace = dir.join("trace.txt");
    let status = std::process::Command::new("strace")
        .args(["-f", "-e", "trace=ioctl", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_microvm"))
        .args(["--kernel", TINY_BZIMAGE, "--seccomp", "true"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("strace runs (resources/install-deps.sh installs it)");
    assert!(status.success(), "microvm {args:?} under strace: {status}");
    std::fs::read_to_string(trace).expect("strace wrote its trace")
}

#[test]
fn no_pit_by_default_and_the_setup_grace_period_is_ended() {
    let t = vm_ioctls("pit-default", &[]);
    assert!(!t.contains("KVM_CREATE_PIT2"), "no PIT by default:\n{t}");
    assert!(
        !t.contains("KVM_REINJECT_CONTROL"),
        "nothing to reinject:\n{t}"
    );
    assert!(
        t.contains("KVM_SET_PMU_EVENT_FILTER"),
        "the vmm thread ends the grace period:\n{t}"
    );
}

#[test]
fn pit_on_creates_the_pit_and_discards_its_lost_ticks() {
    let t = vm_ioctls("pit-on", &["--pit", "on"]);
    assert!(t.contains("KVM_CREATE_PIT2"), "--pit on: a PIT:\n{t}");
    assert!(
        t.contains("KVM_REINJECT_CONTROL"),
        "lost ticks discarded:\n{t}"
    );
    assert!(t.contains("KVM_SET_PMU_EVENT_FILTER"), "{t}");
}
