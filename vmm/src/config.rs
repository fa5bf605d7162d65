//! What the VMM is asked to build, independent of how it was asked (CLI, tests).

use std::path::PathBuf;

/// Where the guest kernel comes from.
#[derive(Debug, Clone)]
pub enum KernelSource {
    /// A bzImage or ELF vmlinux file on the host.
    File(PathBuf),
    /// An image built into the binary (the tiny guest).
    Embedded {
        /// Name used in messages.
        name: &'static str,
        /// The image bytes.
        bytes: &'static [u8],
    },
}

impl KernelSource {
    /// A name for messages: the path or the embedded image's name.
    pub fn describe(&self) -> String {
        match self {
            KernelSource::File(p) => p.display().to_string(),
            KernelSource::Embedded { name, .. } => format!("built-in {name}"),
        }
    }
}

/// The complete description of a VM to boot.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Guest kernel.
    pub kernel: KernelSource,
    /// Optional initramfs file.
    pub initramfs: Option<PathBuf>,
    /// Kernel command line.
    pub cmdline: String,
    /// Number of vCPUs (1..=MAX_VCPUS).
    pub cpus: u8,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Seccomp mode for every thread.
    pub seccomp: seccomp::Mode,
    /// virtio-blk disks, in command-line order.
    pub disks: Vec<DiskConfig>,
    /// virtio-net devices, in command-line order.
    pub nets: Vec<NetConfig>,
    /// Whether to add a virtio-rng device.
    pub rng: bool,
    /// How the boot vCPU enters the kernel (`--boot`); `None` chooses from the kernel:
    /// the PVH entry when an ELF carries one, the 64-bit Linux entry otherwise.
    pub boot: Option<BootProtocol>,
    /// Whether to give the guest ACPI tables (`--acpi`); without them, virtio devices are
    /// announced on the command line and CPUs only in the MP table.
    pub acpi: bool,
    /// Whether to give the VM KVM's in-kernel PIT (i8254) and its port 0x61 (`--pit`).
    /// Linux on KVM never uses it (KVM offers the TSC-deadline timer and ARAT); it costs
    /// grace periods at start and teardown (docs/performance.md).
    pub pit: bool,
    /// `--jail`: run the whole VMM in a jail ([`crate::jail`]); `None` runs it as started.
    pub jail: Option<JailConfig>,
    /// `--isolate`: device threads (default) or a process per virtio device
    /// ([`crate::isolate`]).
    pub isolate: Isolate,
}

/// `--isolate threads|devices`: where each virtio device runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolate {
    /// A thread of the VMM per device, sharing its address space.
    #[default]
    Threads,
    /// A process per device, forked before it touches guest data, sharing only guest RAM
    /// (a sealed memfd), its backend fd and its eventfds; register accesses are proxied.
    Devices,
}

impl std::str::FromStr for Isolate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "threads" => Ok(Isolate::Threads),
            "devices" => Ok(Isolate::Devices),
            other => Err(format!("{other:?}: expected threads or devices")),
        }
    }
}

impl std::fmt::Display for Isolate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolate::Threads => "threads",
            Isolate::Devices => "devices",
        })
    }
}

/// `--jail` and its options: what the jail ([`crate::jail`]) gives the VMM.
#[derive(Debug, Clone, Default)]
pub struct JailConfig {
    /// `--jail-uid`: the uid the VMM runs as. Default: 65534 (nobody) for root, the
    /// caller's own uid otherwise (the only one an unprivileged caller can map).
    pub uid: Option<u32>,
    /// `--jail-gid`: likewise for the gid.
    pub gid: Option<u32>,
    /// `--jail-nofile`: RLIMIT_NOFILE (soft and hard); default [`JailConfig::DEFAULT_NOFILE`].
    pub nofile: Option<u64>,
    /// `--jail-nproc`: RLIMIT_NPROC (soft and hard); default unlimited (it counts every
    /// process of the uid on the host, not only microvm's threads).
    pub nproc: Option<u64>,
    /// `--jail-cgroup`: a delegated cgroup v2 directory the VMM moves into.
    pub cgroup: Option<PathBuf>,
    /// `--jail-memory-max`: written to the cgroup's memory.max.
    pub memory_max: Option<String>,
    /// `--jail-cpu-max`: written to the cgroup's cpu.max ("QUOTA PERIOD" or "max PERIOD").
    pub cpu_max: Option<String>,
    /// `--jail-pids-max`: written to the cgroup's pids.max.
    pub pids_max: Option<String>,
}

