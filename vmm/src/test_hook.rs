//! Test builds only (cargo feature `test-hooks`, see README "Run the tests"): the hook
//! device on port 0x510 and two knobs, all registered by [`register`], which the builder
//! calls once at the end of `build`. Nothing else in microvm knows about them.
//!
//! The device: the tiny guest's `seccomp-hook` scenario
//! (resources/tiny-guest/src/seccomp_hook.c) makes a chosen thread attempt a forbidden
//! system call (`getppid`), so the tests can check what each `--seccomp` mode does end to
//! end. A guest `outb` of
//! - 1: the vCPU thread executing it makes the call itself (in the bus write);
//! - 2: the `vmm` thread makes it, woken through an eventfd its event loop serves;
//! - 3: the first device thread to wake up makes it, woken through an eventfd every device
//!   thread's event loop serves.
//!
//! An `inb` reads bit 0 once the `vmm` thread made its call, bit 1 once a device thread did.
//!
//! The knobs, read from the environment:
//! - `MICROVM_TEST_STACK_FILTER`: the `vmm` thread installs an allow-all filter before it
//!   spawns, which every thread then inherits under its own; the sandbox check must refuse
//!   to run the guest.
//! - `MICROVM_TEST_REFUSED_FILTER=<thread>`: that thread (`vcpu1`, `virtio-rng0`, ...) gets
//!   a filter the kernel refuses, so its install fails (exit code 5).
//! - `MICROVM_TEST_FILTER_HOLE=<thread>:<syscall>,...`: each named thread's filter allows
//!   that system call with any arguments, ahead of its rules: the holes the outside check
//!   (tests/outside.rs) must find;
//! - `MICROVM_TEST_FILTER_DENY=<thread>:<syscall>,...`: each named thread's filter refuses
//!   that call as a forbidden one (a call the thread does make: what `--seccomp log` must
//!   report, from a device process too).
//! - `MICROVM_TEST_JAIL_PROBE=<path>|tcp:<addr>,...`: once the VM is built (inside the
//!   jail, before any filter), the `vmm` thread opens each path for reading or connects to
//!   each address, and prints what happened: what `--jail` lets a taken-over VMM reach.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use devices::BusDevice;
use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use seccomp::{BpfProgram, SockFilter};
use vmm_sys_util::eventfd::EventFd;

use crate::builder::Vm;
use crate::error::{Error, Result};

/// The hook device's port.
pub const PORT: u16 = 0x510;
/// Guest writes this: the writing vCPU thread makes the call itself.
const SELF: u8 = 1;
/// Guest writes this: the vmm thread makes the call.
const VMM: u8 = 2;
/// Guest writes this: the next device thread to wake up makes the call.
const DEVICE: u8 = 3;
/// Status bits the guest reads back.
const VMM_DID: u8 = 1;
const DEVICE_DID: u8 = 2;

/// What the hook's three sides share.
struct State {
    vmm_pending: AtomicBool,
    device_pending: AtomicBool,
    done: AtomicU8,
    vmm_wake: EventFd,
    device_wake: EventFd,
}

/// Adds the hook device, its `vmm`-side and device-side subscribers, and applies the knobs.
pub fn register(mut vm: Vm) -> Result<Vm> {
    probe_if_asked();
    stack_filter_if_asked()?;
    let host = |what: &'static str| move |source: std::io::Error| Error::Host { what, source };
    let state = Arc::new(State {
        vmm_pending: AtomicBool::new(false),
        device_pending: AtomicBool::new(false),
        done: AtomicU8::new(0),
        vmm_wake: EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating a hook eventfd"))?,
        device_wake: EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating a hook eventfd"))?,
    });
    // vCPUs write both wake eventfds; the vmm thread reads one, the device threads the other.
    vm.hook_fds = vec![state.vmm_wake.as_raw_fd(), state.device_wake.as_raw_fd()];
    for dev in &mut vm.virtio {
        dev.add_hook_fd(state.device_wake.as_raw_fd());
    }
    let device = HookDevice(state.clone());
    vm.pio
        .insert(Arc::new(Mutex::new(device)), u64::from(PORT), 1)
        .map_err(|source| Error::Bus {
            device: "test hook".into(),
            source,
        })?;
    vm.vmm_subscribers.push(Box::new(Waker {
        state: state.clone(),
        side: Side::Vmm,
    }));
    for dev in &mut vm.virtio {
        dev.add_subscriber(Box::new(Waker {
            state: state.clone(),
            side: Side::Device,
        }));
    }
    Ok(vm)
}

fn probe_if_asked() {
    let Some(list) = std::env::var_os("MICROVM_TEST_JAIL_PROBE") else {
        return;
    };
    for what in list.to_string_lossy().split(',') {
        let tried = match what.strip_prefix("tcp:") {
            Some(addr) => std::net::TcpStream::connect(addr).map(drop),
            None => std::fs::File::open(what).map(drop),
        };
        match tried {
            Ok(()) => eprintln!("microvm: test hook: probe {what}: allowed"),
            Err(e) => eprintln!("microvm: test hook: probe {what}: {e}"),
        }
    }
}

fn stack_filter_if_asked() -> Result<()> {
    if std::env::var_os("MICROVM_TEST_STACK_FILTER").is_none() {
        return Ok(());
    }
    let allow_all: BpfProgram = vec![SockFilter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_ALLOW,
    }];
    Ok(seccomp::install(&allow_all)?)
}

