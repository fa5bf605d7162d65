//! Guest RAM: anonymous mappings aligned to 2 MiB in microvm's address space, offered to
//! transparent huge pages, and registered with KVM.
//!
//! KVM can map a guest's 2 MiB page with one large page only when the guest-physical and
//! the host-virtual addresses agree modulo 2 MiB and the host backs it with a huge page. An
//! mmap of guest RAM lands wherever the kernel puts it (4 KiB-aligned), so every guest page
//! would be mapped 4 KiB at a time: each first touch is one more exit to the host's page
//! fault path, which costs a stock kernel's boot seconds in a nested host. Guest RAM regions
//! start at 2 MiB-aligned guest addresses (arch::memory), so a 2 MiB-aligned host mapping
//! with MADV_HUGEPAGE is what QEMU does too. Pages are still only allocated when touched.
//!
//! The first 16 MiB of guest RAM ([`SMALL_PAGES_BELOW`]) are not offered to huge pages:
//! they hold the boot structures, the MP and ACPI tables, the real-mode area and small
//! guests, a few scattered pages that a huge page would turn into 2 MiB of resident memory
//! each (the tiny guest's stack ends just above 2 MiB: 2 MiB more peak RSS). Linux loads
//! itself at 16 MiB and keeps nothing hot below it (the ISA DMA zone).
//!
//! With `--isolate devices` guest RAM is a memfd mapped shared instead (sealed against
//! shrinking, growing and further seals), so that the device processes forked from the VMM
//! see the same pages rather than a copy-on-write snapshot ([`crate::isolate`]).

use vm_memory::mmap::{GuestRegionMmap, MmapRegion};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;

use crate::error::{Error, Result};

/// Alignment of guest RAM in microvm's address space: one x86 large page.
pub const HUGE_PAGE: usize = 2 << 20;
/// Guest RAM below this guest address stays on small pages (module doc).
pub const SMALL_PAGES_BELOW: usize = 16 << 20;

const PROT: i32 = libc::PROT_READ | libc::PROT_WRITE;
const FLAGS: i32 = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;

