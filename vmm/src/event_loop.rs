//! The main (`vmm`) thread's event loop, built on `event-manager`: it waits for a reason
//! to stop (a vCPU report, the guest's i8042 reset, SIGINT/SIGTERM/SIGHUP through a
//! signalfd) and forwards host stdin to the guest's serial port.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use devices::serial::SerialDevice;
use event_manager::{EventManager, EventOps, Events, MutEventSubscriber};
use event_manager::{EventSet, SubscriberOps};
use vmm_sys_util::eventfd::EventFd;

use crate::error::{Error, Result};
use crate::exit::VmExit;
use crate::vcpu::VmControl;

/// Signals the main thread turns into an orderly stop. They are blocked on every thread
/// (the mask is set before any thread is spawned) and read from a signalfd here, so no
/// handler ever runs on a filtered thread.
pub const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Process-directed signals that must never run a handler on a filtered thread: the stop
/// signals, and SIGWINCH (terminal resizes; Cloud Hypervisor once died of one delivered to
/// a thread whose filter did not allow the handler's system calls). They are blocked on
/// every thread; SIGWINCH then simply stays pending.
pub const BLOCKED_SIGNALS: [libc::c_int; 4] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGWINCH];

fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &sig in signals {
        // SAFETY: `set` is valid and `sig` a valid signal number.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    set
}

