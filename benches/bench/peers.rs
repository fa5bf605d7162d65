//! The peers of the tiny-guest bench and their command lines: microvm (three ways),
//! Firecracker, QEMU microvm and the bench's own KVM floor.

use std::path::{Path, PathBuf};

use crate::run::{Case, Options, ISOLATE_KINDS};

/// QEMU's firmware for `-M microvm` with an MP table (qboot's has no processor entries),
/// for the tiny guest; the do-nothing guest boots under QEMU's default (qboot).
const QEMU_FIRMWARE: &str = "/usr/share/seabios/bios-microvm.bin";

/// Why Firecracker boots only the do-nothing guest.
pub const FIRECRACKER_NO_TINY: &str = "not measured: the tiny guest refuses Firecracker's MP table (\"mptable: unknown entry type 68\"); Firecracker boots the do-nothing guest only (startup.noop.*)";

/// Why Firecracker runs no exit loop, device loop or irqfd round trip.
pub const FIRECRACKER_NO_LOOPS: &str = "not measured: Firecracker logs every access to an unassigned port or MMIO address (the loops' targets) as an error line, and its default configuration has no virtio device";

/// Who runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// microvm --seccomp true.
    MicrovmSeccomp,
    /// microvm --seccomp false.
    MicrovmNoSeccomp,
    /// microvm --seccomp true --isolate devices: each virtio device in a process of its own.
    MicrovmIsolate,
    /// qemu-system-x86_64 -M microvm.
    Qemu,
    /// firecracker --no-api --config-file (when on PATH): start-up figures only.
    Firecracker,
    /// The bench's own bare KVM loop (exit loops only).
    Floor,
}

impl Peer {
    /// Every peer, in table order.
    pub const ALL: [Peer; 6] = [
        Peer::MicrovmSeccomp,
        Peer::MicrovmNoSeccomp,
        Peer::MicrovmIsolate,
        Peer::Firecracker,
        Peer::Qemu,
        Peer::Floor,
    ];

    /// Name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Peer::MicrovmSeccomp => "microvm-seccomp-true",
            Peer::MicrovmNoSeccomp => "microvm-seccomp-false",
            Peer::MicrovmIsolate => "microvm-isolate-devices",
            Peer::Qemu => "qemu-microvm",
            Peer::Firecracker => "firecracker",
            Peer::Floor => "kvm-floor",
        }
    }

    /// Whether this peer is microvm (any of its configurations).
    pub fn is_microvm(self) -> bool {
        matches!(
            self,
            Peer::MicrovmSeccomp | Peer::MicrovmNoSeccomp | Peer::MicrovmIsolate
        )
    }

    /// Whether this peer runs `kind`'s exit loop (`microvm-isolate-devices`: only those
    /// that involve a device; Firecracker: none, see [`FIRECRACKER_NO_LOOPS`]).
    pub fn runs_exit_loop(self, kind: &str) -> bool {
        match self {
            Peer::MicrovmIsolate => ISOLATE_KINDS.contains(&kind),
            Peer::Firecracker => false,
            _ => true,
        }
    }
}

