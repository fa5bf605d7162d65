//! Guest physical memory layout.
//!
//! ```text
//! 0x0000_0000 ..0x0000_0500  real-mode IVT / BIOS data area (left zero)
//! 0x0000_0500 ..0x0000_0520  GDT (4 descriptors)
//! 0x0000_0520 ..0x0000_0530  IDT (one empty 16-byte gate)
//! 0x0000_6000 ..0x0000_7000  PVH boot only: hvm_start_info, module list, memory map
//! 0x0000_7000 ..0x0000_8000  boot_params ("zero page")
//!               ..0x0000_8FF0  boot stack (grows down from BOOT_STACK_TOP)
//! 0x0000_9000 ..0x0000_C000  identity page tables: PML4, PDPT, PD
//! 0x0001_0000 ..0x0002_0000  trampoline area: plain RAM the guest may use
//! 0x0002_0000 ..+CMDLINE_MAX_SIZE  kernel command line
//! 0x0009_FC00 ..0x0010_0000  EBDA: MP table; reserved in e820 up to 1 MiB
//! 0x0010_0000 ..             kernel (HIMEM_START), then initrd near the top of low RAM
//! 0xC000_0000 ..0x1_0000_0000  32-bit MMIO gap (no RAM): virtio-mmio, IOAPIC, LAPIC
//! 0x1_0000_0000 ..           RAM above 3 GiB is relocated here
//! ```
//!
//! All VMM-written structures live below 1 MiB, in RAM that the e820 map reports as
//! usable (except the MP table, which is reserved), like on a PC after the firmware.

/// Guest address of the boot GDT.
pub const GDT_START: u64 = 0x500;
/// Number of 8-byte descriptors in the boot GDT (`GDT_START..IDT_START`).
pub const GDT_ENTRIES: usize = 4;
/// Guest address of the (empty) boot IDT.
pub const IDT_START: u64 = 0x520;
/// PVH boot: guest address of `struct hvm_start_info`, passed in EBX.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH boot: guest address of the module list (one `hvm_modlist_entry` for the initramfs).
pub const PVH_MODLIST_START: u64 = 0x6040;
/// PVH boot: guest address of the memory map (`hvm_memmap_table_entry` array, 24 bytes each).
pub const PVH_MEMMAP_START: u64 = 0x6100;
/// Guest address of the `boot_params` structure ("zero page"), passed in RSI.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial RSP/RBP of the boot vCPU; the stack grows down towards the zero page.
pub const BOOT_STACK_TOP: u64 = 0x8FF0;
/// Guest address of the PML4 (loaded in CR3).
pub const PML4_START: u64 = 0x9000;
/// Guest address of the page-directory-pointer table.
pub const PDPT_START: u64 = 0xA000;
/// Guest address of the page directory (512 x 2 MiB pages = 1 GiB identity map).
pub const PD_START: u64 = 0xB000;
/// Size of memory identity-mapped by the boot page tables.
pub const IDENTITY_MAP_SIZE: u64 = 1 << 30;
/// Start of RAM the guest may use for its real-mode trampoline; the VMM writes nothing there.
pub const TRAMPOLINE_START: u64 = 0x1_0000;
/// Guest address of the kernel command line.
pub const CMDLINE_START: u64 = 0x2_0000;
/// Maximum kernel command line size including the terminating NUL
/// (the x86 kernel's `COMMAND_LINE_SIZE`).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the extended BIOS data area; the MP table is written here.
pub const EBDA_START: u64 = 0x9_FC00;
/// Guest address of the MP floating pointer structure (start of the EBDA).
pub const MPTABLE_START: u64 = EBDA_START;
/// Start of high memory: where the kernel is loaded (1 MiB).
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO gap: no RAM in `[MMIO_GAP_START, MMIO_GAP_END)`.
pub const MMIO_GAP_START: u64 = 0xC000_0000;
/// End (exclusive) of the 32-bit MMIO gap; RAM above 3 GiB resumes here.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// Size of the 32-bit MMIO gap (1 GiB).
pub const MMIO_GAP_SIZE: u64 = MMIO_GAP_END - MMIO_GAP_START;
/// Base address of the IOAPIC MMIO window.
pub const IOAPIC_START: u64 = 0xFEC0_0000;
/// Base address of the local APIC MMIO window.
pub const LAPIC_START: u64 = 0xFEE0_0000;
/// Base address of the virtio-mmio device window (inside the MMIO gap).
pub const VIRTIO_MMIO_START: u64 = 0xD000_0000;
/// Size of the MMIO window of one virtio-mmio device; device `i` is at
/// `VIRTIO_MMIO_START + i * VIRTIO_MMIO_SIZE`.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// First IOAPIC pin (GSI) handed to virtio-mmio devices; device `i` gets `VIRTIO_MMIO_IRQ_BASE + i`.
pub const VIRTIO_MMIO_IRQ_BASE: u32 = 5;
/// Highest IOAPIC pin (GSI): the IOAPIC has 24 pins.
pub const IRQ_MAX: u32 = 23;
/// Number of virtio-mmio slots: one per pin in `VIRTIO_MMIO_IRQ_BASE..=IRQ_MAX`.
/// The device manager must skip pins used by legacy devices (e.g. 8 for an RTC).
pub const VIRTIO_MMIO_MAX_DEVICES: u32 = IRQ_MAX - VIRTIO_MMIO_IRQ_BASE + 1;
/// `initrd_addr_max` assumed when the kernel has no setup header (boot.rst, protocol < 2.03).
pub const DEFAULT_INITRD_ADDR_MAX: u32 = 0x37FF_FFFF;

// Layout invariants, checked at compile time: boot structures do not overlap, stay
// below the EBDA, and the MMIO windows are inside the gap.
const _: () = {
    assert!(GDT_START + 8 * GDT_ENTRIES as u64 <= IDT_START);
    assert!(IDT_START + 16 <= PVH_INFO_START);
    assert!(PVH_INFO_START + 56 <= PVH_MODLIST_START);
    assert!(PVH_MODLIST_START + 32 <= PVH_MEMMAP_START);
    assert!(PVH_MEMMAP_START + 24 * 128 <= ZERO_PAGE_START);
    assert!(IDT_START + 16 <= ZERO_PAGE_START);
    assert!(ZERO_PAGE_START + 4096 <= BOOT_STACK_TOP);
    assert!(BOOT_STACK_TOP < PML4_START);
    assert!(PDPT_START == PML4_START + 0x1000);
    assert!(PD_START == PDPT_START + 0x1000);
    assert!(PD_START + 0x1000 <= TRAMPOLINE_START);
    assert!(TRAMPOLINE_START < CMDLINE_START);
    assert!(CMDLINE_START + CMDLINE_MAX_SIZE as u64 <= EBDA_START);
    assert!(EBDA_START < HIMEM_START);
    assert!(MMIO_GAP_SIZE == 1 << 30);
    assert!(VIRTIO_MMIO_START >= MMIO_GAP_START);
    assert!(VIRTIO_MMIO_START + VIRTIO_MMIO_SIZE * VIRTIO_MMIO_MAX_DEVICES as u64 <= IOAPIC_START);
    assert!(IOAPIC_START < LAPIC_START && LAPIC_START < MMIO_GAP_END);
    assert!(VIRTIO_MMIO_MAX_DEVICES == 19);
};