impl JailConfig {
    /// RLIMIT_NOFILE without `--jail-nofile`: far above the few dozen fds a VM uses.
    pub const DEFAULT_NOFILE: u64 = 1024;
}

/// `--boot linux|pvh`: how the boot vCPU enters the kernel. Without `--boot`, microvm
/// takes the PVH entry of an ELF that has one and the Linux entry otherwise, as Firecracker
/// and Cloud Hypervisor do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProtocol {
    /// Long mode at the 64-bit entry, `boot_params` in RSI.
    Linux,
    /// Xen PVH: 32-bit protected mode, paging off, at the ELF's `XEN_ELFNOTE_PHYS32_ENTRY`,
    /// `hvm_start_info` in EBX.
    Pvh,
}

impl std::str::FromStr for BootProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linux" => Ok(BootProtocol::Linux),
            "pvh" => Ok(BootProtocol::Pvh),
            other => Err(format!("{other:?}: expected linux or pvh")),
        }
    }
}

impl std::fmt::Display for BootProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BootProtocol::Linux => "linux",
            BootProtocol::Pvh => "pvh",
        })
    }
}

/// `--disk path=FILE[,readonly=on|off][,bw=BYTES/s][,ops=OPS/s]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// Raw image file.
    pub path: PathBuf,
    /// Opened O_RDONLY and offered with VIRTIO_BLK_F_RO.
    pub read_only: bool,
    /// `bw=` and `ops=`: the disk's request rate limit.
    pub limit: RateLimit,
}

/// `--net tap=NAME[,mac=aa:bb:cc:dd:ee:ff][,bw=BYTES/s][,offload=on|off]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Existing TAP interface to attach to.
    pub tap: String,
    /// Guest MAC; default 06:00:00:00:00:<index+1>.
    pub mac: Option<[u8; 6]>,
    /// `bw=`: Ethernet bytes per second, for tx and for rx each (0: unlimited).
    pub bw: u64,
    /// `offload=`: offer the guest tx checksum and TSO offloads (default on).
    pub offload: bool,
}

/// A device's token-bucket rate limit (docs/devices.md, "Rate limits"): each bucket holds
/// one second's worth and starts full; 0 = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// `bw=`: bytes per second.
    pub bytes_per_sec: u64,
    /// `ops=`: requests per second.
    pub ops_per_sec: u64,
}

impl RateLimit {
    /// Whether anything is limited.
    pub fn is_limited(&self) -> bool {
        self.bytes_per_sec != 0 || self.ops_per_sec != 0
    }
}

/// Parses a rate `key=value`: a decimal number with an optional `K`, `M` or `G` suffix
/// (powers of 1024); 0 means unlimited.
pub fn parse_rate(key: &str, v: &str) -> Result<u64, String> {
    let bad = || {
        format!("{key}={v:?}: expected a number per second, with an optional K, M or G suffix (x1024), e.g. {key}=1M")
    };
    let (digits, mult) = match v.as_bytes().last() {
        Some(b'K' | b'k') => (&v[..v.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&v[..v.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{key}={v:?} is too large"))
}

/// Splits `key=value,key=value`, refusing keys not in `known` and repeated keys.
fn parse_kv<'a>(s: &'a str, known: &[&str]) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not key=value"))?;
        if !known.contains(&k) {
            return Err(format!("unknown key {k:?} (expected {})", known.join(", ")));
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("key {k:?} given twice"));
        }
        out.push((k, v));
    }
    Ok(out)
}

