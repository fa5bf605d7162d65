//! `cargo bench --bench bench [-- --quick]`: microvm's boot, exit, RSS and seccomp figures,
//! side by side with QEMU microvm and a bare-KVM floor, on the tiny guest; with `--linux`, the
//! stock Debian cloud kernel's boot times against QEMU microvm in the nested host. Prints a
//! table of medians with min/max and writes the same as JSON (docs/performance.md).

mod bpf_count;
mod floor;
mod json;
mod launch;
mod linux;
mod linux_report;
mod peers;
mod report;
mod run;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run::bench_main(&args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
