//! x86_64 boot support for microvm.
//!
//! Everything a VMM needs to start a Linux guest in 64-bit long mode through the
//! Linux/x86 64-bit boot protocol (Documentation/arch/x86/boot.rst):
//!
//! - [`layout`]: where every boot structure lives in guest physical memory;
//! - [`memory`]: how guest RAM is split around the 32-bit MMIO gap;
//! - [`e820`], [`bootparams`], [`initrd`]: the zero page and the memory map;
//! - [`mptable`] (with [`mpspec`]): the Intel MP 1.4 table that tells the guest about vCPUs and the IOAPIC;
//! - [`gdt`], [`paging`], [`regs`], [`msrs`], [`lapic`]: vCPU state at the kernel entry point;
//! - [`cpuid`]: per-vCPU CPUID normalization;
//! - [`pvh`]: the Xen PVH boot ABI (hvm_start_info, 32-bit protected-mode entry);
//! - [`acpi`]: RSDP, XSDT, FADT, MADT and DSDT for guests that find their hardware via ACPI.
//!
//! Pure "compute the structure" functions are kept apart from the ones that issue
//! KVM ioctls, so that most of the crate is testable without `/dev/kvm`.

#![cfg(target_arch = "x86_64")]

pub mod acpi;
pub mod bootparams;
pub mod cpuid;
pub mod e820;
pub mod gdt;
pub mod initrd;
pub mod lapic;
pub mod layout;
pub mod memory;
pub mod mpspec;
pub mod mptable;
pub mod msrs;
pub mod paging;
pub mod pvh;
pub mod regs;

pub use bootparams::{build_boot_params, write_boot_params, BootParamsConfig, InitrdConfig};
pub use cpuid::normalize_cpuid;
pub use e820::{e820_map, E820Entry, E820_RAM, E820_RESERVED};
pub use initrd::initrd_address;
pub use lapic::setup_lapic;
pub use memory::ram_regions;
pub use mptable::setup_mptable;
pub use msrs::setup_msrs;
pub use regs::{setup_fpu, setup_long_mode, setup_regs};

/// Guest memory type used throughout the crate.
pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<()>;

/// Errors of the `arch` crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Requested guest RAM size is below [`memory::MIN_MEM_SIZE`].
    #[error("guest memory size {0:#x} is below the minimum of {min:#x} bytes", min = memory::MIN_MEM_SIZE)]
    MemoryTooSmall(u64),
    /// Requested guest RAM size is above [`memory::MAX_MEM_SIZE`].
    #[error("guest memory size {0:#x} exceeds the maximum of {max:#x} bytes", max = memory::MAX_MEM_SIZE)]
    MemoryTooLarge(u64),
    /// Requested guest RAM size is not a multiple of the 4 KiB page size.
    #[error("guest memory size {0:#x} is not a multiple of the 4 KiB page size")]
    MemoryNotPageAligned(u64),
    /// Writing a boot structure into guest memory failed.
    #[error("failed to write the {what} at guest address {addr:#x}: {source}")]
    GuestMemoryWrite {
        /// Which structure was being written.
        what: &'static str,
        /// Guest physical address of the write.
        addr: u64,
        /// Underlying vm-memory error.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
    /// The command line does not fit the kernel's or the layout's limit.
    #[error("kernel command line is {len} bytes, the limit is {max} bytes (without the NUL)")]
    CmdlineTooLong {
        /// Command line length without the terminating NUL.
        len: usize,
        /// Largest accepted length.
        max: usize,
    },
    /// The e820 map has more entries than the zero page holds.
    #[error("e820 map has {0} entries, the zero page holds at most 128")]
    E820TooManyEntries(usize),
    /// An initrd of size zero was given.
    #[error("initrd is empty")]
    InitrdEmpty,
    /// The initrd cannot be placed between the kernel and the highest usable address.
    #[error(
        "initrd of {size:#x} bytes does not fit between the kernel end {kernel_end:#x} \
         and the highest usable address {limit:#x}"
    )]
    InitrdDoesNotFit {
        /// Initrd size in bytes.
        size: u64,
        /// First address after the kernel image.
        kernel_end: u64,
        /// Exclusive upper bound (RAM end below the gap, or initrd_addr_max + 1).
        limit: u64,
    },
    /// The number of vCPUs is not supported by the MP table.
    #[error("MP table: invalid vCPU count {0}, must be between 1 and {max}", max = mptable::MAX_CPUS)]
    MptableCpuCount(u8),
    /// The ACPI tables do not fit their area below 1 MiB.
    #[error("ACPI tables need {size} bytes, {max} are available")]
    AcpiTooLarge {
        /// Bytes needed from the RSDP to the end of the last table.
        size: u64,
        /// Bytes available.
        max: u64,
    },
    /// Writing the PVH boot structures (hvm_start_info, memory map, modules) failed.
    #[error("cannot write the PVH boot structures: {0}")]
    Pvh(String),
    /// A KVM ioctl failed.
    #[error("{ioctl} failed: {source}")]
    Kvm {
        /// Name of the ioctl, e.g. `KVM_SET_SREGS`.
        ioctl: &'static str,
        /// errno from the kernel.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// More MSR entries than a `kvm_msrs` can carry.
    #[error("cannot build the kvm_msrs structure: too many entries ({0})")]
    MsrsTooMany(usize),
    /// KVM_SET_MSRS accepted only some of the MSRs.
    #[error("KVM_SET_MSRS wrote {written} of {total} MSRs; MSR {failed_index:#x} was rejected")]
    MsrsPartial {
        /// Number of MSRs written.
        written: usize,
        /// Number of MSRs given.
        total: usize,
        /// Index of the first MSR that was not written.
        failed_index: u32,
    },
    /// A vCPU id or count given to CPUID normalization is invalid.
    #[error("CPUID: vCPU id {vcpu_id} is invalid for {num_cpus} vCPUs")]
    CpuidVcpu {
        /// vCPU index.
        vcpu_id: u8,
        /// Number of vCPUs of the VM.
        num_cpus: u8,
    },
    /// The CPUID table has no room for an added topology sub-leaf.
    #[error("CPUID: no room to add sub-leaf {index} of leaf {function:#x}")]
    CpuidFull {
        /// Leaf.
        function: u32,
        /// Sub-leaf.
        index: u32,
    },
}

/// Result type of the `arch` crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds the error of a failed KVM ioctl.
pub(crate) fn kvm_err(ioctl: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
    move |source| Error::Kvm { ioctl, source }
}

/// Builds the error of a failed guest memory write.
pub(crate) fn mem_err(
    what: &'static str,
    addr: vm_memory::GuestAddress,
) -> impl FnOnce(vm_memory::GuestMemoryError) -> Error {
    move |source| Error::GuestMemoryWrite {
        what,
        addr: addr.0,
        source,
    }
}
