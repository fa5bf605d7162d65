//! virtio-blk against well-formed and hostile requests (H1..H5), through the transport.

use std::fs::File;
use std::path::PathBuf;

use vm_memory::{Bytes, GuestAddress};

use super::super::testutil::*;
use super::super::throttle::{Throttle, Timer};
use super::super::token_bucket::Limiter;
use super::Block;

const HDR: u64 = DATA;
const STATUS: u64 = DATA + 0x80;
const BUF: u64 = DATA + 0x1000;
const SECTORS: u64 = 8;

struct Disk {
    path: PathBuf,
    h: Harness,
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn disk(name: &str, read_only: bool) -> Disk {
    disk_with(name, read_only, None)
}

fn disk_with(name: &str, read_only: bool, throttle: Option<Throttle>) -> Disk {
    let path = std::env::temp_dir().join(format!("microvm-blk-{}-{name}", std::process::id()));
    let mut bytes = vec![0u8; (SECTORS * 512) as usize];
    bytes[..16].copy_from_slice(b"HOST-SECTOR-ZERO");
    std::fs::write(&path, &bytes).unwrap();
    let file = File::options()
        .read(true)
        .write(!read_only)
        .open(&path)
        .unwrap();
    let mut block = Block::new(0, file, SECTORS * 512, read_only);
    if let Some(t) = throttle {
        block = block.with_throttle(t);
    }
    let mut h = Harness::new(Box::new(block));
    h.init();
    Disk { path, h }
}

impl Disk {
    fn file(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }

    /// Writes a header and a 0xff status byte.
    fn header(&self, kind: u32, sector: u64) {
        let mem = &self.h.mem;
        mem.write_obj(kind, GuestAddress(HDR)).unwrap();
        mem.write_obj(0u32, GuestAddress(HDR + 4)).unwrap();
        mem.write_obj(sector, GuestAddress(HDR + 8)).unwrap();
        mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    }

    fn status(&self) -> u8 {
        self.h.mem.read_obj(GuestAddress(STATUS)).unwrap()
    }