/// An anonymous read/write mapping of `size` bytes starting at a multiple of [`HUGE_PAGE`],
/// offered to transparent huge pages from byte `huge_from` on.
fn aligned_mapping(size: usize, huge_from: usize) -> std::io::Result<*mut u8> {
    let reserve = size
        .checked_add(HUGE_PAGE)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
    // SAFETY: a fresh anonymous mapping; nothing else refers to the address range.
    let base = unsafe { libc::mmap(std::ptr::null_mut(), reserve, PROT, FLAGS, -1, 0) };
    if base == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let base = base as usize;
    let start = (base + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
    let (head, tail) = (start - base, base + reserve - (start + size));
    // SAFETY: both ranges are the unused ends of the mapping made above, page-aligned.
    unsafe {
        if head > 0 {
            libc::munmap(base as *mut libc::c_void, head);
        }
        if tail > 0 {
            libc::munmap((start + size) as *mut libc::c_void, tail);
        }
        // Advice only: without THP (or with it off), the guest gets 4 KiB pages as before.
        if huge_from < size {
            let from = (start + huge_from) as *mut libc::c_void;
            libc::madvise(from, size - huge_from, libc::MADV_HUGEPAGE);
        }
    }
    Ok(start as *mut u8)
}

/// Flags of a shared (memfd) guest RAM mapping.
const SHARED_FLAGS: i32 = libc::MAP_SHARED | libc::MAP_NORESERVE;

/// A memfd of `size` bytes sealed against shrinking, growing and further seals.
fn sealed_memfd(size: usize) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let name = c"microvm-guest-ram";
    // SAFETY: a valid NUL-terminated name; the flags ask for a new fd.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is fresh and owned by nobody else.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let len =
        libc::off_t::try_from(size).map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    use std::os::fd::AsRawFd;
    // SAFETY: plain integer arguments on an fd this function owns.
    let ok = unsafe {
        libc::ftruncate(fd.as_raw_fd(), len) == 0
            && libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) == 0
    };
    if !ok {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Replaces the reserved range `ptr..ptr + size` with a shared mapping of `fd` at `offset`.
fn map_shared_over(
    ptr: *mut u8,
    size: usize,
    fd: &std::os::fd::OwnedFd,
    offset: usize,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: MAP_FIXED over the anonymous reservation made for exactly this range by
    // `aligned_mapping`; nothing refers to it yet.
    let p = unsafe {
        libc::mmap(
            ptr.cast(),
            size,
            PROT,
            SHARED_FLAGS | libc::MAP_FIXED,
            fd.as_raw_fd(),
            offset,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Guest RAM for `ranges` (guest address, size), each region 2 MiB-aligned on the host;
/// with `shared`, every region is a slice of one sealed memfd, mapped shared.
fn map_regions(
    ranges: &[(GuestAddress, usize)],
    shared: bool,
) -> std::result::Result<GuestMemoryMmap, String> {
    let total = ranges.iter().map(|r| r.1).sum::<usize>();
    let memfd = if shared {
        Some(sealed_memfd(total).map_err(|e| format!("cannot create its memfd: {e}"))?)
    } else {
        None
    };
    let mut regions = Vec::with_capacity(ranges.len());
    let mut offset = 0;
    for &(guest, size) in ranges {
        // The region at guest address 0 keeps its first 16 MiB on small pages (module doc).
        let huge_from = if guest.0 == 0 {
            SMALL_PAGES_BELOW.min(size)
        } else {
            0
        };
        let ptr = if let Some(fd) = &memfd {
            let ptr =
                aligned_mapping(size, size).map_err(|e| format!("cannot map {size} bytes: {e}"))?;
            map_shared_over(ptr, size, fd, offset)
                .map_err(|e| format!("cannot map its memfd: {e}"))?;
            if huge_from < size {
                // SAFETY: advice on the mapping made just above.
                unsafe {
                    libc::madvise(
                        ptr.add(huge_from).cast(),
                        size - huge_from,
                        libc::MADV_HUGEPAGE,
                    )
                };
            }
            ptr
        } else {
            aligned_mapping(size, huge_from).map_err(|e| format!("cannot map {size} bytes: {e}"))?
        };
        offset += size;
        let flags = if shared { SHARED_FLAGS } else { FLAGS };
        // SAFETY: `ptr..ptr + size` is the read/write mapping made above (private anonymous,
        // or shared of the memfd); it is never unmapped (it lives until the process exits,
        // like the VM using it).
        let mapping = unsafe { MmapRegion::build_raw(ptr, size, PROT, flags) };
        let mapping = mapping.map_err(|e| e.to_string())?;
        let region = GuestRegionMmap::new(mapping, guest)
            .ok_or_else(|| format!("guest region at {:#x} overflows", guest.0))?;
        regions.push(region);
    }
    GuestMemoryMmap::from_regions(regions).map_err(|e| e.to_string())
}

/// Allocates guest RAM (split around the 32-bit MMIO gap), not yet registered with KVM
/// ([`register_memory`]). The memory is reserved, not touched: only what the guest uses
/// becomes resident. `shared`: a sealed memfd mapped shared (`--isolate devices`).
pub fn map_memory(mib: u64, shared: bool) -> Result<GuestMemoryMmap> {
    let mem_err = |reason: String| Error::Memory { mib, reason };
    let size = mib
        .checked_mul(1 << 20)
        .ok_or_else(|| mem_err("size overflows".into()))?;
    map_regions(&arch::ram_regions(size)?, shared).map_err(mem_err)
}

/// Registers every region of `mem` with KVM, one memory slot each.
///
/// Each KVM_SET_USER_MEMORY_REGION waits for an SRCU grace period of the VM (the kernel
/// swaps its memslot array): about 6 ms here, in the kernel but off the CPU, which is why
/// the builder runs this on a helper thread while it loads the kernel.
pub fn register_memory(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<()> {
    let mib = (mem.iter().map(|r| r.len()).sum::<u64>()) >> 20;
    let mem_err = |reason: String| Error::Memory { mib, reason };
    for (slot, region) in mem.iter().enumerate() {
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|e| mem_err(e.to_string()))?;
        let desc = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mapping that is never unmapped while the process
        // runs, so it outlives the VM's use of it.
        unsafe { vm.set_user_memory_region(desc) }.map_err(|source| Error::Kvm {
            name: "KVM_SET_USER_MEMORY_REGION",
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod shared_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Address, Bytes};

    #[test]
    fn every_region_is_2_mib_aligned_on_the_host_and_usable() {
        for mib in [2u64, 128, 3 * 1024 + 512] {
            let ranges = arch::ram_regions(mib << 20).unwrap();
            let mem = map_regions(&ranges, false).unwrap();
            assert_eq!(mem.num_regions(), ranges.len());
            for region in mem.iter() {
                let host = region
                    .get_host_address(vm_memory::MemoryRegionAddress(0))
                    .unwrap() as usize;
                assert_eq!(host % HUGE_PAGE, 0, "{mib} MiB: host address {host:#x}");
                assert_eq!(region.start_addr().0 % HUGE_PAGE as u64, 0);
                let last = region.start_addr().unchecked_add(region.len() - 8);
                mem.write_obj(0x1234_5678_u64, last).unwrap();
                assert_eq!(mem.read_obj::<u64>(last).unwrap(), 0x1234_5678);
            }
        }
    }
}
