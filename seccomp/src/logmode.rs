//! `--seccomp log` bookkeeping: which (thread, syscall) pairs were reported, how often they
//! happened, and the summary printed at exit.
//!
//! The SIGSYS handler records into a fixed table of atomics (no allocation, no lock), so a
//! hot loop making a forbidden call prints one line per (thread, syscall, ioctl request) and
//! is only counted afterwards. [`summary`] runs in normal context and may allocate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicU8, Ordering};

use crate::report::Violation;
use crate::{syscall_name, ThreadKind};

/// Distinct (thread, syscall) pairs remembered; more are counted in [`DROPPED`] only.
const SLOTS: usize = 256;

struct Slot {
    key: AtomicU64,
    ready: AtomicBool,
    count: AtomicU64,
    nr: AtomicU64,
    request: AtomicU64,
    kind: AtomicU16,
    name: [AtomicU8; 16],
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    key: AtomicU64::new(0),
    ready: AtomicBool::new(false),
    count: AtomicU64::new(0),
    nr: AtomicU64::new(0),
    request: AtomicU64::new(0),
    kind: AtomicU16::new(0),
    name: [const { AtomicU8::new(0) }; 16],
};

static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The ioctl request (arg 1) distinguishes ioctl violations; other syscalls ignore args.
fn request_of(v: &Violation<'_>) -> u64 {
    if v.nr == libc::SYS_ioctl {
        v.args[1] & 0xffff_ffff
    } else {
        u64::MAX
    }
}

/// FNV-1a over the thread name, number and request; never 0 (0 marks a free slot).
fn key(v: &Violation<'_>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = v
        .thread
        .bytes()
        .chain(v.nr.to_le_bytes())
        .chain(request_of(v).to_le_bytes());
    for b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h | 1
}

/// Counts `v`; returns true the first time its (thread, syscall, request) is seen, when the
/// handler must print the report line. Async-signal-safe.
pub(crate) fn record(v: &Violation<'_>) -> bool {
    let key = key(v);
    let start = (key as usize) % SLOTS;
    for i in 0..SLOTS {
        let slot = &TABLE[(start + i) % SLOTS];
        match slot
            .key
            .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                for (dst, src) in slot.name.iter().zip(v.thread.bytes()) {
                    dst.store(src, Ordering::Relaxed);
                }
                slot.nr.store(v.nr as u64, Ordering::Relaxed);
                slot.request.store(request_of(v), Ordering::Relaxed);
                slot.kind
                    .store(v.kind.map_or(0, |k| k.code()), Ordering::Relaxed);
                slot.count.fetch_add(1, Ordering::Relaxed);
                slot.ready.store(true, Ordering::Release);
                return true;
            }
            Err(existing) if existing == key => {
                slot.count.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            Err(_) => {}
        }
    }
    // Table full: count, and print only the first overflow.
    DROPPED.fetch_add(1, Ordering::Relaxed) == 0
}

/// One remembered violation.
struct Seen {
    kind: Option<ThreadKind>,
    nr: i64,
    request: Option<u64>,
    count: u64,
}

/// The exit summary of `--seccomp log`: per thread, each forbidden call and how often it
/// happened, then a seccompiler-JSON fragment per kind that would allow them. `None` when
/// nothing was recorded.
pub fn summary() -> Option<String> {
    let mut threads: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    for slot in TABLE.iter().filter(|s| s.ready.load(Ordering::Acquire)) {
        let name: Vec<u8> = slot
            .name
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .take_while(|b| *b != 0)
            .collect();
        let request = slot.request.load(Ordering::Relaxed);
        threads
            .entry(String::from_utf8_lossy(&name).into_owned())
            .or_default()
            .push(Seen {
                kind: ThreadKind::from_code(slot.kind.load(Ordering::Relaxed)),
                nr: slot.nr.load(Ordering::Relaxed) as i64,
                request: (request != u64::MAX).then_some(request),
                count: slot.count.load(Ordering::Relaxed),
            });
    }
    let dropped = DROPPED.load(Ordering::Relaxed);
    if threads.is_empty() && dropped == 0 {
        return None;
    }
    let mut out = String::from("microvm: seccomp log summary (forbidden calls that ran):\n");
    let mut per_kind: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for (thread, seen) in &mut threads {
        seen.sort_by_key(|s| (s.nr, s.request));
        for s in seen.iter() {
            let name = syscall_name(s.nr).unwrap_or("unknown");
            let req = s.request.map(|r| {
                let rname = crate::ioctls::name_of(r).unwrap_or("?");
                format!(" request {rname} ({r:#x})")
            });
            let _ = writeln!(
                out,
                "  thread {thread}: {name} ({}){} x{}",
                s.nr,
                req.as_deref().unwrap_or(""),
                s.count
            );
            let kind = s.kind.map_or("unknown-kind", |k| k.name());
            let args = s.request.map_or(String::new(), |r| {
                format!(r#", "args": [{{"index": 1, "type": "dword", "op": "eq", "val": {r}}}]"#)
            });
            per_kind.entry(kind).or_default().push(format!(
                r#"    {{"syscall": "{name}"{args}, "comment": "seen {} time(s) on {thread} under --seccomp log"}}"#,
                s.count
            ));
        }
    }
    if dropped > 0 {
        let _ = writeln!(
            out,
            "  ... and {dropped} more beyond {SLOTS} distinct calls"
        );
    }
    out.push_str("microvm: seccomp log summary: to allow them, add to the \"filter\" list of each kind (see `microvm seccomp print --format json`, then --seccomp-filter):\n");
    for (kind, entries) in per_kind {
        let _ = writeln!(out, "  {kind}:\n{}", entries.join(",\n"));
    }
    Some(out)
}
