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
  0    the guest reset, powered off or shut down the machine
  1    bad input or a set-up error (one error line on stderr)
  2    bad command-line usage
  3    the guest triple-faulted
  4    KVM could not run the guest (emulation failure, failed entry, unexpected exit)
  5    a thread could not install its seccomp filter; the guest did not run (one error line)
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
    /// path=FILE[,readonly=on][,bw=BYTES][,ops=N]. bw= and ops= are token-bucket rate
    /// limits per second (suffix K, M or G = x1024; 0 = unlimited): requests wait in the
    /// queue until they fit.
    #[arg(long, value_name = "path=FILE[,readonly=on][,bw=BYTES][,ops=N]")]
    disk: Vec<vmm::DiskConfig>,

    /// virtio-net device on an existing TAP interface (repeatable):
    /// tap=NAME[,mac=aa:bb:cc:dd:ee:ff][,bw=BYTES][,offload=on|off]. bw= limits tx and rx
    /// each to BYTES of Ethernet frames per second (token bucket; suffix K, M or G = x1024;
    /// 0 = unlimited). offload= offers the guest tx checksum and TSO (default on; each
    /// header is checked before the host kernel sees it); off zeroes every tx header.
    #[arg(long, value_name = "tap=NAME[,mac=MAC][,bw=BYTES][,offload=on|off]")]
    net: Vec<vmm::NetConfig>,

    /// virtio-rng entropy device.
    #[arg(long, value_name = "on|off", value_enum, default_value_t = OnOff::On)]
    rng: OnOff,

    /// ACPI tables (MADT, DSDT with every device, power-off): what stock distribution
    /// kernels need. off = CPUs in the MP table only, virtio devices on the command line
    /// (for kernels built without CONFIG_ACPI, with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES).
    #[arg(long, value_name = "on|off", value_enum, default_value_t = OnOff::On)]
    acpi: OnOff,

    /// KVM's in-kernel PIT (i8254 timer, port 0x61). Linux on KVM does not use it (it has
    /// the TSC-deadline LAPIC timer); on = for guests that count PIT ticks or calibrate
    /// against it. Off starts and tears the VM down faster (no PIT grace periods).
    #[arg(long, value_name = "on|off", value_enum, default_value_t = OnOff::Off)]
    pit: OnOff,

    /// Kernel entry: linux = 64-bit Linux boot protocol (bzImage or ELF vmlinux);
    /// pvh = Xen PVH entry of an ELF vmlinux with a XEN_ELFNOTE_PHYS32_ENTRY note.
    /// Default: pvh for an ELF with that note, linux otherwise.
    #[arg(long, value_name = "linux|pvh")]
    boot: Option<vmm::BootProtocol>,

    /// Print phase timestamps (microseconds since main) on stderr at exit.
    #[arg(long)]
    timings: bool,

    /// Where each virtio device runs: threads = a thread of the VMM each; devices = a
    /// process each (named like the device), forked before it touches guest data, in its
    /// own namespaces with an empty root, no capabilities and its own seccomp filter,
    /// sharing only guest RAM, its disk or TAP and its eventfds with the VMM; a device
    /// process that dies leaves its device in DEVICE_NEEDS_RESET and the VM running.
    #[arg(long, value_name = "threads|devices", default_value = "threads")]
    isolate: vmm::Isolate,

    #[command(flatten)]
    jail: JailArgs,
}

/// `--jail` and its options (docs/security.md, "The jail").
#[derive(clap::Args, Debug)]
struct JailArgs {
    /// Run the whole VMM in a jail once its files and /dev/kvm are open: new mount, PID,
    /// IPC, UTS and network namespaces (and a user namespace for an unprivileged caller),
    /// an empty read-only root with only /proc, another uid/gid, no capabilities, rlimits.
    /// Where an unprivileged caller may not make a user namespace: Landlock instead (no
    /// file by path but /proc/self, no TCP), with a warning.
    #[arg(long)]
    jail: bool,

    /// uid of the jailed VMM. Default: 65534 as root; an unprivileged caller stays itself.
    #[arg(long, value_name = "UID", requires = "jail")]
    jail_uid: Option<u32>,

    /// gid of the jailed VMM. Default: 65534 as root; an unprivileged caller stays itself.
    #[arg(long, value_name = "GID", requires = "jail")]
    jail_gid: Option<u32>,

    /// RLIMIT_NOFILE of the jailed VMM [default: 1024].
    #[arg(long, value_name = "N", requires = "jail",
          value_parser = clap::value_parser!(u64).range(64..))]
    jail_nofile: Option<u64>,

    /// RLIMIT_NPROC of the jailed VMM's uid [default: unlimited].
    #[arg(long, value_name = "N", requires = "jail",
          value_parser = clap::value_parser!(u64).range(1..))]
    jail_nproc: Option<u64>,

    /// A delegated cgroup v2 directory the VMM moves into, with the limits below.
    #[arg(long, value_name = "DIR", requires = "jail")]
    jail_cgroup: Option<PathBuf>,

    /// The cgroup's memory.max (bytes, suffix K/M/G, or max).
    #[arg(long, value_name = "BYTES", requires = "jail_cgroup")]
    jail_memory_max: Option<String>,

    /// The cgroup's cpu.max: "QUOTA PERIOD" in microseconds, e.g. "50000 100000".
    #[arg(long, value_name = "QUOTA PERIOD", requires = "jail_cgroup")]
    jail_cpu_max: Option<String>,

    /// The cgroup's pids.max (threads count).
    #[arg(long, value_name = "N", requires = "jail_cgroup")]
    jail_pids_max: Option<String>,
}

impl JailArgs {
    fn config(self) -> Option<vmm::JailConfig> {
        self.jail.then_some(vmm::JailConfig {
            uid: self.jail_uid,
            gid: self.jail_gid,
            nofile: self.jail_nofile,
            nproc: self.jail_nproc,
            cgroup: self.jail_cgroup,
            memory_max: self.jail_memory_max,
            cpu_max: self.jail_cpu_max,
            pids_max: self.jail_pids_max,
        })
    }
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

/// A switch: `on` or `off`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
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
            eprintln!("microvm: error: {}", one_line(&e));
            ExitCode::from(vmm::exit::EXIT_ERROR as u8)
        }
    }
}

/// `e` and its causes on one line, each cause once: most of microvm's errors already say
/// their cause in their own message, which `{e:#}` would repeat.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
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
        rng: cli.rng == OnOff::On,
        boot: cli.boot,
        acpi: cli.acpi == OnOff::On,
        pit: cli.pit == OnOff::On,
        jail: cli.jail.config(),
        isolate: cli.isolate,
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
