//! The Linux section (`--linux`): Debian's stock cloud kernel booted by microvm and by its
//! peers inside the nested host (resources/nested-host.sh), in interleaved rounds in random
//! order after a warm-up round. One nested-host boot runs a generated shell script of all
//! rounds; each guest boot goes through `boottime` (benches/bench/boottime.c), which times
//! exec -> "MVTEST init=start" (the guest's /init prints it first thing) and exec -> exit.
//! Parsing and figures: [`crate::linux_report`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::linux_report::{self, Boot};
use crate::peers::on_path;
use crate::run::Options;

/// What every guest boot runs: the scenario init's `info` (CPUs, devices, hwrng), its
/// `perf` (virtio-blk and virtio-net throughput, ping), then `poweroff -f`.
pub const CMDLINE: &str = "console=ttyS0 reboot=k panic=1 pci=off mvtest=info,perf mvarg=8";
/// The scenario init's last line of a boot that passed.
pub const END_OK: &str = "MVTEST end=info,perf rc=0";
/// The line the guest's /init prints before anything else.
pub const MARKER: &str = "MVTEST init=start";
/// vCPUs and MiB of every guest.
pub const CPUS: u32 = 2;
/// Guest memory, MiB.
pub const MEMORY: u32 = 256;
/// One guest boot's safety net inside the nested host, seconds (15-25 s each normally).
const BOOT_TIMEOUT_S: u64 = 150;
/// QEMU microvm's default firmware (qboot; Debian's qemu-system-data) and the option ROM it
/// loads for -kernel.
const QEMU_DATA: [&str; 2] = [
    "/usr/share/qemu/bios-microvm.bin",
    "/usr/share/qemu/linuxboot_dma.bin",
];

/// Who boots the guest in this section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinuxPeer {
    /// microvm with its defaults (--seccomp true, ACPI on).
    Microvm,
    /// qemu-system-x86_64 -M microvm with its defaults (qboot, ACPI on).
    Qemu,
    /// firecracker --no-api --config-file (only when on PATH).
    Firecracker,
}

impl LinuxPeer {
    /// Every peer, in table order.
    pub const ALL: [LinuxPeer; 3] = [LinuxPeer::Microvm, LinuxPeer::Qemu, LinuxPeer::Firecracker];

    /// Name in the table, the JSON and the script.
    pub fn name(self) -> &'static str {
        match self {
            LinuxPeer::Microvm => "microvm",
            LinuxPeer::Qemu => "qemu-microvm",
            LinuxPeer::Firecracker => "firecracker",
        }
    }

    /// The shell command of this peer inside the nested host (`$CL` is [`CMDLINE`]).
    pub fn command(self) -> String {
        let dev = "-drive id=d0,file=/tmp/blank.img,format=raw,if=none -device virtio-blk-device,drive=d0 \
                   -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-device,netdev=n0 \
                   -device virtio-rng-device";
        match self {
            LinuxPeer::Microvm => format!(
                "/bin/microvm --kernel /guest/bzImage-cloud --initramfs /guest/initramfs-cloud.cpio.gz \
                 --cpus {CPUS} --memory {MEMORY} --disk path=/tmp/blank.img --net tap=tap0 --cmdline \"$CL\""
            ),
            LinuxPeer::Qemu => format!(
                "/usr/bin/qemu-system-x86_64 -M microvm -enable-kvm -cpu host -smp {CPUS} -m {MEMORY} \
                 -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
                 -kernel /guest/bzImage-cloud -initrd /guest/initramfs-cloud.cpio.gz -append \"$CL\" {dev}"
            ),
            LinuxPeer::Firecracker => {
                "/usr/bin/firecracker --no-api --config-file /share/firecracker.json".to_string()
            }
        }
    }
}

