//! Loading the guest kernel (bzImage or ELF vmlinux), the initramfs and the command line
//! into guest memory, with the checks a user needs to understand a refusal.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::FromRawFd;
use std::path::Path;

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{self, KernelLoader};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::config::{BootProtocol, KernelSource};
use crate::error::{Error, Result};

/// Offset of the setup header in a bzImage.
const SETUP_HEADER_OFFSET: u64 = 0x1f1;
/// "HdrS", the setup header magic.
const HDRS_MAGIC: u32 = 0x5372_6448;
/// xloadflags bit: the kernel has a 64-bit entry point at load address + 0x200.
const XLF_KERNEL_64: u16 = 1;
/// Offset of the 64-bit entry point from the protected-mode kernel's load address.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;

/// How the kernel was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// bzImage, booted through its 64-bit entry point.
    BzImage,
    /// Uncompressed ELF vmlinux, booted at its ELF entry in long mode.
    Elf,
}

/// Where the kernel landed and how to enter it.
#[derive(Debug, Clone)]
pub struct LoadedKernel {
    /// Format of the image.
    pub format: KernelFormat,
    /// Guest physical address of the 64-bit entry point.
    pub entry: u64,
    /// First guest address after the loaded image (including what the kernel announced
    /// it needs, for a bzImage's init_size).
    pub end: u64,
    /// The bzImage setup header, to be copied into boot_params.
    pub setup_header: Option<setup_header>,
    /// The 32-bit Xen PVH entry of an ELF with a `XEN_ELFNOTE_PHYS32_ENTRY` note.
    pub pvh_entry: Option<u64>,
}

impl LoadedKernel {
    /// The entry to use: `forced` if given, else PVH when the image has a PVH note (an ELF
    /// whose `e_entry` may well be a 32-bit entry), else the 64-bit Linux entry.
    pub fn choose_boot(&self, forced: Option<BootProtocol>) -> BootProtocol {
        match (forced, self.pvh_entry) {
            (Some(boot), _) => boot,
            (None, Some(_)) => BootProtocol::Pvh,
            (None, None) => BootProtocol::Linux,
        }
    }

    /// Where the boot vCPU starts for `boot`: the 64-bit entry, or the PVH entry (an error
    /// naming the reason when the image has none).
    pub fn entry_for(&self, boot: BootProtocol, name: &str) -> Result<u64> {
        match boot {
            BootProtocol::Linux => Ok(self.entry),
            BootProtocol::Pvh => self.pvh_entry.ok_or_else(|| Error::KernelInvalid {
                path: name.to_string(),
                reason: match self.format {
                    KernelFormat::BzImage => {
                        "--boot pvh needs an ELF vmlinux with a PVH note; this is a bzImage".into()
                    }
                    KernelFormat::Elf => {
                        "--boot pvh: this ELF has no XEN_ELFNOTE_PHYS32_ENTRY (PVH) note".into()
                    }
                },
            }),
        }
    }
}

/// Opens the kernel image: the file, or a memfd holding the built-in image.
pub fn open_kernel(src: &KernelSource) -> Result<File> {
    match src {
        KernelSource::File(path) => {
            let read_err = |source| Error::KernelRead {
                path: path.display().to_string(),
                source,
            };
            let file = File::open(path).map_err(read_err)?;
            if !file.metadata().map_err(read_err)?.is_file() {
                return Err(Error::KernelInvalid {
                    path: path.display().to_string(),
                    reason: "not a regular file".into(),
                });
            }
            Ok(file)
        }
        KernelSource::Embedded { name, bytes } => {
            memfd_with(name, bytes).map_err(|source| Error::KernelRead {
                path: src.describe(),
                source,
            })
        }
    }
}

