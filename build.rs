//! Builds the tiny guest (resources/tiny-guest) from source with gcc/binutils so the
//! binary can embed it and the tests can boot it. Nothing prebuilt is committed.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("tiny-guest");
    std::fs::create_dir_all(&out).expect("create the tiny guest output directory");
    println!("cargo:rerun-if-changed=resources/tiny-guest");
    let status = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg("resources/tiny-guest")
        .arg(format!("OUT={}", out.display()))
        .status()
        .expect("run make (install make, gcc and binutils)");
    assert!(
        status.success(),
        "building the tiny guest failed (see the make output above)"
    );
    // Paths for the integration tests and benches of this package.
    println!(
        "cargo:rustc-env=MICROVM_TINY_BZIMAGE={}",
        out.join("tiny-bzImage").display()
    );
    println!(
        "cargo:rustc-env=MICROVM_TINY_VMLINUX={}",
        out.join("tiny-vmlinux").display()
    );
    println!(
        "cargo:rustc-env=MICROVM_NOOP_VMLINUX={}",
        out.join("noop-vmlinux").display()
    );
}