/// Firecracker's configuration: the same guest, but its ELF vmlinux (Firecracker's x86 loader
/// takes no bzImage) and `reboot -f` at the end (it ends on the i8042 reset).
fn firecracker_config() -> String {
    format!(
        r#"{{
  "boot-source": {{"kernel_image_path": "/guest/vmlinux-cloud",
    "initrd_path": "/guest/initramfs-cloud.cpio.gz", "boot_args": "{CMDLINE} mvend=reboot"}},
  "drives": [{{"drive_id": "d0", "path_on_host": "/tmp/blank.img", "is_root_device": false,
    "is_read_only": false}}],
  "network-interfaces": [{{"iface_id": "eth0", "host_dev_name": "tap0"}}],
  "entropy": {{}},
  "machine-config": {{"vcpu_count": {CPUS}, "mem_size_mib": {MEMORY}}}
}}
"#
    )
}

/// One recorded guest boot (warm-up boots are not recorded).
#[derive(Debug, Clone)]
pub struct LinuxRun {
    /// Who booted it.
    pub peer: LinuxPeer,
    /// What it measured, or why it failed.
    pub result: std::result::Result<Boot, String>,
    /// The `perf` scenario's figures its console printed (failed boots included).
    pub io: Vec<(&'static str, f64)>,
}

/// What the section did.
#[derive(Debug, Clone)]
pub struct LinuxOutcome {
    /// Ok(where it ran) or Err(why the section did not run).
    pub status: std::result::Result<String, String>,
    /// Recorded rounds (after the warm-up rounds).
    pub rounds: usize,
    /// Warm-up rounds.
    pub warmup: usize,
    /// Whether each peer ran, or why not.
    pub peers: Vec<(LinuxPeer, std::result::Result<String, String>)>,
    /// Every recorded boot.
    pub runs: Vec<LinuxRun>,
    /// Where the guest consoles were kept.
    pub logs: PathBuf,
    /// The machine's `uptime` before and after the nested host ran.
    pub load: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `--file SRC:DEST` pairs for a dynamically linked program: itself at `dest` and every
/// library `ldd` names at the path it names.
fn with_libraries(prog: &Path, dest: &str) -> Result<Vec<String>> {
    let mut files = vec![format!("{}:{dest}", prog.display())];
    let out = Command::new("ldd")
        .arg(prog)
        .output()
        .context("running ldd")?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            let real = std::fs::canonicalize(p).with_context(|| format!("library {p}"))?;
            files.push(format!("{}:{p}", real.display()));
        }
    }
    Ok(files)
}

/// QEMU's `--file` pairs, or why QEMU cannot be a peer.
fn qemu_files() -> std::result::Result<(PathBuf, Vec<String>), String> {
    let qemu = on_path("qemu-system-x86_64")
        .ok_or("qemu-system-x86_64 is not installed (Debian's qemu-system-x86)")?;
    let mut files =
        with_libraries(&qemu, "/usr/bin/qemu-system-x86_64").map_err(|e| format!("{e:#}"))?;
    for f in QEMU_DATA {
        let real = std::fs::canonicalize(f)
            .map_err(|e| format!("{f} (Debian's qemu-system-data): {e}"))?;
        files.push(format!("{}:{f}", real.display()));
    }
    Ok((qemu, files))
}