fn memfd_with(name: &str, bytes: &[u8]) -> std::io::Result<File> {
    let cname = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: `cname` is a valid NUL-terminated string; the flags are valid.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(bytes)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Loads the kernel opened by [`open_kernel`] into guest memory. `ram_end` is the end of
/// RAM below the MMIO gap.
pub fn load_kernel(
    mem: &GuestMemoryMmap,
    src: &KernelSource,
    mut file: File,
    ram_end: u64,
) -> Result<LoadedKernel> {
    let name = src.describe();
    let invalid = |reason: String| Error::KernelInvalid {
        path: name.clone(),
        reason,
    };
    let size = file
        .metadata()
        .map_err(|source| Error::KernelRead {
            path: name.clone(),
            source,
        })?
        .len();
    let mut magic = [0u8; 4];
    if size < 4 || file.read_exact(&mut magic).is_err() {
        return Err(invalid(format!(
            "the file is {size} bytes long, too short to be a kernel"
        )));
    }
    let himem = GuestAddress(arch::layout::HIMEM_START);
    if &magic == b"\x7fELF" {
        let result = loader::Elf::load(mem, None, &mut file, Some(himem)).map_err(|e| {
            invalid(format!(
                "not a loadable x86_64 ELF vmlinux ({e}); its segments must fit in {} MiB of guest RAM above 1 MiB",
                ram_end >> 20
            ))
        })?;
        let pvh_entry = match result.pvh_boot_cap {
            loader::elf::PvhBootCapability::PvhEntryPresent(addr) => Some(addr.0),
            _ => None,
        };
        // An entry outside what was loaded would run zeroes or junk until the guest
        // faults: refuse it here instead.
        let loaded = arch::layout::HIMEM_START..result.kernel_end;
        for (what, addr) in [
            ("entry point (e_entry)", Some(result.kernel_load.0)),
            ("PVH entry", pvh_entry),
        ] {
            if let Some(addr) = addr.filter(|a| !loaded.contains(a)) {
                return Err(invalid(format!(
                    "the ELF's {what} {addr:#x} is outside its loaded segments [{:#x}, {:#x})",
                    loaded.start, loaded.end
                )));
            }
        }
        return Ok(LoadedKernel {
            format: KernelFormat::Elf,
            entry: result.kernel_load.0,
            end: result.kernel_end,
            setup_header: None,
            pvh_entry,
        });
    }

    let hdr = read_setup_header(&mut file).map_err(|_| {
        invalid("not a kernel: neither an ELF vmlinux nor a bzImage (file too short for a setup header)".into())
    })?;
    check_bzimage(&hdr, size, ram_end).map_err(invalid)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|source| Error::KernelRead {
            path: name.clone(),
            source,
        })?;
    // At 1 MiB, as the boot protocol has boot loaders do, not at the header's code32_start:
    // that is the loader's to set (it gets our address), and an image could point it at the
    // end of RAM so that its entry lies beyond it.
    let result = loader::BzImage::load(mem, Some(himem), &mut file, Some(himem))
        .map_err(|e| invalid(format!("cannot load the bzImage: {e}")))?;
    let init_end = result.kernel_load.0 + u64::from(hdr.init_size);
    Ok(LoadedKernel {
        format: KernelFormat::BzImage,
        entry: result.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET,
        end: result.kernel_end.max(init_end),
        setup_header: result.setup_header,
        pvh_entry: None,
    })
}

fn read_setup_header(file: &mut File) -> std::io::Result<setup_header> {
    let mut hdr = setup_header::default();
    file.seek(SeekFrom::Start(SETUP_HEADER_OFFSET))?;
    // SAFETY: setup_header is a plain-old-data repr(C, packed) struct from the boot
    // protocol; every byte pattern is a valid value, and the slice covers exactly it.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            &mut hdr as *mut setup_header as *mut u8,
            std::mem::size_of::<setup_header>(),
        )
    };
    file.read_exact(bytes)?;
    Ok(hdr)
}

/// Checks a bzImage header against the 64-bit boot protocol, the file size and the RAM.
pub fn check_bzimage(
    hdr: &setup_header,
    file_size: u64,
    ram_end: u64,
) -> std::result::Result<(), String> {
    let magic = hdr.header;
    if magic != HDRS_MAGIC {
        return Err("not a kernel: neither an ELF vmlinux (no \\x7fELF magic) nor a bzImage (no \"HdrS\" signature at offset 0x202)".into());
    }
    let version = hdr.version;
    let xloadflags = hdr.xloadflags;
    if version < 0x020c || xloadflags & XLF_KERNEL_64 == 0 {
        return Err(format!(
            "this bzImage has no 64-bit entry point (boot protocol {}.{:02}, XLF_KERNEL_64 {}); microvm needs boot protocol 2.12+ with XLF_KERNEL_64",
            version >> 8,
            version & 0xff,
            if xloadflags & XLF_KERNEL_64 != 0 { "set" } else { "not set" }
        ));
    }
    if hdr.loadflags & 1 == 0 {
        return Err("this bzImage does not load high (LOADED_HIGH not set)".into());
    }
    let setup_sects = match hdr.setup_sects {
        0 => 4,
        n => u64::from(n),
    };
    let setup_size = (setup_sects + 1) * 512;
    let payload = u64::from(hdr.syssize) * 16;
    if file_size < setup_size + payload {
        return Err(format!(
            "truncated bzImage: the file is {file_size} bytes but its header announces {setup_size} bytes of setup and {payload} bytes of kernel"
        ));
    }
    let need = arch::layout::HIMEM_START + u64::from(hdr.init_size).max(file_size - setup_size);
    if need > ram_end {
        return Err(format!(
            "guest RAM is too small: the kernel needs memory up to {:#x} ({} MiB) but RAM ends at {:#x}; raise --memory",
            need,
            need.div_ceil(1 << 20),
            ram_end
        ));
    }
    Ok(())
}

