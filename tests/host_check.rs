//! `microvm host-check` reports this host's KVM in plain words.

mod common;

use common::*;

#[test]
fn host_check_reports_kvm_and_how_guest_code_runs() {
    let run = run(&["host-check"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(
        run.stdout.contains("KVM API version:          12 (ok)"),
        "{}",
        run.describe()
    );
    assert!(run.stdout.contains("KVM_CAP_IRQFD"), "{}", run.describe());
    assert!(!run.stdout.contains("MISSING"), "{}", run.describe());
    if host_has_hw_virt() {
        eprintln!("host has VT-x/AMD-V");
        assert!(
            run.stdout.contains("guest code runs natively"),
            "{}",
            run.describe()
        );
    } else {
        eprintln!("host has no VT-x/AMD-V: host-check must warn about KVM's instruction emulator");
        assert!(
            run.stdout
                .contains("warning: guest kernel code will run in KVM's instruction emulator"),
            "{}",
            run.describe()
        );
    }
    assert!(
        run.stdout
            .ends_with("verdict:                  microvm can run guests here\n"),
        "{}",
        run.describe()
    );
}

#[test]
fn host_check_fails_without_dev_kvm() {
    let run = run_without_dev_kvm("host-check");
    assert_eq!(run.code(), 1, "{}", run.describe());
    assert!(
        run.stdout.contains(
            "/dev/kvm:                 NOT USABLE: cannot open /dev/kvm: it does not exist"
        ),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout.contains("microvm cannot run guests here"),
        "{}",
        run.describe()
    );
}
