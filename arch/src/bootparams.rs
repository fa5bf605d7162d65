//! The Linux `boot_params` structure ("zero page"), per Documentation/arch/x86/boot.rst.

use linux_loader::loader::bootparam::{
    boot_params, setup_header, CAN_USE_HEAP, E820_MAX_ENTRIES_ZEROPAGE, LOADED_HIGH,
};
use vm_memory::{Bytes, GuestAddress};

use crate::e820::e820_map;
use crate::layout::{CMDLINE_MAX_SIZE, ZERO_PAGE_START};
use crate::{mem_err, Error, GuestMemoryMmap, Result};

/// `setup_header.header` magic: "HdrS".
pub const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
/// `setup_header.boot_flag` magic.
pub const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xAA55;
/// `type_of_loader` for a boot loader without an assigned id.
pub const KERNEL_LOADER_OTHER: u8 = 0xFF;
/// `kernel_alignment` written when there is no setup header (16 MiB, the x86_64 default).
pub const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x0100_0000;
/// `heap_end_ptr`: end of the setup heap (0xE000 for a LOADED_HIGH kernel) minus 0x200, per boot.rst.
pub const HEAP_END_PTR: u16 = 0xE000 - 0x200;
/// First boot protocol version whose header has `cmdline_size` (2.06).
const PROTOCOL_CMDLINE_SIZE: u16 = 0x0206;
/// First boot protocol version with `heap_end_ptr`/CAN_USE_HEAP (2.01).
const PROTOCOL_HEAP: u16 = 0x0201;

/// Location of an initrd already loaded in guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitrdConfig {
    /// Guest address of the initrd.
    pub addr: GuestAddress,
    /// Size in bytes.
    pub size: u64,
}

/// Inputs of [`build_boot_params`].
#[derive(Debug, Clone, Copy)]
pub struct BootParamsConfig {
    /// Guest RAM size in bytes (as given to [`ram_regions`](crate::memory::ram_regions)).
    pub mem_size: u64,
    /// Setup header of a bzImage (from the loader); `None` for an ELF vmlinux.
    pub setup_header: Option<setup_header>,
    /// Guest address of the NUL-terminated command line.
    pub cmdline_addr: GuestAddress,
    /// Command line length in bytes, without the terminating NUL.
    pub cmdline_len: usize,
    /// The initrd, if any.
    pub initrd: Option<InitrdConfig>,
    /// Guest address of the ACPI RSDP (`acpi_rsdp_addr`, boot protocol 2.14), if any.
    /// Older kernels find it by scanning the BIOS area, where it also is.
    pub rsdp: Option<u64>,
}

fn low32(v: u64) -> u32 {
    v as u32
}

fn high32(v: u64) -> u32 {
    (v >> 32) as u32
}

/// Builds the zero page for the 64-bit boot protocol.
///
/// With a bzImage setup header the header is copied in unchanged first (boot.rst: the
/// rest of `boot_params` is zero), otherwise the fields a kernel checks are filled in
/// (`header` "HdrS", `boot_flag` 0xAA55, `kernel_alignment` 16 MiB). Then the loader
/// fields are set: `type_of_loader` 0xFF, LOADED_HIGH | CAN_USE_HEAP with
/// `heap_end_ptr`, the command line pointer and size, the ramdisk and the e820 map.
pub fn build_boot_params(cfg: &BootParamsConfig) -> Result<boot_params> {
    let mut params = boot_params::default();
    let mut max_cmdline = CMDLINE_MAX_SIZE - 1;
    let mut can_use_heap = true;

    match cfg.setup_header {
        Some(hdr) => {
            params.hdr = hdr;
            let version = hdr.version;
            let kernel_max = hdr.cmdline_size as usize;
            if version >= PROTOCOL_CMDLINE_SIZE && kernel_max != 0 {
                max_cmdline = max_cmdline.min(kernel_max);
            }
            can_use_heap = version >= PROTOCOL_HEAP;
        }
        None => {
            params.hdr.header = KERNEL_HDR_MAGIC;
            params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
            params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
        }
    }
    if cfg.cmdline_len > max_cmdline {
        return Err(Error::CmdlineTooLong {
            len: cfg.cmdline_len,
            max: max_cmdline,
        });
    }

    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.loadflags |= LOADED_HIGH;
    if can_use_heap {
        params.hdr.loadflags |= CAN_USE_HEAP;
        params.hdr.heap_end_ptr = HEAP_END_PTR;
    }

    params.hdr.cmd_line_ptr = low32(cfg.cmdline_addr.0);
    params.ext_cmd_line_ptr = high32(cfg.cmdline_addr.0);
    // Bounded by CMDLINE_MAX_SIZE above.
    params.hdr.cmdline_size = cfg.cmdline_len as u32;

    params.acpi_rsdp_addr = cfg.rsdp.unwrap_or(0);
    if let Some(initrd) = cfg.initrd {
        params.hdr.ramdisk_image = low32(initrd.addr.0);
        params.ext_ramdisk_image = high32(initrd.addr.0);
        params.hdr.ramdisk_size = low32(initrd.size);
        params.ext_ramdisk_size = high32(initrd.size);
    }

    let map = e820_map(cfg.mem_size)?;
    if map.len() > E820_MAX_ENTRIES_ZEROPAGE {
        return Err(Error::E820TooManyEntries(map.len()));
    }
    for (slot, entry) in params.e820_table.iter_mut().zip(&map) {
        *slot = (*entry).into();
    }
    // At most E820_MAX_ENTRIES_ZEROPAGE (128), checked above.
    params.e820_entries = map.len() as u8;
    Ok(params)
}

