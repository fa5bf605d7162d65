//! `--seccomp log` without a bypass: the `seccomp-log` supervisor thread.
//!
//! In log mode every filtered thread's mismatch action is `SECCOMP_RET_USER_NOTIF`, and
//! [`crate::install`] loads the filter with `SECCOMP_FILTER_FLAG_NEW_LISTENER`: the kernel
//! stops the thread at each forbidden call and queues a notification on the listener fd.
//! This thread receives it (`SECCOMP_IOCTL_NOTIF_RECV`), records and prints it with the
//! report table of `logmode.rs` (thread name, syscall, arguments), checks the notification
//! is still pending (`SECCOMP_IOCTL_NOTIF_ID_VALID`) and answers
//! `SECCOMP_USER_NOTIF_FLAG_CONTINUE`: the kernel then runs the call as if it had been
//! allowed. Nothing is allowed by where it comes from, so no code in the process can make
//! an unreported call.
//!
//! Life cycle, in the order microvm's `vmm` thread drives it:
//! 1. [`start_supervisor`], before any other thread exists: the supervisor installs its own
//!    filter (no listener: its mismatches `TRAP`, are reported by the SIGSYS handler and
//!    fail with `ENOSYS`, so it never notifies itself) and waits for registrations;
//! 2. each thread's [`crate::install`] takes a sender (before its filter goes on), installs
//!    with a listener and sends the listener with its name and tid;
//! 3. [`close_registration`], after the `vmm` thread installed its own filter (the last):
//!    once every sender is gone the supervisor serves the listeners with `epoll_wait`.
//!
//! A notification that arrives before step 3 waits, its thread stopped, until then. The
//! supervisor never ends: it lives until the process exits, so no thread is ever left
//! blocked in a notification. A listener whose thread ended reports `EPOLLHUP` and is closed.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;

use crate::report::{format_logged, thread_name, write_stderr, StackBuf, Violation};
use crate::rule::{ArgCond, ArgRule, Ioctl, SyscallRule};
use crate::{Error, FilterContext, ThreadKind};

/// The supervisor thread's name (what reports, `ps -T` and audit show).
pub const THREAD_NAME: &str = "seccomp-log";

