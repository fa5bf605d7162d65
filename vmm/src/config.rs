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
    /// How the boot vCPU enters the kernel (`--boot`).
    pub boot: BootProtocol,
}

/// `--boot linux|pvh`: how the boot vCPU enters the kernel.
///
/// The default is the Linux 64-bit boot protocol for both bzImage and ELF vmlinux, even when
/// an ELF also carries a PVH note: it is the path verified with real Linux guests on hosts
/// without VT-x, where the extra 32-bit start-up code of PVH runs in KVM's emulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BootProtocol {
    /// Long mode at the 64-bit entry, `boot_params` in RSI.
    #[default]
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

/// `--disk path=FILE[,readonly=on|off]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// Raw image file.
    pub path: PathBuf,
    /// Opened O_RDONLY and offered with VIRTIO_BLK_F_RO.
    pub read_only: bool,
}

/// `--net tap=NAME[,mac=aa:bb:cc:dd:ee:ff]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Existing TAP interface to attach to.
    pub tap: String,
    /// Guest MAC; default 06:00:00:00:00:<index+1>.
    pub mac: Option<[u8; 6]>,
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
        for (k, v) in parse_kv(s, &["path", "readonly"])? {
            match (k, v) {
                ("path", "") => return Err("path is empty".into()),
                ("path", p) => path = Some(PathBuf::from(p)),
                ("readonly", "on") => read_only = true,
                ("readonly", "off") => read_only = false,
                (_, other) => return Err(format!("readonly={other:?}: expected on or off")),
            }
        }
        let path = path.ok_or("missing path=FILE")?;
        Ok(DiskConfig { path, read_only })
    }
}

impl std::str::FromStr for NetConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut tap = None;
        let mut mac = None;
        for (k, v) in parse_kv(s, &["tap", "mac"])? {
            match k {
                "tap" if v.is_empty() || v.len() > 15 => {
                    return Err(format!("tap={v:?}: an interface name is 1 to 15 bytes"))
                }
                "tap" => tap = Some(v.to_string()),
                _ => mac = Some(parse_mac(v)?),
            }
        }
        let tap = tap.ok_or("missing tap=NAME")?;
        Ok(NetConfig { tap, mac })
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