/// Finds (or, as root on Debian, installs) QEMU; Err = why it cannot run.
pub fn find_qemu() -> std::result::Result<PathBuf, String> {
    let lookup = || {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("qemu-system-x86_64"))
                .find(|p| p.is_file())
        })
    };
    let qemu = match lookup() {
        Some(q) => q,
        None => {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return Err("qemu-system-x86_64 is not installed and the bench is not root (install Debian's qemu-system-x86)".into());
            }
            eprintln!("bench: installing qemu-system-x86 (apt-get) ...");
            let ok = std::process::Command::new("apt-get")
                .args(["install", "-y", "-q", "qemu-system-x86"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(std::process::Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            match lookup() {
                Some(q) if ok => q,
                _ => return Err("apt-get install qemu-system-x86 failed".into()),
            }
        }
    };
    if !Path::new(QEMU_FIRMWARE).is_file() {
        return Err(format!("{QEMU_FIRMWARE} (Debian's seabios) is missing"));
    }
    Ok(qemu)
}

/// The guest's command line, MiB and vCPUs of `case`.
fn cmdline(case: Case) -> (String, u64, u8) {
    let (kind, n, mem, cpus): (&str, u64, u64, u8) = match case {
        Case::Noop => return ("console=ttyS0 reboot=k".to_string(), 128, 1),
        Case::Exit(kind, n) => (kind, u64::from(n), 128, 1),
        Case::Rss(mem, cpus) => ("none", 0, mem, cpus),
        Case::Dev(kind, bytes) => (kind, bytes, 128, 1),
    };
    (
        format!("console=ttyS0 reboot=k tiny.test=bench tiny.bench={kind}:{n} tiny.cpus={cpus}"),
        mem,
        cpus,
    )
}

/// The guest file of `case`: the do-nothing guest or the tiny guest.
fn guest(o: &Options, case: Case) -> &Path {
    match case {
        Case::Noop => &o.noop,
        _ => &o.vmlinux,
    }
}

/// The command line of `peer` for `case`.
pub fn command(o: &Options, qemu: &Path, peer: Peer, case: Case) -> (PathBuf, Vec<String>) {
    let (cl, mem, cpus) = cmdline(case);
    let kernel = guest(o, case).display().to_string();
    let disk = o.disk.display().to_string();
    let with_disk = matches!(case, Case::Dev(kind, _) if kind.starts_with("blk"));
    match peer {
        Peer::Qemu if case == Case::Noop => {
            // QEMU's defaults for -M microvm (qboot, ACPI), no device but the exit port.
            let mut args = qemu_args(&["-M", "microvm"], mem, cpus);
            args.extend(["-kernel".to_string(), kernel]);
            (qemu.to_path_buf(), args)
        }
        Peer::Firecracker => {
            let prog = on_path("firecracker").unwrap_or_else(|| PathBuf::from("firecracker"));
            let config = firecracker_config_path(o).display().to_string();
            let args = ["--no-api", "--config-file", &config];
            (prog, args.iter().map(|s| s.to_string()).collect())
        }
        Peer::Qemu => {
            let machine = [
                "-M",
                "microvm,acpi=off",
                "-bios",
                QEMU_FIRMWARE,
                "-global",
                "virtio-mmio.force-legacy=false",
            ];
            let mut args = qemu_args(&machine, mem, cpus);
            let rest = [
                "-device",
                "virtio-rng-device",
                "-kernel",
                &kernel,
                "-append",
                &cl,
            ];
            args.extend(rest.iter().map(|s| s.to_string()));
            if with_disk {
                let drive = format!("file={disk},format=raw,if=none,id=d0");
                for a in ["-drive", &drive, "-device", "virtio-blk-device,drive=d0"] {
                    args.push(a.to_string());
                }
            }
            (qemu.to_path_buf(), args)
        }
        _ => {
            let seccomp = if peer == Peer::MicrovmNoSeccomp {
                "false"
            } else {
                "true"
            };
            let mut args = vec!["--kernel".to_string(), kernel];
            if case != Case::Noop {
                // The tiny guest's bench: its PVH entry and virtio-rng (the default) said
                // out loud; the do-nothing guest gets microvm's defaults only.
                for a in ["--boot", "pvh", "--rng", "on"] {
                    args.push(a.into());
                }
            }
            let rest = [
                "--seccomp",
                seccomp,
                "--timings",
                "--memory",
                &mem.to_string(),
                "--cpus",
                &cpus.to_string(),
                "--cmdline",
                &cl,
            ];
            args.extend(rest.iter().map(|s| s.to_string()));
            if peer == Peer::MicrovmIsolate {
                args.push("--isolate".into());
                args.push("devices".into());
            }
            if with_disk {
                args.push("--disk".into());
                args.push(format!("path={disk}"));
            }
            (o.microvm.clone(), args)
        }
    }
}

/// QEMU's arguments common to every case: `machine`, KVM, the host CPU (without
/// arch-capabilities, whose MSR KVM refuses here), memory, vCPUs, no default device, the
/// serial port on stdio and the exit port the guests end with.
fn qemu_args(machine: &[&str], mem: u64, cpus: u8) -> Vec<String> {
    let (mem, cpus) = (mem.to_string(), cpus.to_string());
    let common = [
        "-enable-kvm",
        "-cpu",
        "host,-arch-capabilities",
        "-m",
        &mem,
        "-smp",
        &cpus,
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-serial",
        "stdio",
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
    ];
    machine
        .iter()
        .chain(common.iter())
        .map(|s| s.to_string())
        .collect()
}

/// The file `name` on PATH, if any.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Firecracker's configuration file (next to the JSON): the do-nothing guest.
fn firecracker_config_path(o: &Options) -> PathBuf {
    o.json.with_extension("firecracker.json")
}

/// Finds Firecracker and writes its configuration files (its default machine: no device,
/// `--no-api --config-file`, as its users run it without the API socket). Err = why not.
pub fn find_firecracker(o: &Options) -> std::result::Result<PathBuf, String> {
    let fc = on_path("firecracker").ok_or(
        "firecracker is not on PATH (no Debian package: build it from its public source and put it on PATH)",
    )?;
    let (cl, mem, cpus) = cmdline(Case::Noop);
    let s = crate::json::string;
    let config = format!(
        "{{\"boot-source\": {{\"kernel_image_path\": {}, \"boot_args\": {}}}, \"drives\": [], \"machine-config\": {{\"vcpu_count\": {cpus}, \"mem_size_mib\": {mem}}}}}\n",
        s(&o.noop.display().to_string()),
        s(&cl)
    );
    let path = firecracker_config_path(o);
    std::fs::write(&path, config).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(fc)
}
