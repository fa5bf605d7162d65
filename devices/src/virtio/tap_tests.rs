//! Tap::open on a real TAP, in a network namespace of the test thread's own (needs root:
//! CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN for the TAP).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::*;

/// TUNSETPERSIST = _IOW('T', 203, int).
const TUNSETPERSIST: u64 = 0x4004_54cb;
/// TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6: what Firecracker leaves on a TAP.
const CSUM_TSO: libc::c_ulong = 0x1 | 0x2 | 0x4;
const SIOCETHTOOL: u64 = 0x8946;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_GTSO: u32 = 0x1e;

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    ifr
}

/// One ethtool "get" of interface `name`: 0 off, 1 on.
fn ethtool_get(name: &str, cmd: u32) -> u32 {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut ev = EthtoolValue { cmd, data: 7 };
    let mut ifr = ifreq(name);
    ifr.ifr_ifru.ifru_data = (&mut ev as *mut EthtoolValue).cast();
    // SAFETY: a plain socket call; the fd is owned right after.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(sock >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `sock` is a fresh fd nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: SIOCETHTOOL reads the ifreq and the ethtool_value it points to, and writes
    // the value; both live for the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
    assert_eq!(
        r,
        0,
        "SIOCETHTOOL {cmd:#x}: {}",
        std::io::Error::last_os_error()
    );
    ev.data
}

fn ioctl_val(fd: RawFd, req: u64, val: libc::c_ulong) {
    // SAFETY: TUNSETOFFLOAD and TUNSETPERSIST take their argument by value.
    let r = unsafe { libc::ioctl(fd, req as _, val) };
    assert_eq!(r, 0, "ioctl {req:#x}: {}", std::io::Error::last_os_error());
}

/// A persistent TAP `name` whose last user left checksum offload and TSO on.
fn tap_left_with_offloads(name: &str) {
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("/dev/net/tun");
    let mut ifr = ifreq(name);
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as i16;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which lives for the call.
    let r = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, &mut ifr) };
    assert_eq!(r, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
    ioctl_val(tun.as_raw_fd(), TUNSETOFFLOAD, CSUM_TSO);
    ioctl_val(tun.as_raw_fd(), TUNSETPERSIST, 1);
}

#[test]
fn open_turns_off_the_offloads_a_previous_user_left_on() {
    std::thread::spawn(|| {
        // SAFETY: unshare only changes this thread's network namespace (gone with it).
        let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            r,
            0,
            "TAP TEST CANNOT RUN: unshare(CLONE_NEWNET): {} (run the tests as root)",
            std::io::Error::last_os_error()
        );
        tap_left_with_offloads("mvoff0");
        assert_eq!(
            ethtool_get("mvoff0", ETHTOOL_GTSO),
            1,
            "set-up: TSO left on"
        );
        let tap = Tap::open("mvoff0").expect("Tap::open");
        assert_eq!(ethtool_get("mvoff0", ETHTOOL_GTSO), 0, "TSO off");
        assert_eq!(
            ethtool_get("mvoff0", ETHTOOL_GTXCSUM),
            0,
            "checksum offload off"
        );
        ioctl_val(tap.as_raw_fd(), TUNSETPERSIST, 0);
    })
    .join()
    .expect("TAP test thread");
}
