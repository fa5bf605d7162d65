//! `microvm`: the command line. Everything else lives in the `vmm` crate.

mod logger;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use vmm::{KernelSource, VmConfig};

/// The tiny guest built from resources/tiny-guest by build.rs.
static TINY_BZIMAGE: &[u8] = include_bytes!(env!("MICROVM_TINY_BZIMAGE"));

const EXIT_CODES: &str = "\
Exit codes:
  0    the guest reset or shut down the machine
  1    bad input or a set-up error (one error line on stderr)
  2    bad command-line usage
  3    the guest triple-faulted
  4    KVM could not run the guest (emulation failure, failed entry, unexpected exit)
  130  stopped by SIGINT;  143  stopped by SIGTERM;  129  stopped by SIGHUP
  148  a thread made a forbidden system call under --seccomp true";

/// Boot a Linux-boot-protocol kernel in a KVM micro-VM whose every thread runs under its
/// own seccomp filter.
#[derive(Parser, Debug)]
#[command(version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Kernel to boot: a bzImage or an uncompressed ELF vmlinux. Without it, microvm boots
    /// its built-in tiny test guest.
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,

    /// Initial ramdisk (initramfs) to load for the kernel.
    #[arg(long, value_name = "PATH")]
    initramfs: Option<PathBuf>,

    /// Kernel command line.
    #[arg(long, value_name = "STR", default_value = vmm::DEFAULT_CMDLINE)]
    cmdline: String,

    /// Number of vCPUs.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=vmm::MAX_VCPUS as i64))]
    cpus: u8,

    /// Guest RAM in MiB.
    #[arg(long, value_name = "MiB", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(2..=1 << 20))]
    memory: u64,

    /// Seccomp filters: true = a forbidden system call kills microvm with a report,
    /// log = it is reported and allowed, false = no filters.
    #[arg(long, value_name = "MODE", default_value = "true")]
    seccomp: vmm::seccomp::Mode,

    /// Log level of microvm's own messages (stderr).
    #[arg(long, value_name = "LEVEL", value_enum, default_value_t = LogLevel::Warn)]
    log_level: LogLevel,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logger::init(cli.log_level.into());
    match boot(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("microvm: error: {e:#}");
            ExitCode::from(vmm::exit::EXIT_ERROR as u8)
        }
    }
}

fn boot(cli: Cli) -> anyhow::Result<i32> {
    let kernel = match cli.kernel {
        Some(path) => KernelSource::File(path),
        None => {
            eprintln!(
                "microvm: no --kernel given: booting the built-in tiny guest ({} bytes, bzImage)",
                TINY_BZIMAGE.len()
            );
            KernelSource::Embedded {
                name: "tiny-bzImage",
                bytes: TINY_BZIMAGE,
            }
        }
    };
    let cfg = VmConfig {
        kernel,
        initramfs: cli.initramfs,
        cmdline: cli.cmdline,
        cpus: cli.cpus,
        memory_mib: cli.memory,
        seccomp: cli.seccomp,
    };
    let exit = vmm::run(&cfg)?;
    if exit.is_error() {
        eprintln!("microvm: error: {exit}");
    } else {
        log::info!("{exit}");
    }
    Ok(exit.exit_code())
}
