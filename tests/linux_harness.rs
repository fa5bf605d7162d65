//! The real-Linux harness's own rule for which hung boots it runs again
//! (common/linux_prelude.sh, `in_kvm_run`): a guest hang with every vCPU thread inside
//! KVM_RUN is the nested host's and is retried; a vCPU thread anywhere else in microvm is
//! not. Fed the thread listings its watchdog printed in CI.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const PRELUDE: &str = include_str!("common/linux_prelude.sh");

/// Runs `in_kvm_run` on a watchdog listing; true when it counts as a hang in KVM_RUN.
fn in_kvm_run(listing: &str) -> bool {
    let dir = std::env::temp_dir().join(format!("mv-harness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir scratch");
    static N: AtomicUsize = AtomicUsize::new(0);
    let file = dir.join(format!("threads-{}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&file, listing).expect("write listing");
    let script = format!(
        "WORK={dir}; RUN={dir}; GUEST_TIMEOUT=1\n{PRELUDE}\nin_kvm_run {file}",
        dir = dir.display(),
        file = file.display()
    );
    let st = Command::new("sh")
        .args(["-c", &script])
        .status()
        .expect("run sh");
    st.success()
}

const HEAD: &str = "killed after 150s; its threads (name, state, syscall, wchan, CPU ticks in the last second):\n  vmm S [232 0x7 0x55556f9e42b0 0x100 0xffffffff 0x0 0x55556f9cef20 0x7fff4e6283a0 0x7fa33e0b0836] do_epoll_wait user=0 sys=0\n";
const BLOCKED: &str = "  vcpu0 S [16 0x20 0xae80 0x0 0x0 0x0 0x55556f9d8c10 0x7fa32d9fd460 0x7fa33e0aef7b] kvm_vcpu_block user=11 sys=11\n";
const SPINNING: &str = "  vcpu2 R [running] 0 user=106 sys=31\n";
const DEVICE: &str = "  virtio-blk0 S [232 0x16 0x55556f9dade0 0x100 0xffffffff 0x0 0x55556f9d9a58 0x7fa32d3faca0 0x7fa33e0b0836] do_epoll_wait user=0 sys=0\n";

#[test]
fn a_guest_hang_with_every_vcpu_in_kvm_run_is_retried() {
    assert!(in_kvm_run(&format!("{HEAD}{BLOCKED}{SPINNING}{DEVICE}")));
}

#[test]
fn a_vcpu_woken_between_its_state_and_its_syscall_still_counts_as_in_kvm_run() {
    // CI, boot d05: state read as S, then the system call as "running".
    let woken = "  vcpu3 S [running] kvm_vcpu_block user=21 sys=3\n";
    assert!(in_kvm_run(&format!(
        "{HEAD}{BLOCKED}{SPINNING}{woken}{DEVICE}"
    )));
}

#[test]
fn a_vcpu_thread_blocked_in_microvm_is_not_retried() {
    let futex = "  vcpu1 S [202 0x7fa33e101f00 0x80 0x2 0x0 0x0 0x0 0x7fa327ffd460 0x7fa33e0aef7b] futex_wait_queue user=0 sys=0\n";
    assert!(!in_kvm_run(&format!("{HEAD}{BLOCKED}{futex}{DEVICE}")));
    let other_ioctl =
        "  vcpu1 S [16 0x21 0xae81 0x0 0x0 0x0 0x0 0x7fa327ffd460 0x7fa33e0aef7b] 0 user=0 sys=0\n";
    assert!(!in_kvm_run(&format!("{HEAD}{BLOCKED}{other_ioctl}")));
}

#[test]
fn a_watchdog_that_never_fired_is_not_a_hang() {
    assert!(!in_kvm_run(""));
    assert!(!in_kvm_run(HEAD));
}
