//! `microvm`: the command line. Everything else lives in the `vmm` crate.

mod logger;
mod seccomp_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
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
  148  a thread made a forbidden system call under --seccomp true (one report line on stderr
       names the thread, the call and its arguments; rerun with --seccomp log to list all)";

/// Boot a Linux-boot-protocol kernel in a KVM micro-VM whose every thread runs under its
/// own seccomp filter.
#[derive(Parser, Debug)]
#[command(version, about, after_help = EXIT_CODES, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

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

    /// Custom filters in seccompiler's JSON format, keyed by thread kind; they replace the
    /// built-in filters of the kinds they define (see `microvm seccomp print --format json`).
    #[arg(long, value_name = "FILE")]
    seccomp_filter: Option<PathBuf>,

    /// Log level of microvm's own messages (stderr).
    #[arg(long, value_name = "LEVEL", value_enum, default_value_t = LogLevel::Warn)]
    log_level: LogLevel,

    /// virtio-blk disk on a raw image whose size is a multiple of 512 (repeatable):
    /// path=FILE[,readonly=on].
    #[arg(long, value_name = "path=FILE[,readonly=on]")]
    disk: Vec<vmm::DiskConfig>,

    /// virtio-net device on an existing TAP interface (repeatable):
    /// tap=NAME[,mac=aa:bb:cc:dd:ee:ff].
    #[arg(long, value_name = "tap=NAME[,mac=MAC]")]
    net: Vec<vmm::NetConfig>,

    /// virtio-rng entropy device.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = ["on", "off"])]
    rng: String,

    /// Kernel entry: linux = 64-bit Linux boot protocol (bzImage or ELF vmlinux);
    /// pvh = Xen PVH entry of an ELF vmlinux with a XEN_ELFNOTE_PHYS32_ENTRY note.
    #[arg(long, value_name = "linux|pvh", default_value = "linux")]
    boot: vmm::BootProtocol,

    /// Print phase timestamps (microseconds since main) on stderr at exit.
    #[arg(long)]
    timings: bool,
}

/// Subcommands; without one, microvm boots a VM.
#[derive(Subcommand, Debug)]
enum Command {
    /// Report what this host's KVM offers microvm (API version, capabilities, hardware
    /// virtualization or KVM's instruction emulator). Exit 0 when microvm can run here.
    HostCheck,
    /// Inspect the seccomp filters: print them (table, seccompiler JSON, Markdown) or replay
    /// an `strace -f --decode-pids=comm` log against them.
    #[command(subcommand)]
    Seccomp(seccomp_cmd::SeccompCommand),
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
    vmm::timings::start();
    vmm::close_inherited_fds();
    let cli = Cli::parse();
    vmm::timings::mark(vmm::timings::Phase::Args);
    logger::init(cli.log_level.into());
    if let Some(command) = cli.command {
        return match command {
            Command::HostCheck => host_check(),
            Command::Seccomp(cmd) => seccomp_cmd::run(cmd),
        };
    }
    match boot(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("microvm: error: {e:#}");
            ExitCode::from(vmm::exit::EXIT_ERROR as u8)
        }
    }
}

fn boot(cli: Cli) -> anyhow::Result<i32> {
    // Before anything else, so a bad file gives exactly one error line.
    if let Some(path) = &cli.seccomp_filter {
        let custom = vmm::seccomp::CustomFilters::load(path)?;
        for w in &custom.warnings {
            log::warn!("--seccomp-filter {}: {w}", path.display());
        }
        vmm::seccomp::use_custom_filters(custom);
    }
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
        disks: cli.disk,
        nets: cli.net,
        rng: cli.rng == "on",
        boot: cli.boot,
    };
    let timings = cli.timings;
    let exit = vmm::run(&cfg);
    vmm::timings::mark(vmm::timings::Phase::Teardown);
    if timings {
        eprintln!("{}", vmm::timings::report());
    }
    if let Some(summary) = vmm::seccomp::log_summary() {
        eprint!("{summary}");
    }
    let exit = exit?;
    if exit.is_error() {
        eprintln!("microvm: error: {exit}");
    } else {
        log::info!("{exit}");
    }
    Ok(exit.exit_code())
}

fn host_check() -> ExitCode {
    let report = vmm::host_check::check_host();
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{report}");
    if report.usable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(vmm::exit::EXIT_ERROR as u8)
    }
}