/// Writes `params` to the zero page at [`ZERO_PAGE_START`].
pub fn write_boot_params(mem: &GuestMemoryMmap, params: &boot_params) -> Result<()> {
    let addr = GuestAddress(ZERO_PAGE_START);
    mem.write_obj(*params, addr)
        .map_err(mem_err("boot_params (zero page)", addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::ram_regions;
    use vm_memory::ByteValued;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn elf_config(mem_size: u64) -> BootParamsConfig {
        BootParamsConfig {
            mem_size,
            setup_header: None,
            cmdline_addr: GuestAddress(0x2_0000),
            cmdline_len: 40,
            initrd: None,
            rsdp: None,
        }
    }

    // Little-endian field readers over the raw zero page, at boot.rst offsets.
    fn u8_at(b: &[u8], off: usize) -> u8 {
        b[off]
    }
    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }
    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }
    /// (addr, size, type) of e820 entry `i` (table at 0x2d0, 20-byte entries).
    fn e820_at(b: &[u8], i: usize) -> (u64, u64, u32) {
        let off = 0x2D0 + 20 * i;
        (u64_at(b, off), u64_at(b, off + 8), u32_at(b, off + 16))
    }

    #[test]
    fn elf_boot_fields_at_boot_rst_offsets() {
        let params = build_boot_params(&elf_config(128 * MIB)).unwrap();
        let b = params.as_slice();
        assert_eq!(b.len(), 4096);
        assert_eq!(u16_at(b, 0x1FE), 0xAA55, "boot_flag");
        assert_eq!(u32_at(b, 0x202), 0x5372_6448, "header");
        assert_eq!(&b[0x202..0x206], b"HdrS");
        assert_eq!(u8_at(b, 0x210), 0xFF, "type_of_loader");
        assert_eq!(u8_at(b, 0x211), 0x81, "loadflags LOADED_HIGH|CAN_USE_HEAP");
        assert_eq!(u16_at(b, 0x224), 0xDE00, "heap_end_ptr");
        assert_eq!(u32_at(b, 0x228), 0x2_0000, "cmd_line_ptr");
        assert_eq!(u32_at(b, 0x0C8), 0, "ext_cmd_line_ptr");
        assert_eq!(u32_at(b, 0x230), 0x0100_0000, "kernel_alignment");
        assert_eq!(u32_at(b, 0x238), 40, "cmdline_size");
        assert_eq!(u32_at(b, 0x218), 0, "ramdisk_image");
        assert_eq!(u32_at(b, 0x21C), 0, "ramdisk_size");
        assert_eq!(u8_at(b, 0x1E8), 3, "e820_entries");
        assert_eq!(e820_at(b, 0), (0, 0x9_FC00, 1));
        assert_eq!(e820_at(b, 1), (0x9_FC00, 0x6_0400, 2));
        assert_eq!(e820_at(b, 2), (0x10_0000, 127 * MIB, 1));
        assert_eq!(e820_at(b, 3), (0, 0, 0));
    }

    #[test]
    fn e820_in_zero_page_for_3_and_5_gib() {
        let p3 = build_boot_params(&elf_config(3 * GIB)).unwrap();
        let b = p3.as_slice();
        assert_eq!(u8_at(b, 0x1E8), 3);
        assert_eq!(e820_at(b, 2), (0x10_0000, 0xBFF0_0000, 1));

        let p5 = build_boot_params(&elf_config(5 * GIB)).unwrap();
        let b = p5.as_slice();
        assert_eq!(u8_at(b, 0x1E8), 4);
        assert_eq!(e820_at(b, 2), (0x10_0000, 0xBFF0_0000, 1));
        assert_eq!(e820_at(b, 3), (0x1_0000_0000, 2 * GIB, 1));
    }

    #[test]
    fn bzimage_header_is_copied_and_loader_fields_set() {
        let mut hdr = setup_header {
            setup_sects: 27,
            boot_flag: 0xAA55,
            header: KERNEL_HDR_MAGIC,
            version: 0x020F,
            loadflags: LOADED_HIGH,
            code32_start: 0x10_0000,
            initrd_addr_max: 0x7FFF_FFFF,
            kernel_alignment: 0x20_0000,
            relocatable_kernel: 1,
            xloadflags: 0x7F,
            cmdline_size: 2047,
            init_size: 0x200_0000,
            ..Default::default()
        };
        hdr.pref_address = 0x100_0000;
        let cfg = BootParamsConfig {
            setup_header: Some(hdr),
            cmdline_addr: GuestAddress(0x1_2345_6000),
            initrd: Some(InitrdConfig {
                addr: GuestAddress(0x1_8000_0000),
                size: 0x1_0000_1000,
            }),
            rsdp: Some(0xe_0000),
            ..elf_config(8 * GIB)
        };
        let params = build_boot_params(&cfg).unwrap();
        let b = params.as_slice();
        assert_eq!(
            u64::from_le_bytes(b[0x70..0x78].try_into().unwrap()),
            0xe_0000,
            "acpi_rsdp_addr"
        );
        assert_eq!(u8_at(b, 0x1F1), 27, "setup_sects copied");
        assert_eq!(u16_at(b, 0x206), 0x020F, "version copied");
        assert_eq!(u32_at(b, 0x214), 0x10_0000, "code32_start copied");
        assert_eq!(u32_at(b, 0x22C), 0x7FFF_FFFF, "initrd_addr_max copied");
        assert_eq!(u32_at(b, 0x230), 0x20_0000, "kernel_alignment kept");
        assert_eq!(u16_at(b, 0x236), 0x7F, "xloadflags copied");
        assert_eq!(u64_at(b, 0x258), 0x100_0000, "pref_address copied");
        assert_eq!(u32_at(b, 0x260), 0x200_0000, "init_size copied");
        assert_eq!(u8_at(b, 0x210), 0xFF);
        assert_eq!(u8_at(b, 0x211), LOADED_HIGH | CAN_USE_HEAP);
        assert_eq!(u32_at(b, 0x228), 0x2345_6000, "cmd_line_ptr low");
        assert_eq!(u32_at(b, 0x0C8), 0x1, "ext_cmd_line_ptr high");
        assert_eq!(u32_at(b, 0x218), 0x8000_0000, "ramdisk_image low");
        assert_eq!(u32_at(b, 0x0C0), 0x1, "ext_ramdisk_image high");
        assert_eq!(u32_at(b, 0x21C), 0x1000, "ramdisk_size low");
        assert_eq!(u32_at(b, 0x0C4), 0x1, "ext_ramdisk_size high");
    }

    #[test]
    fn cmdline_limits() {
        let cfg = BootParamsConfig {
            cmdline_len: 2047,
            ..elf_config(128 * MIB)
        };
        assert!(build_boot_params(&cfg).is_ok());
        let cfg = BootParamsConfig {
            cmdline_len: 2048,
            ..cfg
        };
        assert!(matches!(
            build_boot_params(&cfg),
            Err(Error::CmdlineTooLong {
                len: 2048,
                max: 2047
            })
        ));
        // A bzImage announcing a smaller limit lowers it.
        let hdr = setup_header {
            version: 0x0206,
            cmdline_size: 255,
            loadflags: LOADED_HIGH,
            ..Default::default()
        };
        let cfg = BootParamsConfig {
            setup_header: Some(hdr),
            cmdline_len: 256,
            ..cfg
        };
        assert!(matches!(
            build_boot_params(&cfg),
            Err(Error::CmdlineTooLong { len: 256, max: 255 })
        ));
    }

    #[test]
    fn initrd_below_4g_leaves_ext_fields_zero() {
        let cfg = BootParamsConfig {
            initrd: Some(InitrdConfig {
                addr: GuestAddress(0x7F0_0000),
                size: 0x10_0000,
            }),
            ..elf_config(128 * MIB)
        };
        let params = build_boot_params(&cfg).unwrap();
        assert_eq!({ params.hdr.ramdisk_image }, 0x7F0_0000);
        assert_eq!({ params.hdr.ramdisk_size }, 0x10_0000);
        assert_eq!({ params.ext_ramdisk_image }, 0);
        assert_eq!({ params.ext_ramdisk_size }, 0);
    }

    #[test]
    fn bad_memory_size_is_an_error() {
        assert!(matches!(
            build_boot_params(&elf_config(MIB)),
            Err(Error::MemoryTooSmall(_))
        ));
    }

    #[test]
    fn zero_page_is_written_at_0x7000() {
        let mem = GuestMemoryMmap::from_ranges(&ram_regions(128 * MIB).unwrap()).unwrap();
        let params = build_boot_params(&elf_config(128 * MIB)).unwrap();
        write_boot_params(&mem, &params).unwrap();
        let magic: u32 = mem.read_obj(GuestAddress(0x7000 + 0x202)).unwrap();
        assert_eq!(magic, KERNEL_HDR_MAGIC);
        let entries: u8 = mem.read_obj(GuestAddress(0x7000 + 0x1E8)).unwrap();
        assert_eq!(entries, 3);
    }
}
