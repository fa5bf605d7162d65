//! The bench: peers, cases, interleaved rounds in random order, then [`crate::report`].
//!
//! Every round runs every (peer, case) once, shuffled; warm-up rounds run first and are
//! not recorded. Per-exit figures pair runs of the same round: (t(N) - t(0)) / N.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::floor;
use crate::launch::{self, RunResult};

/// The exit loops of the tiny guest's `bench` scenario (and of the floor).
pub const KINDS: [&str; 5] = [
    "pio-read",
    "pio-write",
    "mmio-read",
    "mmio-write",
    "ioeventfd-notify",
];
/// The interrupt round-trip loop of the tiny guest (microvm and QEMU only: the floor VM
/// has no irqchip and no device).
pub const IRQ_KIND: &str = "irqfd-roundtrip";
/// Why the floor has no irqfd round trip.
pub const IRQ_NO_FLOOR: &str =
    "not applicable: the floor VM has no irqchip and no device to raise an interrupt";

/// The exit loops that involve a device, the only ones `microvm-isolate-devices` runs
/// (besides the irqfd round trip and the device loops): the others never leave the vCPU
/// thread, so they are the same with device threads or processes.
pub const ISOLATE_KINDS: [&str; 1] = ["ioeventfd-notify"];

/// Round trips of the irqfd loop: a tenth of the exits (each is ~20 exits' worth of time).
pub fn irq_rounds(exits: u32) -> u32 {
    (exits / 10).max(1)
}

/// Device throughput loops: (kind, bytes in --quick, bytes otherwise). A figure is bytes
/// over the run's wall time minus a do-nothing run's, so even --quick moves enough for the
/// transfer (~0.2-0.3 s here) to stand well above the boot-time noise of a loaded machine.
pub const DEV_KINDS: [(&str, u64, u64); 5] = [
    ("rng-read", 4 << 20, 8 << 20),
    ("blk-read-4k", 8 << 20, 16 << 20),
    ("blk-read-64k", 64 << 20, 64 << 20),
    ("blk-write-4k", 8 << 20, 16 << 20),
    ("blk-write-64k", 64 << 20, 64 << 20),
];
/// Size of the file-backed disk of the blk loops.
const DISK_SIZE: u64 = 64 << 20;
/// (MiB, vCPUs) of the RSS sweep, besides the 128 MiB / 1 vCPU baseline.
pub const RSS_SWEEP: [(u64, u8); 5] = [(1024, 1), (8192, 1), (128, 4), (128, 16), (128, 32)];
/// Timeout of one VMM run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// QEMU's firmware for `-M microvm` with an MP table (qboot's has no processor entries).
const QEMU_FIRMWARE: &str = "/usr/share/seabios/bios-microvm.bin";

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
    /// The bench's own bare KVM loop (exit loops only).
    Floor,
}