/// `SECCOMP_IOCTL_NOTIF_RECV`: `_IOWR('!', 0, struct seccomp_notif)`.
pub const NOTIF_RECV: u64 = 0xc050_2100;
/// `SECCOMP_IOCTL_NOTIF_SEND`: `_IOWR('!', 1, struct seccomp_notif_resp)`.
pub const NOTIF_SEND: u64 = 0xc018_2101;
/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: `_IOW('!', 2, __u64)` (Linux 5.7+ number; the kernel
/// still accepts the 5.0 `_IOR` one).
pub const NOTIF_ID_VALID: u64 = 0x4008_2102;

/// The note of each report line of a notified call.
const NOTE: &str =
    "allowed by --seccomp log (reported once per thread and call; the exit summary counts repeats)";

/// One filtered thread's listener, as handed over by [`crate::install`].
pub(crate) struct Registration {
    fd: OwnedFd,
    thread: String,
    tid: u32,
    kind: Option<ThreadKind>,
}

/// The sending side while registration is open (between [`start_supervisor`] and
/// [`close_registration`]); `None` otherwise, and always in `--seccomp true`.
static REGISTRAR: Mutex<Option<Sender<Registration>>> = Mutex::new(None);

/// A sender to the supervisor, if registration is open. [`crate::install`] takes it before
/// the filter goes on, so a thread the `vmm` thread saw filtered always holds one.
pub(crate) fn registrar() -> Option<Sender<Registration>> {
    REGISTRAR.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Hands the listener `fd` of the calling thread to the supervisor. If it is gone the fd
/// closes, and the thread's forbidden calls fail with `ENOSYS` (kernel rule) instead of
/// hanging.
pub(crate) fn hand_over(tx: &Sender<Registration>, fd: OwnedFd) -> Result<(), Error> {
    let mut buf = [0u8; 16];
    let thread = thread_name(&mut buf).to_string();
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::gettid() } as u32;
    let kind = crate::strace::kind_of_thread(&thread);
    tx.send(Registration {
        fd,
        thread,
        tid,
        kind,
    })
    .map_err(|_| Error::Supervisor {
        what: "handing a listener to it (it is gone)",
        source: std::io::Error::from_raw_os_error(libc::EPIPE),
    })
}

/// Registers the listener `fd` of a thread of another process (a device process under
/// `--isolate devices`, which sent it to the VMM): reports name `thread`, whose id in this
/// process's PID namespace is `tid`. Fails once registration is closed.
pub fn register_listener(fd: OwnedFd, thread: &str, tid: u32) -> Result<(), Error> {
    let gone = |what| Error::Supervisor {
        what,
        source: std::io::Error::from_raw_os_error(libc::EPIPE),
    };
    let tx = registrar().ok_or_else(|| gone("registering a listener (registration is closed)"))?;
    tx.send(Registration {
        fd,
        thread: thread.to_string(),
        tid,
        kind: crate::strace::kind_of_thread(thread),
    })
    .map_err(|_| gone("registering a listener (it is gone)"))
}

/// Ends registration: once every thread that took a sender has sent its listener, the
/// supervisor starts serving. Call after the last filter of the process went on.
pub fn close_registration() {
    REGISTRAR.lock().unwrap_or_else(|p| p.into_inner()).take();
}

/// The supervisor's filter, fds by role: the common rules (stderr for its report lines),
/// plus its own epoll instance and the three notification ioctls.
pub fn symbolic_rules() -> Vec<SyscallRule> {
    let io = crate::common::Io {
        read: &[],
        write: &[],
    };
    let mut rules = crate::common::rules(&[], io);
    let notif = |name, request, reason| Ioctl {
        name,
        request,
        reason,
    };
    let epoll_ctl = |op: libc::c_int| vec![ArgCond::fd(0, "epoll"), ArgCond::eq(1, op as u64)];
    rules.extend([
        SyscallRule::on_fds("epoll_wait", libc::SYS_epoll_wait,
            "waits for notifications on every listener, on its own epoll instance", 0, &["epoll"]),
        SyscallRule::new("epoll_ctl", libc::SYS_epoll_ctl,
            "its own epoll instance only: ADD a listener handed over, DEL one whose thread ended",
            ArgRule::Match(vec![epoll_ctl(libc::EPOLL_CTL_ADD), epoll_ctl(libc::EPOLL_CTL_DEL)])),
        SyscallRule::new("ioctl", libc::SYS_ioctl,
            "the seccomp notification requests, on any fd: the listeners are created after this filter (the last by the vmm thread), so their numbers cannot be pinned; no other fd answers these requests",
            ArgRule::Ioctls { fd: None, requests: vec![
                notif("SECCOMP_IOCTL_NOTIF_RECV", NOTIF_RECV, "receive a forbidden call"),
                notif("SECCOMP_IOCTL_NOTIF_ID_VALID", NOTIF_ID_VALID, "is it still pending (seccomp_unotify(2))"),
                notif("SECCOMP_IOCTL_NOTIF_SEND", NOTIF_SEND, "let it run (SECCOMP_USER_NOTIF_FLAG_CONTINUE)"),
            ] }),
    ]);
    rules
}

/// The supervisor's program, pinned to `epoll`: anything else `TRAP`s (reported by the
/// SIGSYS handler, not run).
pub fn compile(epoll: RawFd) -> Result<crate::BpfProgram, Error> {
    let ctx = FilterContext::new().with("epoll", [epoll]);
    let rules = crate::fds::resolve(&symbolic_rules(), &ctx);
    let hot = [libc::SYS_ioctl, libc::SYS_epoll_wait];
    crate::compile::build_named(THREAD_NAME, &rules, libc::SECCOMP_RET_TRAP, &hot)
}

/// Starts the supervisor (`--seccomp log`): spawns it, waits until its own filter is on,
/// and opens registration. Call before spawning any other thread; returns its install
/// error, if any.
pub fn start_supervisor() -> Result<(), Error> {
    let sys = |what| move |source| Error::Supervisor { what, source };
    // SAFETY: epoll_create1 takes a flag and returns a new fd or -1.
    let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if raw < 0 {
        return Err(sys("epoll_create1")(std::io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh fd nothing else owns.
    let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
    let prog = compile(epoll.as_raw_fd())?;
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            // INVARIANT: the filter goes on before the thread reads any notification.
            let installed = crate::install::install_flags(&prog, 0).map(drop);
            let ok = installed.is_ok();
            let _ = ready_tx.send(installed);
            if ok {
                serve(epoll, rx);
            }
        })
        .map_err(sys("spawning its thread"))?;
    ready_rx
        .recv()
        .map_err(|_| sys("waiting for its filter")(std::io::Error::other("thread ended")))??;
    *REGISTRAR.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    Ok(())
}

/// The supervisor's body: take registrations until they close, then serve forever.
fn serve(epoll: OwnedFd, rx: Receiver<Registration>) {
    let listeners = take_registrations(&epoll, rx);
    serve_forever(&epoll, listeners);
}

/// Adds every listener handed over to `epoll`, its index in the returned list as the event
/// data, until every sender is gone.
fn take_registrations(epoll: &OwnedFd, rx: Receiver<Registration>) -> Vec<Option<Registration>> {
    let mut listeners = Vec::new();
    for reg in rx {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: listeners.len() as u64,
        };
        // SAFETY: valid epoll fd, listener fd and event struct.
        let rc = unsafe {
            libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                reg.fd.as_raw_fd(),
                &mut ev,
            )
        };
        if rc != 0 {
            say_error("epoll_ctl(ADD) of the listener of", &reg.thread);
            continue; // `reg` drops: its fd closes, that thread's forbidden calls get ENOSYS
        }
        listeners.push(Some(reg));
    }
    listeners
}

