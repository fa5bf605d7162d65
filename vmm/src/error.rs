//! Errors of the vmm crate. Every variant names what was being done and on what.

use std::path::PathBuf;

/// Errors building or running a VM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// /dev/kvm is missing.
    #[error("cannot open /dev/kvm: it does not exist (is KVM enabled in the host kernel and the kvm module loaded?)")]
    KvmMissing,
    /// /dev/kvm exists but we may not open it.
    #[error("cannot open /dev/kvm: permission denied (add your user to the group owning /dev/kvm, usually 'kvm', or grant access with an ACL)")]
    KvmPermission,
    /// Any other failure opening /dev/kvm.
    #[error("cannot open /dev/kvm: {0}")]
    KvmOpen(kvm_ioctls::Error),
    /// The host KVM lacks something microvm needs.
    #[error("the host KVM lacks a capability microvm needs: {0}")]
    MissingCapability(&'static str),
    /// A KVM ioctl failed.
    #[error("{name} failed: {source}")]
    Kvm {
        /// The ioctl, e.g. "KVM_CREATE_VM".
        name: &'static str,
        /// The errno KVM returned.
        source: kvm_ioctls::Error,
    },
    /// A vCPU ioctl failed.
    #[error("vcpu{vcpu}: {name} failed: {source}")]
    VcpuIoctl {
        /// vCPU index.
        vcpu: u8,
        /// The ioctl.
        name: &'static str,
        /// The errno KVM returned.
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be set up.
    #[error("guest memory ({mib} MiB): {reason}")]
    Memory {
        /// Requested size.
        mib: u64,
        /// What went wrong.
        reason: String,
    },
    /// The kernel image could not be read.
    #[error("cannot read kernel {path}: {source}")]
    KernelRead {
        /// Path or name of the image.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The kernel image is not something microvm can boot.
    #[error("kernel {path}: {reason}")]
    KernelInvalid {
        /// Path or name of the image.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The initramfs could not be read or placed.
    #[error("initramfs {path}: {reason}", path = .path.display())]
    Initramfs {
        /// The initramfs path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The command line is too long or malformed.
    #[error("kernel command line: {0}")]
    Cmdline(String),
    /// Boot structures (page tables, boot_params, MP table, registers, CPUID).
    #[error(transparent)]
    Arch(#[from] arch::Error),
    /// A seccomp filter could not be built or installed.
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
    /// More virtio devices were asked for than the MMIO window has slots.
    #[error("device set-up: {count} virtio devices requested; at most {max} fit")]
    TooManyDevices {
        /// Devices requested.
        count: usize,
        /// Slots in the virtio-mmio window.
        max: u32,
    },
    /// A device could not be placed on its bus.
    #[error("device set-up: {device}: {source}")]
    Bus {
        /// The device, e.g. "COM1" or "virtio-blk0".
        device: String,
        /// Why the bus refused it.
        #[source]
        source: devices::BusError,
    },
    /// A virtio transport (its queues) could not be created.
    #[error("device set-up: {device}: {source}")]
    Transport {
        /// The device, e.g. "virtio-blk0".
        device: String,
        /// virtio-queue's error.
        #[source]
        source: virtio_queue::Error,
    },
    /// A `--disk` file cannot be used.
    #[error("disk {path}: {reason}", path = .path.display())]
    Disk {
        /// The image path.
        path: PathBuf,
        /// What is wrong (open error, size).
        reason: String,
    },
    /// A `--net` TAP cannot be opened.
    #[error("net device on TAP {tap}: {reason}")]
    Net {
        /// The TAP name.
        tap: String,
        /// What went wrong.
        reason: String,
    },
    /// A thread could not be spawned.
    #[error("cannot spawn thread {name}: {source}")]
    Spawn {
        /// The thread's name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--jail` could not be entered.
    #[error(transparent)]
    Jail(#[from] crate::jail::JailError),
    /// The process's own sandbox check failed.
    #[error("sandbox check: {0}")]
    Sandbox(#[from] crate::sandbox_check::Refusal),
    /// An event loop (epoll) could not be created or failed.
    #[error("event loop of {thread}: {source}")]
    EventLoop {
        /// The thread whose loop it is, e.g. "vmm" or "virtio-rng0".
        thread: String,
        /// event-manager's error.
        #[source]
        source: event_manager::Error,
    },
    /// A device process (`--isolate devices`) could not be started.
    #[error("{device}: device process: {detail}")]
    DeviceProcess {
        /// The device, e.g. `virtio-blk0`.
        device: String,
        /// What went wrong.
        detail: String,
    },
    /// A host system call failed during set-up.
    #[error("{what}: {source}")]
    Host {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Result alias for the vmm crate.
pub type Result<T> = std::result::Result<T, Error>;
