//! virtio-net on a fake TAP (a SOCK_SEQPACKET pair): tx, rx, header rules, TAP failures,
//! rate limits.

use std::os::fd::{FromRawFd, OwnedFd};

use vm_memory::{Bytes, GuestAddress};

use super::super::net_hdr::TX_OFFLOADS;
use super::super::tap::Tap;
use super::super::testutil::*;
use super::super::throttle::{Throttle, Timer};
use super::super::token_bucket::Limiter;
use super::*;
use crate::BusDevice;

/// A SOCK_SEQPACKET pair: one end is the device's "TAP", the other the host network.
fn fake_tap() -> (Tap, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into `fds`.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0);
    // SAFETY: both fds are fresh and owned by nobody else.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (Tap::from_fd(a, "fake0"), b)
}

#[test]
fn tx_reaches_the_tap_and_rx_waits_for_buffers() {
    let (tap, peer) = fake_tap();
    let mut h = Harness::new(Box::new(Net::new(tap, default_mac(0))));
    h.init();
    let mut mac = [0u8; 6];
    h.t.read(0x100, &mut mac);
    assert_eq!(mac, [6, 0, 0, 0, 0, 1]);

    // tx: header + frame in two buffers.
    h.mem
        .write_slice(&[0u8; VNET_HDR_LEN], GuestAddress(DATA))
        .unwrap();
    h.mem
        .write_slice(b"frame-out", GuestAddress(DATA + 0x100))
        .unwrap();
    let mut tx = h.ring(TX);
    tx.add(&[(DATA, VNET_HDR_LEN as u32, false), (DATA + 0x100, 9, false)]);
    h.t.notify(TX);
    assert_eq!(h.used(TX).0, 1);
    let mut got = [0u8; 64];
    // SAFETY: reading into `got`.
    let n = unsafe { libc::read(peer.as_raw_fd(), got.as_mut_ptr().cast(), 64) };
    assert_eq!(n as usize, VNET_HDR_LEN + 9);
    assert_eq!(&got[VNET_HDR_LEN..n as usize], b"frame-out");

    // rx with no buffer: the device stops polling the TAP.
    let frame = [7u8; 40];
    // SAFETY: writing `frame`.
    unsafe { libc::write(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
    h.t.host_fd_ready();
    assert!(
        h.t.wanted_host_fd().is_none(),
        "must not poll without rx buffers"
    );
    // The guest adds a buffer and notifies rx: the pending frame arrives.
    let mut rx = h.ring(RX);
    rx.add(&[(DATA + 0x1000, 2048, true)]);
    rx.add(&[(DATA + 0x2000, 2048, true)]);
    h.t.notify(RX);
    assert_eq!(h.used(RX), (1, vec![(0, 40)]));
    assert!(
        h.t.wanted_host_fd().is_some(),
        "a buffer is left: poll the TAP"
    );
}

#[test]
fn a_failing_tap_stops_the_queues_not_the_vmm() {
    let (tap, peer) = fake_tap();
    drop(peer);
    let mut h = Harness::new(Box::new(Net::new(tap, default_mac(0))));
    h.init();
    let mut tx = h.ring(TX);
    tx.add(&[(DATA, 64, false)]);
    h.t.notify(TX);
    assert_eq!(h.used(TX).0, 1, "the frame is completed (dropped)");
    assert!(h.t.wanted_host_fd().is_none(), "TAP no longer polled");
}

/// A tx chain of `hdr` + `frame` in two buffers, notified.
fn send_frame(h: &mut Harness, tx: &mut Ring, hdr: [u8; VNET_HDR_LEN], frame: &[u8]) {
    h.mem.write_slice(&hdr, GuestAddress(DATA)).unwrap();
    h.mem
        .write_slice(frame, GuestAddress(DATA + 0x100))
        .unwrap();
    tx.add(&[
        (DATA, VNET_HDR_LEN as u32, false),
        (DATA + 0x100, frame.len() as u32, false),
    ]);
    h.t.notify(TX);
}

fn recv(peer: &OwnedFd) -> Vec<u8> {
    let mut got = vec![0u8; MAX_FRAME];
    // SAFETY: reading into `got`.
    let n = unsafe { libc::read(peer.as_raw_fd(), got.as_mut_ptr().cast(), got.len()) };
    got.truncate(n.max(0) as usize);
    got
}

/// NEEDS_CSUM, GSO TCPv4, hdr_len 54, gso_size 1448, csum_start 34 + csum_offset 16,
/// num_buffers 0x0909: every field set.
const TSO4: [u8; VNET_HDR_LEN] = [1, 1, 54, 0, 0xa8, 5, 34, 0, 16, 0, 9, 9];

/// The virtio feature words the device offers (both halves).
fn offered(h: &mut Harness) -> u64 {
    use virtio_bindings::virtio_mmio::{
        VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL,
    };
    (0..2).fold(0, |f, sel| {
        h.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
        f | u64::from(h.r(VIRTIO_MMIO_DEVICE_FEATURES)) << (32 * sel)
    })
}

#[test]
fn without_offloads_tx_headers_reach_the_tap_zeroed_and_rx_headers_say_one_buffer() {
    let (tap, peer) = fake_tap();
    let mut h = Harness::new(Box::new(
        Net::new(tap, default_mac(0)).with_tx_offload(false),
    ));
    assert_eq!(offered(&mut h) & TX_OFFLOADS, 0, "offload=off offers none");
    h.init();
    let mut tx = h.ring(TX);
    send_frame(&mut h, &mut tx, TSO4, &[0x55; 60]);
    let got = recv(&peer);
    assert_eq!(
        &got[..VNET_HDR_LEN],
        &[0; VNET_HDR_LEN],
        "no offload negotiated"
    );
    assert_eq!(&got[VNET_HDR_LEN..], &[0x55; 60]);

    // rx: whatever the TAP left in num_buffers (here 0xabcd), the guest reads 1.
    let mut frame = [0x42u8; 40];
    frame[10..12].copy_from_slice(&[0xcd, 0xab]);
    // SAFETY: writing `frame`.
    unsafe { libc::write(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
    let mut rx = h.ring(RX);
    rx.add(&[(DATA + 0x1000, 2048, true)]);
    h.t.notify(RX);
    assert_eq!(h.used(RX), (1, vec![(0, 40)]));
    let mut hdr = [0u8; VNET_HDR_LEN];
    h.mem
        .read_slice(&mut hdr, GuestAddress(DATA + 0x1000))
        .unwrap();
    assert_eq!(&hdr[10..12], &[1, 0], "num_buffers = 1");
    assert_eq!(&hdr[..10], &[0x42; 10]);
}

#[test]
fn a_frame_the_tap_refuses_is_dropped_and_the_queues_go_on() {
    let (tap, peer) = fake_tap();
    // A small send buffer: a big frame gets EMSGSIZE, as a TAP answers EINVAL.
    let size: libc::c_int = 4096;
    // SAFETY: setting SO_SNDBUF from a valid c_int.
    let rc = unsafe {
        libc::setsockopt(
            tap.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let mut h = Harness::new(Box::new(Net::new(tap, default_mac(0))));
    h.init();
    let mut tx = h.ring(TX);
    send_frame(&mut h, &mut tx, [0; VNET_HDR_LEN], &[0x55; 30_000]);
    assert_eq!(h.used(TX).0, 1, "completed (dropped)");
    send_frame(&mut h, &mut tx, [0; VNET_HDR_LEN], b"small");
    assert_eq!(h.used(TX).0, 2);
    assert_eq!(&recv(&peer)[VNET_HDR_LEN..], b"small", "the device goes on");
    assert!(h.t.wanted_host_fd().is_some(), "rx still polled");
}

/// A throttle of `bw` bytes/s on the clock `now` (milliseconds set by [`at`]).
fn throttle(bw: u64, clock: super::super::throttle::Clock) -> Throttle {
    Throttle::new(Limiter::new(bw, 0, 0), clock, Timer::new().unwrap())
}

fn at(now: &std::sync::atomic::AtomicU64, ms: u64) {
    now.store(ms * 1_000_000, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn tx_bytes_limit_holds_frames_in_the_ring_until_the_timer() {
    let (tap, peer) = fake_tap();
    let (now, clock) = manual_clock();
    // 1000 bytes/s: a 600-byte frame, then one more needs 200 ms of refill.
    let net = Net::new(tap, default_mac(0)).with_throttles(None, Some(throttle(1000, clock)));
    let mut h = Harness::new(Box::new(net));
    h.init();
    let mut tx = h.ring(TX);
    send_frame(&mut h, &mut tx, [0; VNET_HDR_LEN], &[1; 600]);
    send_frame(&mut h, &mut tx, [0; VNET_HDR_LEN], &[2; 600]);
    assert_eq!(h.used(TX).0, 1, "the second frame waits");
    assert_eq!(recv(&peer).len(), VNET_HDR_LEN + 600);
    at(&now, 199);
    h.t.timer_fired(0); // the only timer: tx
    assert_eq!(h.used(TX).0, 1);
    at(&now, 200);
    h.t.timer_fired(0); // the only timer: tx
    assert_eq!(h.used(TX).0, 2, "sent once the tokens are there");
    assert_eq!(&recv(&peer)[VNET_HDR_LEN..], &[2; 600]);
}

#[test]
fn rx_bytes_limit_keeps_the_frame_and_stops_polling_the_tap() {
    let (tap, peer) = fake_tap();
    let (now, clock) = manual_clock();
    let net = Net::new(tap, default_mac(0)).with_throttles(Some(throttle(1000, clock)), None);
    let mut h = Harness::new(Box::new(net));
    h.init();
    let mut rx = h.ring(RX);
    for i in 0..3 {
        rx.add(&[(DATA + 0x1000 * (i + 1), 2048, true)]);
    }
    h.t.notify(RX);
    for fill in [1u8, 2] {
        let frame = [fill; VNET_HDR_LEN + 700];
        // SAFETY: writing `frame`.
        unsafe { libc::write(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
    }
    h.t.host_fd_ready();
    assert_eq!(h.used(RX).0, 1, "700 of 1000 bytes; the second frame waits");
    assert!(
        h.t.wanted_host_fd().is_none(),
        "no TAP polling while throttled"
    );
    at(&now, 400);
    h.t.timer_fired(0);
    assert_eq!(h.used(RX), (2, vec![(0, 712), (1, 712)]));
    let mut got = [0u8; 16];
    h.mem
        .read_slice(&mut got, GuestAddress(DATA + 0x2000 + VNET_HDR_LEN as u64))
        .unwrap();
    assert_eq!(got, [2; 16], "the kept frame, intact");
    assert!(h.t.wanted_host_fd().is_some(), "polling the TAP again");
}

/// Writes `frame` to the host end of the fake TAP.
fn inject(peer: &OwnedFd, frame: &[u8]) {
    // SAFETY: writing `frame`.
    let n = unsafe { libc::write(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
    assert_eq!(n as usize, frame.len());
}

#[test]
fn tx_gathers_split_chains_straight_from_guest_memory_with_the_devices_header() {
    let (tap, peer) = fake_tap();
    let net = Net::new(tap, default_mac(0)).with_tx_offload(false);
    let mut h = Harness::new(Box::new(net));
    h.init();
    // The header split 5 + 7 over two buffers, the second also holding the frame's start;
    // the guest's header bytes are garbage (0xee) and must not reach the TAP.
    h.mem.write_slice(&[0xee; 5], GuestAddress(DATA)).unwrap();
    let mut second = vec![0xee; 7];
    second.extend_from_slice(b"abc");
    h.mem
        .write_slice(&second, GuestAddress(DATA + 0x100))
        .unwrap();
    h.mem
        .write_slice(b"defgh", GuestAddress(DATA + 0x200))
        .unwrap();
    let mut tx = h.ring(TX);
    tx.add(&[
        (DATA, 5, false),
        (DATA + 0x100, 10, false),
        (DATA + 0x200, 5, false),
    ]);
    h.t.notify(TX);
    assert_eq!(h.used(TX).0, 1);
    let got = recv(&peer);
    assert_eq!(&got[..VNET_HDR_LEN], &[0; VNET_HDR_LEN]);
    assert_eq!(&got[VNET_HDR_LEN..], b"abcdefgh");

    // A buffer outside guest RAM: the frame is dropped, the chain completed, tx goes on.
    tx.add(&[(DATA, 12, false), (0xffff_0000, 64, false)]);
    h.t.notify(TX);
    assert_eq!(h.used(TX).0, 2);
    send_frame(&mut h, &mut tx, [0; VNET_HDR_LEN], b"next");
    assert_eq!(&recv(&peer)[VNET_HDR_LEN..], b"next");
}

#[test]
fn rx_fills_split_chains_truncates_short_ones_and_drops_into_no_ram() {
    let (tap, peer) = fake_tap();
    let mut h = Harness::new(Box::new(Net::new(tap, default_mac(0))));
    h.init();
    let mut rx = h.ring(RX);
    // Chain 0: the header split 8 + 4 (num_buffers lands in the second), the frame after.
    rx.add(&[
        (DATA, 8, true),
        (DATA + 0x100, 4, true),
        (DATA + 0x200, 100, true),
    ]);
    // Chain 1: 20 bytes for a 40-byte frame. Chain 2: outside RAM. Chain 3: roomy.
    rx.add(&[(DATA + 0x300, 20, true)]);
    rx.add(&[(0xffff_0000, 2048, true)]);
    rx.add(&[(DATA + 0x1000, 2048, true)]);
    h.t.notify(RX);
    let mut frame = [0u8; 40];
    for (i, b) in frame.iter_mut().enumerate() {
        *b = i as u8;
    }
    for _ in 0..4 {
        inject(&peer, &frame);
    }
    h.t.host_fd_ready();
    assert_eq!(
        h.used(RX),
        (4, vec![(0, 40), (3, 20), (4, 0), (5, 40)]),
        "whole, truncated, dropped, whole (heads: chain 0 takes descriptors 0-2)"
    );
    let mut got = [0u8; 4];
    h.mem
        .read_slice(&mut got, GuestAddress(DATA + 0x100))
        .unwrap();
    assert_eq!(
        got,
        [8, 9, 1, 0],
        "bytes 8-9 of the header, then num_buffers = 1"
    );
    let mut body = [0u8; 28];
    h.mem
        .read_slice(&mut body, GuestAddress(DATA + 0x200))
        .unwrap();
    assert_eq!(&body[..], &frame[12..]);
    let mut short = [0u8; 20];
    h.mem
        .read_slice(&mut short, GuestAddress(DATA + 0x300))
        .unwrap();
    assert_eq!(
        &short[12..],
        &frame[12..20],
        "the start of the frame, then cut"
    );
    let mut last = [0u8; 40];
    h.mem
        .read_slice(&mut last, GuestAddress(DATA + 0x1000))
        .unwrap();
    assert_eq!(
        &last[12..],
        &frame[12..],
        "the next frame is whole, not the tail of one"
    );
}

#[test]
fn negotiated_offloads_pass_the_checked_header_and_drop_a_hostile_one() {
    let (tap, peer) = fake_tap();
    let mut h = Harness::new(Box::new(Net::new(tap, default_mac(0))));
    assert_eq!(
        offered(&mut h) & TX_OFFLOADS,
        TX_OFFLOADS,
        "offered by default"
    );
    h.init();
    let mut tx = h.ring(TX);
    // The header split over two descriptors (6 + 6 bytes), the frame in a third.
    h.mem.write_slice(&TSO4, GuestAddress(DATA)).unwrap();
    h.mem
        .write_slice(&[0x77; 3000], GuestAddress(DATA + 0x100))
        .unwrap();
    tx.add(&[
        (DATA, 6, false),
        (DATA + 6, 6, false),
        (DATA + 0x100, 3000, false),
    ]);
    h.t.notify(TX);
    let got = recv(&peer);
    assert_eq!(got.len(), VNET_HDR_LEN + 3000);
    assert_eq!(got[..10], TSO4[..10], "the guest's header, as checked");
    assert_eq!(got[10..12], [0, 0], "num_buffers zeroed on tx");

    // UDP fragmentation offload was never offered: dropped, completed, nothing sent.
    let mut ufo = TSO4;
    ufo[1] = 3;
    send_frame(&mut h, &mut tx, ufo, &[0x66; 3000]);
    assert_eq!(h.used(TX).0, 2, "the refused frame is completed");
    assert!(recv(&peer).is_empty(), "nothing reached the TAP");
    // The queue goes on.
    send_frame(&mut h, &mut tx, [0; VNET_HDR_LEN], b"next");
    assert_eq!(&recv(&peer)[VNET_HDR_LEN..], b"next");
}

#[test]
fn a_driver_that_takes_no_offload_gets_zeroed_headers_even_after_one_that_did() {
    let (tap, peer) = fake_tap();
    let mut h = Harness::new(Box::new(Net::new(tap, default_mac(0))));
    h.init();
    // A reset, then a driver that accepts none of the offloads.
    h.init_with(!TX_OFFLOADS);
    let mut tx = h.ring(TX);
    send_frame(&mut h, &mut tx, TSO4, &[0x55; 60]);
    assert_eq!(recv(&peer)[..VNET_HDR_LEN], [0; VNET_HDR_LEN]);
}