/// Serves notifications until the process exits; forgets listeners whose thread ended.
fn serve_forever(epoll: &OwnedFd, mut listeners: Vec<Option<Registration>>) {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
    loop {
        // SAFETY: `events` is a valid buffer of 16 entries.
        let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), 16, -1) };
        let Ok(n) = usize::try_from(n) else {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            say_error(
                "epoll_wait failed; aborting, since no forbidden call could run",
                "",
            );
            std::process::abort();
        };
        for ev in &events[..n] {
            let idx = usize::try_from(ev.u64).unwrap_or(usize::MAX);
            let Some(slot) = listeners.get_mut(idx) else {
                continue;
            };
            // EPOLLIN first: a notification still pending is answered before a hang-up.
            if ev.events & libc::EPOLLIN as u32 != 0 {
                if let Some(reg) = slot {
                    serve_one(reg);
                }
            } else if ev.events & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                if let Some(reg) = slot.take() {
                    forget(epoll, reg);
                }
            }
        }
    }
}

/// Receives one notification of `reg`, reports it and lets the call run.
fn serve_one(reg: &Registration) {
    let fd = reg.fd.as_raw_fd();
    // SAFETY: the kernel wants a zeroed seccomp_notif; all-zero is a valid value.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: NOTIF_RECV writes one seccomp_notif into `req`.
    if unsafe { libc::ioctl(fd, NOTIF_RECV as _, &mut req) } != 0 {
        return; // ENOENT: the thread was interrupted by a signal (it retries) or died
    }
    let child;
    let thread = if req.pid == reg.tid {
        reg.thread.as_str()
    } else {
        // A thread the registered one spawned (a forbidden clone that ran): same filter.
        child = format!("{}:{}", reg.thread, req.pid);
        child.as_str()
    };
    let v = Violation {
        thread,
        kind: reg.kind,
        nr: i64::from(req.data.nr),
        args: req.data.args,
        ip: req.data.instruction_pointer,
    };
    if crate::logmode::record(&v) {
        let mut line = StackBuf::<512>::new();
        let _ = format_logged(&v, NOTE, &mut line);
        write_stderr(line.as_bytes());
    }
    // SAFETY: NOTIF_ID_VALID reads one u64.
    if unsafe { libc::ioctl(fd, NOTIF_ID_VALID as _, &req.id) } != 0 {
        return; // no longer pending: the thread was interrupted or died meanwhile
    }
    let resp = libc::seccomp_notif_resp {
        id: req.id,
        val: 0,
        error: 0,
        flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
    };
    // SAFETY: NOTIF_SEND reads one seccomp_notif_resp. ENOENT (gone meanwhile) is fine.
    unsafe { libc::ioctl(fd, NOTIF_SEND as _, &resp) };
}

/// Stops watching the listener of a thread that ended; dropping `reg` closes it.
fn forget(epoll: &OwnedFd, reg: Registration) {
    // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null allowed since 2.6.9).
    unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            reg.fd.as_raw_fd(),
            std::ptr::null_mut(),
        )
    };
}

/// One error line on stderr (normal context: it may allocate).
fn say_error(what: &str, thread: &str) {
    use std::fmt::Write as _;
    let err = std::io::Error::last_os_error();
    let mut line = StackBuf::<256>::new();
    let _ = writeln!(
        line,
        "microvm: seccomp-log supervisor: {what} {thread}: {err}"
    );
    write_stderr(line.as_bytes());
}