/// The rounds' script: (round, peer) jobs in the given order; round < warmup is a warm-up.
pub fn script(jobs: &[(usize, LinuxPeer)], warmup: usize) -> String {
    let mut s = format!(
        "set -u\nCL='{CMDLINE}'\nmkdir -p /share/logs\n\
         dd if=/dev/zero of=/tmp/blank.img bs=1048576 count=32 2>/dev/null\n\
         dd if=/dev/zero of=/tmp/src.bin bs=1048576 count=8 2>/dev/null\n\
         # helpers: the host ends of the perf scenario's TCP streams, for one boot.\n\
         helpers() {{\n  rm -f /tmp/hold; mkfifo /tmp/hold; sleep {BOOT_TIMEOUT_S} > /tmp/hold & H1=$!\n\
         \x20 nc -l -p 5001 < /tmp/hold > /dev/null 2>&1 & H2=$!\n\
         \x20 nc -l -p 5003 < /tmp/src.bin > /dev/null 2>&1 & H3=$!\n}}\n\
         unhelpers() {{ kill $H1 $H2 $H3 2>/dev/null; wait $H1 $H2 $H3 2>/dev/null; }}\n\
         echo \"@@LINUX host $(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)\"\n\
         dead=''; fails=''\n\
         # job ROUND PEER WARM 'CMD': one timed boot; a peer with two failed boots is not run again.\n\
         job() {{\n  r=$1; p=$2; w=$3; eval \"set -- $4\"\n\
         \x20 case \" $dead \" in *\" $p \"*) echo \"@@LINUX round=$r peer=$p skipped\"; return ;; esac\n\
         \x20 helpers\n\
         \x20 line=$(/bench/boottime {BOOT_TIMEOUT_S} '{MARKER}' /tmp/out /tmp/err \"$@\")\n\
         \x20 unhelpers\n\
         \x20 echo \"@@LINUX round=$r peer=$p $line\"\n\
         \x20 tr -d '\\r' < /tmp/out > /share/logs/r$r-$p.out; cp /tmp/err /share/logs/r$r-$p.err\n\
         \x20 grep -q '{END_OK}' /share/logs/r$r-$p.out && return 0\n\
         \x20 case \" $fails \" in *\" $p \"*) dead=\"$dead $p\" ;; esac\n\
         \x20 fails=\"$fails $p\"\n\
         \x20 return 0\n}}\n"
    );
    for &(round, peer) in jobs {
        let warm = u8::from(round < warmup);
        let _ = writeln!(
            s,
            "job {round} {} {warm} '{}'",
            peer.name(),
            peer.command().replace('\'', "'\\''")
        );
    }
    s
}

/// Runs the section (or says why not).
pub fn section(o: &Options, seed: u64) -> LinuxOutcome {
    let mut out = LinuxOutcome {
        status: Err(String::new()),
        rounds: o.linux_rounds,
        warmup: 1,
        peers: Vec::new(),
        runs: Vec::new(),
        logs: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("microvm-bench-linux"),
        load: String::new(),
    };
    if !o.linux {
        out.status = Err("not requested: run with --linux (several minutes)".into());
        return out;
    }
    match run_section(o, seed, &mut out) {
        Ok(()) => {}
        Err(e) => out.status = Err(format!("{e:#}")),
    }
    out
}

