//! Shared (memfd) guest RAM: what a forked device process writes, the VMM reads.

use super::*;
use vm_memory::{Bytes, GuestAddress};

#[test]
fn shared_guest_ram_is_seen_across_fork_and_sealed() {
    let ranges = arch::ram_regions(8 << 20).unwrap();
    let mem = map_regions(&ranges, true).unwrap();
    let addr = GuestAddress(0x1000);
    mem.write_obj(1u64, addr).unwrap();
    // SAFETY: the test process's child only writes guest RAM and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let _ = mem.write_obj(0xfeed_u64, addr);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(mem.read_obj::<u64>(addr).unwrap(), 0xfeed, "not shared");
}

#[test]
fn the_memfd_cannot_be_resized_or_resealed() {
    use std::os::fd::AsRawFd;
    let fd = sealed_memfd(4096).unwrap();
    // SAFETY: integer arguments on an fd the test owns.
    unsafe {
        assert_eq!(libc::ftruncate(fd.as_raw_fd(), 8192), -1, "grew");
        assert_eq!(libc::ftruncate(fd.as_raw_fd(), 0), -1, "shrank");
        assert_eq!(
            libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_WRITE),
            -1
        );
    }
}