impl Peer {
    /// Every peer, in table order.
    pub const ALL: [Peer; 5] = [
        Peer::MicrovmSeccomp,
        Peer::MicrovmNoSeccomp,
        Peer::MicrovmIsolate,
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
    /// that involve a device).
    pub fn runs_exit_loop(self, kind: &str) -> bool {
        self != Peer::MicrovmIsolate || ISOLATE_KINDS.contains(&kind)
    }
}

/// What one run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Case {
    /// `tiny.bench=<kind>:<n>` at 128 MiB / 1 vCPU; kind "none" is the t(0) baseline.
    Exit(&'static str, u32),
    /// `tiny.bench=none:0` at (MiB, vCPUs).
    Rss(u64, u8),
    /// `tiny.bench=<kind>:<bytes>` of a device loop (blk loops get `--disk`).
    Dev(&'static str, u64),
}

impl Case {
    /// The guest scenario, as the table shows it.
    pub fn scenario(&self) -> String {
        match self {
            Case::Exit(kind, n) => format!("tiny.test=bench tiny.bench={kind}:{n}"),
            Case::Rss(mem, cpus) => {
                format!("tiny.test=bench tiny.bench=none:0 --memory {mem} --cpus {cpus}")
            }
            Case::Dev(kind, bytes) if kind.starts_with("blk") => format!(
                "tiny.test=bench tiny.bench={kind}:{bytes} --disk <{} MiB file>",
                DISK_SIZE >> 20
            ),
            Case::Dev(kind, bytes) => format!("tiny.test=bench tiny.bench={kind}:{bytes}"),
        }
    }
}

/// The bench's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// --quick: fewer rounds and exits, QEMU only for the startup, two exit loops and
    /// the irqfd round trip.
    pub quick: bool,
    /// Recorded rounds.
    pub rounds: usize,
    /// Untimed warm-up rounds.
    pub warmup: usize,
    /// Exits per loop (N).
    pub exits: u32,
    /// Where the JSON goes.
    pub json: PathBuf,
    /// Leave QEMU out (reported as skipped).
    pub no_qemu: bool,
    /// The microvm binary.
    pub microvm: PathBuf,
    /// The tiny guest ELF (with its PVH note).
    pub vmlinux: PathBuf,
    /// The file-backed disk of the blk loops.
    pub disk: PathBuf,
    /// --linux: the stock-kernel boot section in the nested host (crate::linux).
    pub linux: bool,
    /// --linux-only: that section alone.
    pub linux_only: bool,
    /// Recorded rounds of that section (--linux-rounds; 3 with --quick, else 5).
    pub linux_rounds: usize,
}

impl Options {
    /// Parses the bench's arguments (cargo's own `--bench` is ignored).
    pub fn parse(args: &[String], microvm: PathBuf, vmlinux: PathBuf) -> Result<Options> {
        let mut o = Options {
            quick: false,
            rounds: 0,
            warmup: 0,
            exits: 0,
            json: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("microvm-bench.json"),
            no_qemu: false,
            microvm,
            vmlinux,
            disk: PathBuf::new(),
            linux: false,
            linux_only: false,
            linux_rounds: 0,
        };
        let (mut rounds, mut exits, mut linux_rounds) = (None, None, None);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
            match a.as_str() {
                "--bench" => {}
                "--quick" => o.quick = true,
                "--no-qemu" => o.no_qemu = true,
                "--linux" => o.linux = true,
                "--linux-only" => (o.linux, o.linux_only) = (true, true),
                "--linux-rounds" => {
                    linux_rounds = Some(val("--linux-rounds")?.parse().context("--linux-rounds")?)
                }
                "--json" => o.json = PathBuf::from(val("--json")?),
                "--rounds" => rounds = Some(val("--rounds")?.parse().context("--rounds")?),
                "--exits" => exits = Some(val("--exits")?.parse().context("--exits")?),
                "-h" | "--help" => bail!(
                    "usage: cargo bench --bench bench -- [--quick] [--rounds N] [--exits N] [--json PATH] [--no-qemu] [--linux | --linux-only] [--linux-rounds N]"
                ),
                other => bail!("unknown argument {other:?} (try --help)"),
            }
        }
        // Next to the JSON, so that two benches (e.g. parallel tests) never share a disk.
        o.disk = o.json.with_extension("disk.img");
        o.rounds = rounds.unwrap_or(if o.quick { 3 } else { 7 }).max(1);
        o.warmup = 1;
        o.linux_rounds = linux_rounds.unwrap_or(if o.quick { 3 } else { 5 }).max(1);
        o.exits = exits
            .unwrap_or(if o.quick { 20_000 } else { 100_000 })
            .max(1);
        Ok(o)
    }
}

/// One recorded run.
#[derive(Debug, Clone)]
pub enum Sample {
    /// A VMM process.
    Vm(Box<RunResult>),
    /// A floor loop: nanoseconds from the first KVM_RUN to HLT.
    Floor(u64),
}

/// All results: `(peer, case) -> one entry per recorded round` (Err = that run failed).
pub type Results = HashMap<(Peer, Case), Vec<std::result::Result<Sample, String>>>;

/// Whether each peer runs, or why not.
pub type PeerStatus = Vec<(Peer, std::result::Result<String, String>)>;