/// Opens the initramfs, so that a bad path is reported before any VM is built.
pub fn open_initramfs(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::Initramfs {
        path: path.to_path_buf(),
        reason: format!("cannot open: {e}"),
    })
}

/// Loads the initramfs as high as the kernel allows and returns (address, size).
pub fn load_initramfs(
    mem: &GuestMemoryMmap,
    path: &Path,
    mut file: File,
    kernel: &LoadedKernel,
    mem_size: u64,
) -> Result<(u64, u64)> {
    let fail = |reason: String| Error::Initramfs {
        path: path.to_path_buf(),
        reason,
    };
    let size = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat: {e}")))?
        .len();
    if size == 0 {
        return Err(fail("the file is empty".into()));
    }
    // The boot protocol's default for kernels that do not say (ELF) is 0x37ffffff.
    let addr_max = kernel
        .setup_header
        .map(|h| h.initrd_addr_max)
        .filter(|&m| m != 0)
        .unwrap_or(arch::layout::DEFAULT_INITRD_ADDR_MAX);
    let addr = arch::initrd_address(mem_size, size, addr_max, kernel.end)
        .map_err(|e| fail(e.to_string()))?
        .0;
    let len = usize::try_from(size).map_err(|_| fail("too large".into()))?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, len)
        .map_err(|e| fail(format!("cannot copy into guest memory at {addr:#x}: {e}")))?;
    Ok((addr, size))
}