fn run_section(o: &Options, seed: u64, out: &mut LinuxOutcome) -> Result<()> {
    eprintln!("bench: Linux section: making the guest (resources/make-linux-guest.sh) ...");
    let guest = repo().join("resources/out/linux");
    let ok = Command::new(repo().join("resources/make-linux-guest.sh"))
        .arg(&guest)
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("resources/make-linux-guest.sh failed (see its messages above)");
    }
    let share = &out.logs.clone();
    let _ = std::fs::remove_dir_all(share);
    std::fs::create_dir_all(share).with_context(|| format!("creating {}", share.display()))?;
    let boottime = build_boottime(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")))?;

    let mut files = vec![format!("{}:/bench/boottime", boottime.display())];
    for f in ["bzImage-cloud", "initramfs-cloud.cpio.gz"] {
        files.push(format!("{}:/guest/{f}", guest.join(f).display()));
    }
    let mut peers = Vec::new();
    for peer in LinuxPeer::ALL {
        let st = match peer {
            LinuxPeer::Microvm => Ok(format!("{} (defaults: --seccomp true, ACPI)", o.microvm.display())),
            LinuxPeer::Qemu => qemu_files().map(|(q, f)| {
                files.extend(f);
                format!("{} -M microvm (defaults: qboot, ACPI), -enable-kvm -cpu host", q.display())
            }),
            LinuxPeer::Firecracker => match on_path("firecracker") {
                None => Err("firecracker is not on PATH (no Debian package; build it from its public source and put it on PATH)".into()),
                Some(fc) => {
                    files.push(format!("{}:/usr/bin/firecracker", fc.display()));
                    files.push(format!("{}:/guest/vmlinux-cloud", guest.join("vmlinux-cloud").display()));
                    std::fs::write(share.join("firecracker.json"), firecracker_config())?;
                    Ok(format!("{} --no-api (vmlinux-cloud, ends with reboot -f)", fc.display()))
                }
            },
        };
        if st.is_ok() {
            peers.push(peer);
        }
        out.peers.push((peer, st));
    }

    let mut rng = crate::run::Rng(seed | 1);
    let mut jobs = Vec::new();
    for round in 0..out.warmup + out.rounds {
        let mut r: Vec<(usize, LinuxPeer)> = peers.iter().map(|&p| (round, p)).collect();
        rng.shuffle(&mut r);
        jobs.extend(r);
    }
    std::fs::write(share.join("bench.sh"), script(&jobs, out.warmup))?;
    out.load = format!("before: {}", uptime());
    // A few boots may take their whole BOOT_TIMEOUT_S; a wedged nested host must not hold
    // the bench (and the machine-wide lock) for long.
    let timeout = 300 + jobs.len() as u64 * 75;
    let mut cmd = Command::new(repo().join("resources/nested-host.sh"));
    cmd.args(["run", "--timeout", &timeout.to_string(), "--share"])
        .arg(share)
        .arg("--microvm")
        .arg(&o.microvm);
    for f in &files {
        cmd.args(["--file", f]);
    }
    cmd.args(["--", "sh", "/share/bench.sh"]);
    eprintln!(
        "bench: Linux section: {} boots in the nested host ({} warm-up + {} rounds; {}) ...",
        jobs.len(),
        out.warmup,
        out.rounds,
        out.load
    );
    let res = cmd.stdin(Stdio::null()).stderr(Stdio::inherit()).output();
    let res = res.context("running resources/nested-host.sh")?;
    out.load = format!("{}; after: {}", out.load, uptime());
    let stdout = String::from_utf8_lossy(&res.stdout);
    let boots = stdout
        .lines()
        .filter(|l| l.starts_with("@@LINUX round="))
        .count();
    if !res.status.success() && boots == 0 {
        bail!(
            "the nested host failed ({}) before any boot was reported: {}",
            res.status,
            stdout.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    }
    let host = stdout
        .lines()
        .find_map(|l| l.strip_prefix("@@LINUX host "))
        .unwrap_or("?");
    let mut st = format!(
        "in the nested host (resources/nested-host.sh: QEMU TCG with AMD-V, kernel {host})"
    );
    if !res.status.success() {
        // nested-host.sh gives back what the script printed up to a time-out: keep it.
        let _ = write!(
            st,
            "; PARTIAL: the nested host failed ({}) after {boots} of {} boots",
            res.status,
            jobs.len()
        );
    }
    out.status = Ok(st);
    let _ = std::fs::write(share.join("logs/results.txt"), stdout.as_bytes());
    linux_report::collect(out, &stdout, share);
    Ok(())
}

/// The machine's `uptime` line (its load averages), trimmed.
fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Compiles the boot timer (static: the nested host has no libc of its own) into `dir`.
fn build_boottime(dir: &Path) -> Result<PathBuf> {
    let src = repo().join("benches/bench/boottime.c");
    let exe = dir.join("microvm-bench-boottime");
    let ok = Command::new("cc")
        .args(["-O2", "-Wall", "-static", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .context("running cc to build the boot timer (install gcc)")?
        .success();
    if !ok {
        bail!(
            "cc -static could not build {} (needs libc6-dev)",
            src.display()
        );
    }
    Ok(exe)
}