/// Small xorshift PRNG for the round order (seeded from the clock).
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Fisher-Yates shuffle of `v`.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Finds (or, as root on Debian, installs) QEMU; Err = why it cannot run.
fn find_qemu() -> std::result::Result<PathBuf, String> {
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

fn cmdline(case: Case) -> (String, u64, u8) {
    let (kind, n, mem, cpus): (&str, u64, u64, u8) = match case {
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

/// The command line of `peer` for `case`.
pub fn command(o: &Options, qemu: &Path, peer: Peer, case: Case) -> (PathBuf, Vec<String>) {
    let (cl, mem, cpus) = cmdline(case);
    let kernel = o.vmlinux.display().to_string();
    let disk = o.disk.display().to_string();
    let with_disk = matches!(case, Case::Dev(kind, _) if kind.starts_with("blk"));
    match peer {
        Peer::Qemu => {
            let args = [
                "-M",
                "microvm,acpi=off",
                "-enable-kvm",
                "-cpu",
                "host,-arch-capabilities",
                "-bios",
                QEMU_FIRMWARE,
                "-global",
                "virtio-mmio.force-legacy=false",
                "-m",
                &mem.to_string(),
                "-smp",
                &cpus.to_string(),
                "-nodefaults",
                "-no-user-config",
                "-nographic",
                "-serial",
                "stdio",
                "-no-reboot",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=4",
                "-device",
                "virtio-rng-device",
                "-kernel",
                &kernel,
                "-append",
                &cl,
            ];
            let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
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
            let args = [
                "--kernel",
                &kernel,
                "--boot",
                "pvh",
                "--seccomp",
                seccomp,
                "--timings",
                "--memory",
                &mem.to_string(),
                "--cpus",
                &cpus.to_string(),
                "--rng",
                "on",
                "--cmdline",
                &cl,
            ];
            let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
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

/// Runs a floor case in this process.
fn run_floor(case: Case) -> Result<Sample> {
    let (kind, n) = match case {
        Case::Exit(k, n) => (k, n),
        Case::Rss(..) | Case::Dev(..) => bail!("the floor has no RSS or device case"),
    };
    let kvm = kvm_ioctls::Kvm::new().context("opening /dev/kvm")?;
    let kind = match kind {
        "none" | "pio-read" => floor::Kind::PioRead,
        "pio-write" => floor::Kind::PioWrite,
        "mmio-read" => floor::Kind::MmioRead,
        "mmio-write" => floor::Kind::MmioWrite,
        _ => floor::Kind::Ioeventfd,
    };
    floor::measure(&kvm, kind, n).map(Sample::Floor)
}

/// Runs a VMM case through the launcher and checks the guest passed.
fn run_vm(launcher: &Path, o: &Options, qemu: &Path, peer: Peer, case: Case) -> Result<Sample> {
    let (prog, args) = command(o, qemu, peer, case);
    let r = launch::run(launcher, &prog, &args, RUN_TIMEOUT)?;
    let ok_code = match peer {
        // isa-debug-exit: (0 << 1) | 1; 0 if the guest reset some other way.
        Peer::Qemu => matches!(r.exit_code, Some(0) | Some(1)),
        _ => r.exit_code == Some(0),
    };
    if !ok_code || !r.stdout.contains("tiny: PASS") || r.stdout.contains("tiny: FAIL") {
        bail!("the guest did not pass:\n{}", r.tail());
    }
    Ok(Sample::Vm(Box::new(r)))
}

/// The (peer, case) list of one round.
pub fn jobs(o: &Options, peers: &[Peer]) -> Vec<(Peer, Case)> {
    let mut jobs = Vec::new();
    for &peer in peers {
        jobs.push((peer, Case::Exit("none", 0)));
        for kind in KINDS {
            // QEMU boots through SeaBIOS in KVM's emulator here (seconds per boot), so
            // --quick keeps two of its exit loops (and the irqfd round trip below); the
            // others are reported as skipped.
            if peer == Peer::Qemu && o.quick && !matches!(kind, "pio-read" | "ioeventfd-notify") {
                continue;
            }
            if !peer.runs_exit_loop(kind) {
                continue;
            }
            jobs.push((peer, Case::Exit(kind, o.exits)));
        }
        if peer != Peer::Floor {
            jobs.push((peer, Case::Exit(IRQ_KIND, irq_rounds(o.exits))));
        }
        if peer == Peer::MicrovmSeccomp {
            for (mem, cpus) in RSS_SWEEP {
                jobs.push((peer, Case::Rss(mem, cpus)));
            }
        }
        let devices = matches!(peer, Peer::MicrovmSeccomp | Peer::MicrovmIsolate);
        if devices || (peer == Peer::Qemu && !o.quick) {
            for (kind, quick, full) in DEV_KINDS {
                jobs.push((peer, Case::Dev(kind, if o.quick { quick } else { full })));
            }
        }
    }
    jobs
}

/// Runs warm-up and recorded rounds; returns the results and each peer's status.
pub fn run_rounds(o: &Options, launcher: &Path) -> (Results, PeerStatus) {
    let mut status: PeerStatus = Vec::new();
    let disk = std::fs::File::create(&o.disk).and_then(|f| f.set_len(DISK_SIZE));
    if let Err(e) = disk {
        eprintln!("bench: cannot create {}: {e}", o.disk.display());
    }
    let qemu = if o.no_qemu {
        Err("left out with --no-qemu".to_string())
    } else {
        find_qemu()
    };
    let qemu_path = qemu.clone().unwrap_or_default();
    let mut peers = Vec::new();
    for peer in Peer::ALL {
        let st = match (peer, &qemu) {
            (Peer::Qemu, Err(e)) => Err(e.clone()),
            (Peer::Qemu, Ok(q)) => Ok(format!("{} (-M microvm, SeaBIOS, PVH)", q.display())),
            (Peer::Floor, _) => kvm_ioctls::Kvm::new()
                .map(|_| "kvm-ioctls, 1 vCPU, no irqchip/devices/seccomp".to_string())
                .map_err(|e| format!("cannot open /dev/kvm: {e}")),
            (Peer::MicrovmIsolate, _) => Ok(format!("{} --isolate devices", o.microvm.display())),
            _ => Ok(o.microvm.display().to_string()),
        };
        // The first run is also the peer's availability check.
        let st = st.and_then(|desc| {
            let r = if peer == Peer::Floor {
                run_floor(Case::Exit("pio-read", 10))
            } else {
                run_vm(launcher, o, &qemu_path, peer, Case::Exit("none", 0))
            };
            r.map(|_| desc)
                .map_err(|e| format!("cannot run here: {e:#}"))
        });
        if st.is_ok() {
            peers.push(peer);
        }
        status.push((peer, st));
    }

    let mut rng = Rng(launch::now_ns() | 1);
    let mut results: Results = HashMap::new();
    let total = o.warmup + o.rounds;
    for round in 0..total {
        let mut jobs = jobs(o, &peers);
        rng.shuffle(&mut jobs);
        let warm = round < o.warmup;
        eprintln!(
            "bench: {} {}/{} ({} runs)",
            if warm { "warm-up round" } else { "round" },
            if warm {
                round + 1
            } else {
                round + 1 - o.warmup
            },
            if warm { o.warmup } else { o.rounds },
            jobs.len()
        );
        for (peer, case) in jobs {
            let r = if peer == Peer::Floor {
                run_floor(case)
            } else {
                run_vm(launcher, o, &qemu_path, peer, case)
            };
            if let Err(e) = &r {
                eprintln!("bench: {} {}: {e:#}", peer.name(), case.scenario());
            }
            if !warm {
                results
                    .entry((peer, case))
                    .or_default()
                    .push(r.map_err(|e| format!("{e:#}")));
            }
        }
    }
    (results, status)
}

/// Runs the whole bench with `args`; returns the JSON path.
pub fn bench_main(args: &[String]) -> Result<PathBuf> {
    let o = Options::parse(
        args,
        PathBuf::from(env!("CARGO_BIN_EXE_microvm")),
        PathBuf::from(env!("MICROVM_TINY_VMLINUX")),
    )?;
    if let Some(dir) = o.json.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let (results, status, mut figs) = if o.linux_only {
        let why = || Err("left out with --linux-only".to_string());
        let status: PeerStatus = Peer::ALL.iter().map(|&p| (p, why())).collect();
        (HashMap::new(), status, Vec::new())
    } else {
        let launcher = launch::build_launcher(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")))?;
        let (results, status) = run_rounds(&o, &launcher);
        let figs = crate::report::figures(&o, &results, &status);
        (results, status, figs)
    };
    drop(results);
    if !o.linux_only {
        print!("{}", crate::report::table(&o, &status, &figs));
    }
    let linux = crate::linux::section(&o, launch::now_ns());
    let linux_figs = crate::linux_report::figures(&linux);
    print!("{}", crate::linux_report::table(&linux, &linux_figs));
    figs.extend(linux_figs);
    let member = crate::linux_report::json_member(&linux);
    let doc = crate::report::to_json(&o, &status, &figs, &member);
    crate::json::parse(&doc)
        .map_err(|e| anyhow::anyhow!("internal: the JSON is malformed: {e}"))?;
    std::fs::write(&o.json, doc).with_context(|| format!("writing {}", o.json.display()))?;
    let _ = std::fs::remove_file(&o.disk);
    println!("\nJSON: {}", o.json.display());
    Ok(o.json)
}