/// Builds the command line and writes it at the layout's command-line address.
/// Returns its length in bytes (without the NUL).
pub fn load_cmdline(mem: &GuestMemoryMmap, cmdline: &str, kernel: &LoadedKernel) -> Result<usize> {
    // The kernel's limit (bzImage cmdline_size, which excludes the NUL) and ours.
    let kernel_max = kernel
        .setup_header
        .map(|h| h.cmdline_size as usize)
        .filter(|&n| n > 0)
        .unwrap_or(arch::layout::CMDLINE_MAX_SIZE - 1);
    let max = kernel_max.min(arch::layout::CMDLINE_MAX_SIZE - 1);
    if cmdline.len() > max {
        return Err(Error::Cmdline(format!(
            "{} bytes is too long: the kernel accepts at most {max}",
            cmdline.len()
        )));
    }
    let mut cl = Cmdline::new(max + 1).map_err(|e| Error::Cmdline(e.to_string()))?;
    cl.insert_str(cmdline)
        .map_err(|e| Error::Cmdline(format!("{e}: {cmdline:?}")))?;
    linux_loader::loader::load_cmdline(mem, GuestAddress(arch::layout::CMDLINE_START), &cl)
        .map_err(|e| Error::Cmdline(e.to_string()))?;
    Ok(cmdline.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header as a 64-bit-capable bzImage of `payload` bytes would carry.
    fn header(payload: u32) -> setup_header {
        setup_header {
            header: HDRS_MAGIC,
            version: 0x020f,
            xloadflags: XLF_KERNEL_64,
            loadflags: 1,
            setup_sects: 1,
            syssize: payload / 16,
            init_size: payload,
            cmdline_size: 100,
            ..Default::default()
        }
    }

    #[test]
    fn a_good_header_passes() {
        assert_eq!(
            check_bzimage(&header(0x4000), 1024 + 0x4000, 128 << 20),
            Ok(())
        );
    }

    #[test]
    fn header_refusals_say_why() {
        let e = |h: setup_header, size: u64, ram: u64| check_bzimage(&h, size, ram).unwrap_err();
        assert!(e(setup_header::default(), 1 << 20, 128 << 20).contains("not a kernel"));
        let old = setup_header {
            version: 0x020b,
            ..header(0x4000)
        };
        assert!(e(old, 1 << 20, 128 << 20).contains("no 64-bit entry point"));
        let no64 = setup_header {
            xloadflags: 0,
            ..header(0x4000)
        };
        assert!(e(no64, 1 << 20, 128 << 20).contains("XLF_KERNEL_64 not set"));
        let low = setup_header {
            loadflags: 0,
            ..header(0x4000)
        };
        assert!(e(low, 1 << 20, 128 << 20).contains("LOADED_HIGH"));
        // setup (2 sectors) + payload must be in the file.
        assert!(e(header(0x4000), 1024 + 0x3ff0, 128 << 20).contains("truncated bzImage"));
        // init_size decides the RAM need: 1 MiB + 8 MiB does not fit in 8 MiB.
        let big = setup_header {
            init_size: 8 << 20,
            ..header(0x4000)
        };
        assert!(e(big, 1024 + 0x4000, 8 << 20).contains("guest RAM is too small"));
    }

    /// A bzImage file: two setup sectors with `hdr`, then `payload` bytes of 0x90.
    fn bzimage_file(hdr: &setup_header, payload: usize) -> File {
        let mut bytes = vec![0u8; 1024 + payload];
        // SAFETY: setup_header is plain-old-data; the slice covers exactly it.
        let raw = unsafe {
            std::slice::from_raw_parts(
                hdr as *const setup_header as *const u8,
                std::mem::size_of::<setup_header>(),
            )
        };
        let at = SETUP_HEADER_OFFSET as usize;
        bytes[at..at + raw.len()].copy_from_slice(raw);
        bytes[1024..].fill(0x90);
        let path = std::env::temp_dir().join(format!("microvm-bz-{}", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[test]
    fn a_bzimage_loads_at_1_mib_whatever_its_code32_start_says() {
        let ram = 16u64 << 20;
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), ram as usize)]).unwrap();
        let src = KernelSource::Embedded {
            name: "test",
            bytes: &[],
        };
        // Found by the kernel_loader fuzz target: a header asking for the last 256 bytes
        // of RAM put the 64-bit entry (load address + 0x200) beyond it.
        let hdr = setup_header {
            code32_start: (ram - 0x100) as u32,
            syssize: 0x10,
            init_size: 0x100,
            ..header(0x100)
        };
        let k = load_kernel(&mem, &src, bzimage_file(&hdr, 0x100), ram).unwrap();
        assert_eq!(k.entry, arch::layout::HIMEM_START + 0x200);
        assert_eq!(
            mem.read_obj::<u8>(GuestAddress(arch::layout::HIMEM_START))
                .unwrap(),
            0x90
        );
    }

    fn loaded(cmdline_size: Option<u32>) -> LoadedKernel {
        LoadedKernel {
            format: KernelFormat::BzImage,
            entry: 0x100200,
            end: 0x200000,
            setup_header: cmdline_size.map(|n| setup_header {
                cmdline_size: n,
                ..header(0x1000)
            }),
            pvh_entry: None,
        }
    }

    #[test]
    fn the_command_line_honours_the_kernels_cmdline_size() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let ok = "a".repeat(100);
        assert_eq!(load_cmdline(&mem, &ok, &loaded(Some(100))).unwrap(), 100);
        let mut back = vec![0u8; 101];
        mem.read_slice(&mut back, GuestAddress(arch::layout::CMDLINE_START))
            .unwrap();
        assert_eq!(&back[..100], ok.as_bytes());
        assert_eq!(back[100], 0, "NUL-terminated");
        let err = load_cmdline(&mem, &"a".repeat(101), &loaded(Some(100))).unwrap_err();
        assert!(err.to_string().contains("at most 100"), "{err}");
        // ELF kernels have no header: microvm's own limit applies.
        let max = arch::layout::CMDLINE_MAX_SIZE - 1;
        assert!(load_cmdline(&mem, &"a".repeat(max), &loaded(None)).is_ok());
        assert!(load_cmdline(&mem, &"a".repeat(max + 1), &loaded(None)).is_err());
    }
}
