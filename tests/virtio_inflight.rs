//! Issue 14: virtio-blk under the load a real guest makes. The tiny guest's `blk-inflight`
//! scenario keeps many chains in flight from both vCPUs (one notify per batch), completes
//! them in interrupt handlers that read InterruptStatus and write InterruptACK like Linux's
//! `vm_interrupt`, checks every completion and its data, and then checks that a vCPU's
//! InterruptStatus read never waits for the device thread's I/O while the other vCPU keeps
//! the ring full (the vCPU that "never answered an NMI"). Run many times: the failures were
//! intermittent. `MICROVM_SOAK=n` runs it n times longer.

mod common;
use common::*;

/// The guest's disk layout (resources/tiny-guest/src/blk_inflight.c).
const READ_SECTORS: u64 = 2048;
const WRITE_BASE: u64 = READ_SECTORS;
const SLOT_SECTORS: u64 = 4;
const BATCH_MAX: u64 = 32;
const STRIDE: usize = 16;
const FINAL_STAMP: u32 = 0xffff_ffff;
const DISK_BYTES: usize = 16 << 20;

/// Word `w` of sector `s` of the pattern region (`inflight_pattern` in the guest).
fn pattern(sector: u64, word: u32) -> u32 {
    (((sector as u32) << 8) | word).wrapping_mul(2_654_435_761)
}

fn image(dir: &std::path::Path) -> String {
    let mut bytes = vec![0u8; DISK_BYTES];
    for s in 0..READ_SECTORS {
        for w in 0..128u32 {
            let at = (s as usize) * 512 + (w as usize) * 4;
            bytes[at..at + 4].copy_from_slice(&pattern(s, w).to_le_bytes());
        }
    }
    write_file(dir, "inflight.img", &bytes)
}

/// Every slot's area holds the last round's FINAL_STAMP writes (at the words the guest
/// fills), and the pattern region is untouched.
fn check_disk(path: &str, cpus: u64) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.len(), DISK_BYTES, "the image must not grow");
    let word = |s: u64, w: usize| {
        let at = s as usize * 512 + w * 4;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    };
    for s in (0..READ_SECTORS).step_by(97) {
        assert_eq!(word(s, 5), pattern(s, 5), "pattern sector {s} changed");
    }
    let batch = (256 / 3 / cpus).min(BATCH_MAX);
    for c in 0..cpus {
        for i in 0..batch {
            let first = WRITE_BASE + (c * BATCH_MAX + i) * SLOT_SECTORS;
            for n in 0..SLOT_SECTORS as usize * 128 / STRIDE {
                let (s, w) = (first + (n * STRIDE / 128) as u64, n * STRIDE % 128);
                assert_eq!(
                    word(s, w),
                    pattern(s, w as u32) ^ FINAL_STAMP,
                    "cpu {c} slot {i}: sector {s} word {w}"
                );
            }
        }
    }
}

/// The "up to <m> in flight" of the summary line starting with `prefix` (0 without it).
fn in_flight(out: &str, prefix: &str) -> u32 {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

fn boot_inflight(disk: &str, cpus: u8, irq: &str) -> Run {
    let cmdline = format!(
        "console=ttyS0 reboot=k tiny.test=blk-inflight tiny.cpus={cpus} \
         tiny.inflight.rounds=32 tiny.inflight.irq={irq}"
    );
    let d = format!("path={disk}");
    let cpus = cpus.to_string();
    run(&[
        "--kernel",
        TINY_BZIMAGE,
        "--cmdline",
        &cmdline,
        "--cpus",
        &cpus,
        "--disk",
        &d,
    ])
}

#[test]
fn many_requests_in_flight_from_two_vcpus_with_interrupts() {
    let dir = scratch("virtio-inflight");
    let _guard = DirGuard(dir.clone());
    let disk = image(&dir);
    let runs = 8 * soak();
    for n in 0..runs {
        let irq = if n % 2 == 0 { "all" } else { "one" };
        let r = boot_inflight(&disk, 2, irq);
        r.assert_pass();
        let out = &r.stdout;
        for cpu in 0..2 {
            let line = format!("tiny: blk-inflight: cpu {cpu}: 1056 requests ok");
            assert!(out.contains(&line), "run {n}: {line}\n{}", r.describe());
        }
        // Both batches overlap on most runs (64 in flight), but the host may serialize them.
        let in_flight = in_flight(out, "tiny: blk-inflight: 2 cpus, 2112 requests, up to ");
        assert!((32..=64).contains(&in_flight), "run {n}:\n{}", r.describe());
        assert!(
            out.contains("tiny: blk-inflight: feed: cpu 1 read InterruptStatus"),
            "run {n}:\n{}",
            r.describe()
        );
        check_disk(&disk, 2);
    }
}

#[test]
fn one_vcpu_fills_the_ring_before_one_notify() {
    let dir = scratch("virtio-inflight-1");
    let _guard = DirGuard(dir.clone());
    let disk = image(&dir);
    let r = boot_inflight(&disk, 1, "all");
    r.assert_pass();
    let in_flight = in_flight(
        &r.stdout,
        "tiny: blk-inflight: 1 cpus, 1056 requests, up to ",
    );
    assert_eq!(in_flight, 32, "{}", r.describe());
    check_disk(&disk, 1);
}
