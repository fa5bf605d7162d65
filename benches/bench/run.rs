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
pub use crate::peers::{command, Peer, FIRECRACKER_NO_LOOPS, FIRECRACKER_NO_TINY};
use crate::peers::{find_firecracker, find_qemu};

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
pub const DISK_SIZE: u64 = 64 << 20;
/// (MiB, vCPUs) of the RSS sweep, besides the 128 MiB / 1 vCPU baseline.
pub const RSS_SWEEP: [(u64, u8); 5] = [(1024, 1), (8192, 1), (128, 4), (128, 16), (128, 32)];
/// Timeout of one VMM run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// What one run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Case {
    /// The do-nothing guest (`noop-vmlinux`: "noop" on COM1, then the VM's exit) at
    /// 128 MiB / 1 vCPU, every VMM with its defaults: the start-up figures.
    Noop,
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
            Case::Noop => "noop-vmlinux (writes \"noop\", exits)".to_string(),
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
    /// The do-nothing guest ELF (with its PVH note).
    pub noop: PathBuf,
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
    pub fn parse(
        args: &[String],
        microvm: PathBuf,
        vmlinux: PathBuf,
        noop: PathBuf,
    ) -> Result<Options> {
        let mut o = Options {
            quick: false,
            rounds: 0,
            warmup: 0,
            exits: 0,
            json: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("microvm-bench.json"),
            no_qemu: false,
            microvm,
            vmlinux,
            noop,
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

/// Runs a floor case in this process.
fn run_floor(case: Case) -> Result<Sample> {
    let (kind, n) = match case {
        Case::Exit(k, n) => (k, n),
        Case::Noop | Case::Rss(..) | Case::Dev(..) => {
            bail!("the floor has no start-up, RSS or device case")
        }
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
    let passed = match case {
        Case::Noop => r.stdout.contains("noop\n"),
        _ => r.stdout.contains("tiny: PASS") && !r.stdout.contains("tiny: FAIL"),
    };
    if !ok_code || !passed {
        bail!("the guest did not pass:\n{}", r.tail());
    }
    Ok(Sample::Vm(Box::new(r)))
}

/// The (peer, case) list of one round.
pub fn jobs(o: &Options, peers: &[Peer]) -> Vec<(Peer, Case)> {
    let mut jobs = Vec::new();
    for &peer in peers {
        if peer != Peer::Floor {
            jobs.push((peer, Case::Noop));
        }
        if peer == Peer::Firecracker {
            continue;
        }
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
        if !matches!(peer, Peer::Floor | Peer::Firecracker) {
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
            (Peer::Qemu, Ok(q)) => Ok(format!(
                "{} -M microvm: the do-nothing guest with its defaults (qboot, ACPI), the tiny guest with SeaBIOS and acpi=off",
                q.display()
            )),
            (Peer::Firecracker, _) => find_firecracker(o)
                .map(|fc| format!("{} --no-api --config-file (its defaults: no device)", fc.display())),
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
                run_vm(launcher, o, &qemu_path, peer, Case::Noop).and_then(|_| match peer {
                    Peer::Firecracker => Ok(Sample::Floor(0)),
                    _ => run_vm(launcher, o, &qemu_path, peer, Case::Exit("none", 0)),
                })
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
        PathBuf::from(env!("MICROVM_NOOP_VMLINUX")),
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