/// Blocks [`BLOCKED_SIGNALS`] on the calling thread (and every thread it spawns later) and
/// returns a signalfd that reports the [`STOP_SIGNALS`].
pub fn block_stop_signals() -> Result<OwnedFd> {
    let blocked = sigset(&BLOCKED_SIGNALS);
    // SAFETY: valid set pointer; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &blocked, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(Error::Host {
            what: "blocking SIGINT/SIGTERM/SIGHUP/SIGWINCH",
            source: std::io::Error::from_raw_os_error(rc),
        });
    }
    let set = sigset(&STOP_SIGNALS);
    // SAFETY: valid set pointer; -1 asks for a new signalfd.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::Host {
            what: "creating the signalfd",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` is a fresh signalfd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Everything the main thread listens to.
pub struct VmmEvents {
    ctl: Arc<VmControl>,
    reset_evt: EventFd,
    poweroff_evt: EventFd,
    signals: OwnedFd,
    serial: Arc<Mutex<SerialDevice>>,
    stdin_open: bool,
}

const EXIT: u32 = 1;
const RESET: u32 = 2;
const SIGNAL: u32 = 3;
const STDIN: u32 = 4;
const POWEROFF: u32 = 5;

impl VmmEvents {
    /// Listens to `ctl.exit_evt`, `reset_evt`, `poweroff_evt`, `signals` and (if
    /// `forward_stdin`) stdin.
    pub fn new(
        ctl: Arc<VmControl>,
        reset_evt: EventFd,
        poweroff_evt: EventFd,
        signals: OwnedFd,
        serial: Arc<Mutex<SerialDevice>>,
        forward_stdin: bool,
    ) -> Self {
        VmmEvents {
            ctl,
            reset_evt,
            poweroff_evt,
            signals,
            serial,
            stdin_open: forward_stdin,
        }
    }

    fn read_signal(&self) -> Option<i32> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let len = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading at most `len` bytes into `info`.
        let n = unsafe {
            libc::read(
                self.signals.as_raw_fd(),
                &mut info as *mut _ as *mut libc::c_void,
                len,
            )
        };
        (n as usize == len).then_some(info.ssi_signo as i32)
    }

    /// Moves what stdin has into the UART. Returns false at EOF or on error.
    ///
    /// Input that does not fit in the receive FIFO is dropped, as a real UART overruns:
    /// leaving it in stdin would make the level-triggered loop spin while the guest does
    /// not read.
    fn forward_stdin(&mut self) -> bool {
        let mut buf = [0u8; 64];
        // SAFETY: reading at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return n < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
        }
        let n = n as usize;
        let mut serial = self.serial.lock().unwrap_or_else(|p| p.into_inner());
        match serial.enqueue_input(&buf[..n]) {
            Ok(taken) if taken < n => {
                log::debug!(
                    "serial receive FIFO full: {} input bytes dropped",
                    n - taken
                )
            }
            Ok(_) => {}
            Err(e) => log::warn!("serial input lost: {e}"),
        }
        true
    }
}

impl MutEventSubscriber for VmmEvents {
    fn init(&mut self, ops: &mut EventOps) {
        let mut add = |fd: RawFd, data: u32| {
            if let Err(e) = ops.add(Events::with_data_raw(fd, data, EventSet::IN)) {
                log::error!("cannot watch fd {fd}: {e:?}");
            }
        };
        add(self.ctl.exit_evt.as_raw_fd(), EXIT);
        add(self.reset_evt.as_raw_fd(), RESET);
        add(self.poweroff_evt.as_raw_fd(), POWEROFF);
        add(self.signals.as_raw_fd(), SIGNAL);
        if self.stdin_open {
            // Regular files and /dev/null cannot be polled (EPERM): no guest input then.
            let stdin = Events::with_data_raw(libc::STDIN_FILENO, STDIN, EventSet::IN);
            if let Err(e) = ops.add(stdin) {
                log::debug!("stdin cannot be watched ({e:?}); the guest gets no console input");
                self.stdin_open = false;
            }
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        match events.data() {
            EXIT => {
                let _ = self.ctl.exit_evt.read();
            }
            RESET => {
                let _ = self.reset_evt.read();
                self.ctl.report(VmExit::Reset);
            }
            POWEROFF => {
                let _ = self.poweroff_evt.read();
                self.ctl.report(VmExit::PowerOff);
            }
            SIGNAL => {
                if let Some(sig) = self.read_signal() {
                    self.ctl.report(VmExit::Signal(sig));
                }
            }
            STDIN => {
                let hangup = events
                    .event_set()
                    .intersects(EventSet::HANG_UP | EventSet::ERROR)
                    && !events.event_set().contains(EventSet::IN);
                if hangup || !self.forward_stdin() {
                    // EOF or closed stdin changes nothing for the guest: stop listening.
                    log::debug!("stdin closed; the guest keeps running without input");
                    let _ = ops.remove(Events::with_data_raw(
                        libc::STDIN_FILENO,
                        STDIN,
                        EventSet::IN,
                    ));
                    self.stdin_open = false;
                }
            }
            _ => {}
        }
    }
}

/// Something else the `vmm` thread serves in its event loop, next to [`VmmEvents`].
pub type Subscriber = Box<dyn MutEventSubscriber>;

/// The main thread's loop, created before the `vmm` filter goes on (creating the epoll
/// instance is set-up, not something the filtered thread needs to do).
pub struct EventLoop {
    manager: EventManager<Subscriber>,
    ctl: Arc<VmControl>,
}

impl EventLoop {
    /// Creates the epoll instance and registers `events` and `extra`.
    pub fn new(events: VmmEvents, extra: Vec<Subscriber>) -> Result<Self> {
        let ctl = events.ctl.clone();
        let mut manager: EventManager<Subscriber> =
            EventManager::new().map_err(|source| Error::EventLoop {
                thread: "vmm".into(),
                source,
            })?;
        manager.add_subscriber(Box::new(events));
        for subscriber in extra {
            manager.add_subscriber(subscriber);
        }
        Ok(EventLoop { manager, ctl })
    }

    /// Waits until a stop reason is recorded and returns it.
    pub fn run(mut self) -> Result<VmExit> {
        loop {
            if let Some(reason) = self.ctl.exit_reason() {
                return Ok(reason);
            }
            self.manager.run().map_err(|source| Error::EventLoop {
                thread: "vmm".into(),
                source,
            })?;
        }
    }
}