    /// header + one data buffer + status; returns (status, used len).
    fn request(&mut self, ring: &mut Ring, kind: u32, sector: u64, data: D) -> (u8, u32) {
        self.header(kind, sector);
        ring.add(&[(HDR, 16, false), data, (STATUS, 1, true)]);
        self.h.t.notify(0);
        let (idx, used) = self.h.used(0);
        (self.status(), used[usize::from(idx) - 1].1)
    }
}

#[test]
fn in_out_flush_get_id() {
    let mut d = disk("ok", false);
    let mut ring = d.h.ring(0);
    assert_eq!(d.request(&mut ring, 0, 0, (BUF, 512, true)), (0, 513));
    let mut got = [0u8; 16];
    d.h.mem.read_slice(&mut got, GuestAddress(BUF)).unwrap();
    assert_eq!(&got, b"HOST-SECTOR-ZERO");

    d.h.mem
        .write_slice(&[0xab; 512], GuestAddress(BUF))
        .unwrap();
    assert_eq!(d.request(&mut ring, 1, 1, (BUF, 512, false)), (0, 1));
    assert!(d.file()[512..1024].iter().all(|&b| b == 0xab));

    d.header(4, 0);
    ring.add(&[(HDR, 16, false), (STATUS, 1, true)]);
    d.h.t.notify(0);
    assert_eq!(d.status(), 0, "flush");

    assert_eq!(d.request(&mut ring, 8, 0, (BUF, 20, true)), (0, 21));
    let mut id = [0u8; 20];
    d.h.mem.read_slice(&mut id, GuestAddress(BUF)).unwrap();
    assert_eq!(&id[..13], b"microvm-blk0\0");

    assert_eq!(d.request(&mut ring, 99, 0, (BUF, 512, true)).0, 2, "UNSUPP");
}

#[test]
fn h1_looping_chain_completes_without_status_and_the_queue_goes_on() {
    let mut d = disk("h1", false);
    let mut ring = d.h.ring(0);
    d.header(0, 0);
    let a = ring.take_desc();
    let b = ring.take_desc();
    ring.store(a, HDR, 16, F_NEXT, b);
    ring.store(b, BUF, 512, F_NEXT | F_WRITE, a);
    ring.publish(a);
    d.h.t.notify(0);
    assert_eq!(d.h.used(0), (1, vec![(u32::from(a), 0)]));
    assert_eq!(d.status(), 0xff, "no status written");
    assert_eq!(d.request(&mut ring, 0, 0, (BUF, 512, true)).0, 0);
}

#[test]
fn h2_h3_buffers_outside_ram_or_absurdly_long_are_ioerr() {
    let mut d = disk("h23", false);
    let before = d.file();
    let mut ring = d.h.ring(0);
    assert_eq!(
        d.request(&mut ring, 0, 0, (0xffff_ff00_0000, 512, true)).0,
        1
    );
    assert_eq!(d.request(&mut ring, 0, 0, (BUF, u32::MAX, true)).0, 1);
    assert_eq!(d.request(&mut ring, 1, 0, (BUF, u32::MAX, false)).0, 1);
    // Inside RAM but past the file's end.
    assert_eq!(d.request(&mut ring, 1, 0, (BUF, 0x8_0000, false)).0, 1);
    assert_eq!(d.file(), before, "nothing written, nothing grown");
    assert_eq!(d.request(&mut ring, 0, 0, (BUF, 512, true)).0, 0);
}

#[test]
fn h4_wrong_directions_are_ioerr() {
    let mut d = disk("h4", false);
    let mut ring = d.h.ring(0);
    assert_eq!(d.request(&mut ring, 0, 0, (BUF, 512, false)).0, 1);
    d.header(0, 0);
    ring.add(&[(HDR, 16, true), (BUF, 512, true), (STATUS, 1, true)]);
    d.h.t.notify(0);
    assert_eq!(d.status(), 1, "writable header");
    // No writable status byte at all: completed with len 0, nothing written.
    d.header(0, 0);
    ring.add(&[(HDR, 16, false), (BUF, 512, true), (STATUS, 1, false)]);
    d.h.t.notify(0);
    assert_eq!(d.status(), 0xff);
    assert_eq!(d.h.used(0).1.last().map(|e| e.1), Some(0));
}

#[test]
fn h5_sectors_out_of_range_are_ioerr_and_the_file_does_not_grow() {
    let mut d = disk("h5", false);
    let mut ring = d.h.ring(0);
    assert_eq!(d.request(&mut ring, 0, SECTORS, (BUF, 512, true)).0, 1);
    assert_eq!(d.request(&mut ring, 1, SECTORS, (BUF, 512, false)).0, 1);
    assert_eq!(
        d.request(&mut ring, 1, SECTORS - 1, (BUF, 1024, false)).0,
        1
    );
    assert_eq!(d.request(&mut ring, 0, u64::MAX, (BUF, 512, true)).0, 1);
    assert_eq!(d.file().len() as u64, SECTORS * 512);
}

#[test]
fn read_only_disk_refuses_writes() {
    let mut d = disk("ro", true);
    let before = d.file();
    let mut ring = d.h.ring(0);
    d.h.mem
        .write_slice(&[0xcd; 512], GuestAddress(BUF))
        .unwrap();
    assert_eq!(d.request(&mut ring, 1, 0, (BUF, 512, false)).0, 1);
    assert_eq!(d.file(), before);
    assert_eq!(d.request(&mut ring, 0, 0, (BUF, 512, true)).0, 0);
}

#[test]
fn a_writable_disk_is_flushed_on_stop_a_read_only_one_is_not() {
    use super::super::VirtioDevice;
    let path = std::env::temp_dir().join(format!("microvm-blk-{}-stop", std::process::id()));
    std::fs::write(&path, vec![0u8; 512]).unwrap();
    let open = |rw: bool| File::options().read(true).write(rw).open(&path).unwrap();
    let flushed = Block::new(0, open(true), 512, false).flush_on_stop();
    let ro = Block::new(0, open(false), 512, true).flush_on_stop();
    let _ = std::fs::remove_file(&path);
    assert!(
        flushed.unwrap(),
        "a writable disk is synced when microvm stops"
    );
    assert!(!ro.unwrap(), "a read-only disk has nothing to sync");
}

#[test]
fn one_notify_serves_every_available_chain_and_signals_once() {
    let mut d = disk("batch", false);
    let mut ring = d.h.ring(0);
    let _ = d.h.irq.read();
    // Five reads of sectors 0..5, each with its own header, buffer and status byte.
    for s in 0..5u64 {
        let (hdr, buf, status) = (HDR + s * 16, BUF + s * 512, STATUS + s);
        d.h.mem.write_obj(0u32, GuestAddress(hdr)).unwrap();
        d.h.mem.write_obj(0u32, GuestAddress(hdr + 4)).unwrap();
        d.h.mem.write_obj(s, GuestAddress(hdr + 8)).unwrap();
        ring.add(&[(hdr, 16, false), (buf, 512, true), (status, 1, true)]);
    }
    d.h.t.notify(0);
    let (idx, used) = d.h.used(0);
    assert_eq!(idx, 5);
    assert!(used.iter().all(|&(_, len)| len == 513), "{used:?}");
    assert_eq!(d.h.irq.read().unwrap(), 1, "one interrupt for the batch");
    assert_eq!(d.h.t.interrupt_status(), 1);
    for s in 0..5u64 {
        let st: u8 = d.h.mem.read_obj(GuestAddress(STATUS + s)).unwrap();
        assert_eq!(st, 0, "request {s}");
    }
}

/// A disk limited to `bw` bytes/s and `ops` requests/s on a clock the test moves.
fn limited(name: &str, bw: u64, ops: u64) -> (Disk, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let (now, clock) = manual_clock();
    let t = Throttle::new(Limiter::new(bw, ops, 0), clock, Timer::new().unwrap());
    (disk_with(name, false, Some(t)), now)
}

fn set(now: &std::sync::atomic::AtomicU64, ms: u64) {
    now.store(ms * 1_000_000, std::sync::atomic::Ordering::Relaxed);
}

/// Adds a 512-byte read of sector 0 without notifying.
fn add_read(d: &mut Disk, ring: &mut Ring, len: u32) {
    d.header(0, 0);
    ring.add(&[(HDR, 16, false), (BUF, len, true), (STATUS, 1, true)]);
}

#[test]
fn ops_limit_holds_requests_in_the_ring_until_the_timer() {
    let (mut d, now) = limited("ops", 0, 2);
    let mut ring = d.h.ring(0);
    for _ in 0..3 {
        add_read(&mut d, &mut ring, 512);
    }
    d.h.t.notify(0);
    assert_eq!(d.h.used(0).0, 2, "two requests per second");
    // The third waits in the ring; a notify from the guest does not serve it early.
    d.h.t.notify(0);
    assert_eq!(d.h.used(0).0, 2);
    set(&now, 499);
    d.h.t.timer_fired(0);
    assert_eq!(d.h.used(0).0, 2, "a token is 500 ms");
    set(&now, 500);
    d.h.t.timer_fired(0);
    assert_eq!(d.h.used(0).0, 3, "served once the token is there");
    assert_eq!(d.status(), 0, "and served correctly");
    // Stopping while throttled still flushes.
    add_read(&mut d, &mut ring, 512);
    d.h.t.notify(0);
    assert_eq!(d.h.used(0).0, 3);
    d.h.t.stop_device();
}

#[test]
fn bytes_limit_admits_a_request_larger_than_the_bucket_then_makes_the_next_wait() {
    let (mut d, now) = limited("bw", 1024, 0);
    let mut ring = d.h.ring(0);
    add_read(&mut d, &mut ring, 4096);
    add_read(&mut d, &mut ring, 512);
    d.h.t.notify(0);
    // 4096 bytes through a 1024-byte bucket: admitted full, 3072 owed (3 s), then 512 more.
    assert_eq!(d.h.used(0).0, 1);
    set(&now, 3499);
    d.h.t.timer_fired(0);
    assert_eq!(d.h.used(0).0, 1);
    set(&now, 3500);
    d.h.t.timer_fired(0);
    assert_eq!(d.h.used(0), (2, vec![(0, 4097), (3, 513)]));
}

#[test]
fn a_reset_while_throttled_leaves_nothing_to_serve() {
    let (mut d, now) = limited("reset", 0, 1);
    let mut ring = d.h.ring(0);
    add_read(&mut d, &mut ring, 512);
    add_read(&mut d, &mut ring, 512);
    d.h.t.notify(0);
    assert_eq!(d.h.used(0).0, 1);
    d.h.w(virtio_bindings::virtio_mmio::VIRTIO_MMIO_STATUS, 0);
    set(&now, 5000);
    d.h.t.timer_fired(0);
    assert_eq!(d.h.used(0).0, 1, "the reset queue is not served");
}