impl std::str::FromStr for DiskConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut path = None;
        let mut read_only = false;
        let mut limit = RateLimit::default();
        for (k, v) in parse_kv(s, &["path", "readonly", "bw", "ops"])? {
            match (k, v) {
                ("path", "") => return Err("path is empty".into()),
                ("path", p) => path = Some(PathBuf::from(p)),
                ("readonly", "on") => read_only = true,
                ("readonly", "off") => read_only = false,
                ("bw", v) => limit.bytes_per_sec = parse_rate(k, v)?,
                ("ops", v) => limit.ops_per_sec = parse_rate(k, v)?,
                (_, other) => return Err(format!("readonly={other:?}: expected on or off")),
            }
        }
        let path = path.ok_or("missing path=FILE")?;
        Ok(DiskConfig {
            path,
            read_only,
            limit,
        })
    }
}

impl std::str::FromStr for NetConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut tap = None;
        let mut mac = None;
        let mut bw = 0;
        let mut offload = true;
        for (k, v) in parse_kv(s, &["tap", "mac", "bw", "offload"])? {
            match k {
                "tap" if v.is_empty() || v.len() > 15 => {
                    return Err(format!("tap={v:?}: an interface name is 1 to 15 bytes"))
                }
                "tap" => tap = Some(v.to_string()),
                "bw" => bw = parse_rate(k, v)?,
                "offload" => {
                    offload = match v {
                        "on" => true,
                        "off" => false,
                        _ => return Err(format!("offload={v:?}: expected on or off")),
                    }
                }
                _ => mac = Some(parse_mac(v)?),
            }
        }
        let tap = tap.ok_or("missing tap=NAME")?;
        Ok(NetConfig {
            tap,
            mac,
            bw,
            offload,
        })
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`; refuses multicast addresses (bit 0 of the first byte).
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("mac={s:?}: expected six hex bytes like 06:00:00:00:00:01");
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        let p = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
        *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    if mac[0] & 1 != 0 {
        return Err(format!("mac={s:?} is a multicast address"));
    }
    Ok(mac)
}

/// Most vCPUs a VM may have.
pub const MAX_VCPUS: u8 = 32;

/// Default kernel command line: serial console, reboot through the keyboard controller
/// (which microvm treats as "the guest is done"), no PCI probing (there is no PCI bus).
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=1 pci=off nomodule";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_k_m_g_suffixes_and_zero_is_unlimited() {
        assert_eq!(parse_rate("bw", "1000"), Ok(1000));
        assert_eq!(parse_rate("bw", "512K"), Ok(512 << 10));
        assert_eq!(parse_rate("bw", "1M"), Ok(1 << 20));
        assert_eq!(parse_rate("bw", "2g"), Ok(2 << 30));
        assert_eq!(parse_rate("ops", "0"), Ok(0));
        for bad in [
            "",
            "M",
            "1.5M",
            "-1",
            "1T",
            "1 M",
            "0x10",
            "99999999999999999999",
        ] {
            assert!(parse_rate("bw", bad).is_err(), "{bad:?}");
        }
        assert!(parse_rate("bw", "99999999999G")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn disk_and_net_take_rate_keys() {
        let d: DiskConfig = "path=/d.img,bw=1M,ops=100".parse().unwrap();
        assert_eq!(
            d.limit,
            RateLimit {
                bytes_per_sec: 1 << 20,
                ops_per_sec: 100
            }
        );
        assert!(d.limit.is_limited());
        let d: DiskConfig = "path=/d.img".parse().unwrap();
        assert!(!d.limit.is_limited());
        let n: NetConfig = "tap=t0,bw=512K".parse().unwrap();
        assert_eq!(n.bw, 512 << 10);
        assert!(n.offload, "tx offloads are on by default");
        let n: NetConfig = "tap=t0,offload=off".parse().unwrap();
        assert!(!n.offload);
        assert!("tap=t0,offload=yes"
            .parse::<NetConfig>()
            .unwrap_err()
            .contains("expected on or off"));
        assert!("path=/d.img,bw=fast".parse::<DiskConfig>().is_err());
        assert!("tap=t0,ops=5"
            .parse::<NetConfig>()
            .unwrap_err()
            .contains("unknown key"));
    }
}