/// The knobs on compiled filters; called by the builder once they are compiled.
pub fn adjust_filters(vm: &mut Vm, mode: seccomp::Mode) {
    refuse_filter_if_asked(vm);
    let threads: Vec<String> = vm.filters.names();
    for thread in threads {
        if let Some(filter) = vm.filters.get_mut(&thread) {
            adjust_program(&thread, mode, filter);
        }
    }
}

/// `MICROVM_TEST_FILTER_HOLE` and `MICROVM_TEST_FILTER_DENY` on the program of `thread`
/// (also called by a device process, which compiles its own): three instructions in front
/// for each (the program's jumps are relative, so the rest still works): load the call
/// number; if equal, return ALLOW (a hole) or the mode's mismatch action (a denied call).
pub fn adjust_program(thread: &str, mode: seccomp::Mode, filter: &mut BpfProgram) {
    let mismatch = match mode {
        seccomp::Mode::Log => libc::SECCOMP_RET_USER_NOTIF,
        _ => libc::SECCOMP_RET_KILL_PROCESS,
    };
    for (knob, action) in [
        ("MICROVM_TEST_FILTER_HOLE", libc::SECCOMP_RET_ALLOW),
        ("MICROVM_TEST_FILTER_DENY", mismatch),
    ] {
        let Some(list) = std::env::var_os(knob) else {
            continue;
        };
        for item in list.to_string_lossy().split(',') {
            let Some((who, call)) = item.split_once(':') else {
                log::warn!("test hook: {knob} item {item:?} is not THREAD:SYSCALL");
                continue;
            };
            if who != thread {
                continue;
            }
            let Some(nr) = seccomp::syscall_number(call) else {
                log::warn!("test hook: {knob}: no system call {call}");
                continue;
            };
            let op = |code: u32, jt, jf, k| SockFilter {
                code: code as u16,
                jt,
                jf,
                k,
            };
            let front = [
                op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
                op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, nr as u32),
                op(libc::BPF_RET | libc::BPF_K, 0, 0, action),
            ];
            filter.splice(0..0, front);
        }
    }
}

/// `MICROVM_TEST_REFUSED_FILTER`.
fn refuse_filter_if_asked(vm: &mut Vm) {
    let Some(thread) = std::env::var_os("MICROVM_TEST_REFUSED_FILTER") else {
        return;
    };
    let thread = thread.to_string_lossy();
    match vm.filters.get_mut(&thread) {
        // A misaligned load: seccomp accepts only aligned loads inside seccomp_data.
        Some(filter) => {
            filter[0] = SockFilter {
                code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                jt: 0,
                jf: 0,
                k: 1,
            }
        }
        None => log::warn!("test hook: no filter for thread {thread}"),
    }
}

/// The device on [`PORT`].
struct HookDevice(Arc<State>);

impl BusDevice for HookDevice {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(self.0.done.load(Ordering::Acquire));
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let s = &self.0;
        let (pending, wake) = match data.first().copied() {
            Some(SELF) => return forbidden_call(),
            Some(VMM) => (&s.vmm_pending, &s.vmm_wake),
            Some(DEVICE) => (&s.device_pending, &s.device_wake),
            other => return log::warn!("test hook: unknown request {other:?}"),
        };
        pending.store(true, Ordering::Release);
        if let Err(e) = wake.write(1) {
            log::warn!("test hook: cannot wake the thread: {e}");
        }
    }
}

/// Which thread a [`Waker`] runs on.
#[derive(Clone, Copy)]
enum Side {
    Vmm,
    Device,
}

/// Served by the `vmm` thread's or a device thread's event loop: makes the call when the
/// guest asked for it on that side.
struct Waker {
    state: Arc<State>,
    side: Side,
}

impl Waker {
    fn wake_fd(&self) -> RawFd {
        match self.side {
            Side::Vmm => self.state.vmm_wake.as_raw_fd(),
            Side::Device => self.state.device_wake.as_raw_fd(),
        }
    }
}

impl MutEventSubscriber for Waker {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new_raw(self.wake_fd(), EventSet::IN)) {
            log::error!("test hook: cannot watch its eventfd: {e}");
        }
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let s = &self.state;
        let (pending, wake, did) = match self.side {
            Side::Vmm => (&s.vmm_pending, &s.vmm_wake, VMM_DID),
            Side::Device => (&s.device_pending, &s.device_wake, DEVICE_DID),
        };
        // Every device thread watches the same eventfd: one of them reads it, one of them
        // takes the request.
        let _ = wake.read();
        if pending.swap(false, Ordering::AcqRel) {
            forbidden_call();
            s.done.fetch_or(did, Ordering::AcqRel);
        }
    }
}

/// `getppid` on the calling thread: no filter allows it.
fn forbidden_call() {
    let mut comm = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into `comm`.
    unsafe { libc::prctl(libc::PR_GET_NAME, comm.as_mut_ptr(), 0, 0, 0) };
    let len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    let name = String::from_utf8_lossy(&comm[..len]);
    log::info!("test hook: {name} calls getppid, which no filter allows");
    // SAFETY: getppid has no arguments and no side effects.
    let ppid = unsafe { libc::syscall(libc::SYS_getppid) };
    log::info!("test hook: getppid returned {ppid} on {name}");
}
