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
}

/// Most vCPUs a VM may have.
pub const MAX_VCPUS: u8 = 32;

/// Default kernel command line: serial console, reboot through the keyboard controller
/// (which microvm treats as "the guest is done"), no PCI probing (there is no PCI bus).
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=1 pci=off nomodule";
