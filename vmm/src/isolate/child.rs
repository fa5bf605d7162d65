//! The life of a device process, from fork to exit. In order:
//!
//! 1. named like the device (`virtio-blk0`: what `ps`, `strace --decode-pids=comm` show);
//! 2. every fd closed but the device's own and stderr;
//! 3. its seccomp filter compiled (here: the filter pins `tgkill` to this process's pid);
//! 4. a new user namespace when unprivileged (as root none is needed), new mount, PID,
//!    IPC, UTS and network namespaces, an empty read-only tmpfs as root (`pivot_root`),
//!    RLIMIT_CORE 0 (a core would hold guest RAM), no new privileges, no capabilities,
//!    uid/gid `nobody` as root (its own otherwise);
//! 5. PR_SET_PDEATHSIG(SIGKILL) (after the uid change, which clears it), and a check
//!    that the VMM did not die meanwhile;
//! 6. its event loop set up (every fd registered), the filter installed, the hello sent
//!    (under `--seccomp log` with the filter's listener, for the VMM's supervisor);
//! 7. it serves until the VMM stops it, and exits with `_exit` (nothing of the VMM's
//!    memory it inherited is ever dropped: those fds are closed already).
//!
//! The process is forked from a single-threaded VMM, so ordinary Rust code is safe here.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arch::layout::VIRTIO_MMIO_SIZE;
use devices::virtio::proxy::{self, Served};
use devices::virtio::MmioWindow;
use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};

use super::Hello;
use crate::device_manager::{AttachedDevice, DeviceLoop, Isolated};
use crate::jail::{self, Ids, JailError};

/// Runs the device process of `dev`; never returns.
pub(super) fn run(dev: AttachedDevice, isolated: Isolated, mode: seccomp::Mode) -> ! {
    crate::set_thread_name(&dev.name);
    let socket = isolated.socket.as_raw_fd();
    let code = match serve(dev, isolated, mode) {
        Ok(()) => 0,
        Err((hello, detail)) => {
            let mut msg = vec![hello as u8];
            msg.extend_from_slice(detail.as_bytes());
            msg.truncate(super::HELLO_MAX);
            let _ = proxy::send(socket, &msg);
            1
        }
    };
    // SAFETY: ends this process without running destructors of the VMM's objects it
    // inherited (whose fds it closed).
    unsafe { libc::_exit(code) }
}

type Failure = (Hello, String);

fn setup(e: impl std::fmt::Display) -> Failure {
    (Hello::SetupFailed, e.to_string())
}

/// Steps 2 to 7 of the module doc.
fn serve(dev: AttachedDevice, isolated: Isolated, mode: seccomp::Mode) -> Result<(), Failure> {
    let vmm = std::os::unix::process::parent_id();
    // The VMM's clone of the stop eventfd stays open too (it is the same eventfd as the
    // device's own): `dev` owns it and drops it, like every other fd kept.
    let mut keep = dev.fds().process_fds();
    keep.push(dev.stop_evt.as_raw_fd());
    close_all_but(&keep).map_err(setup)?;
    let mut ctx = crate::filter_fds::device_process(dev.fds());
    if mode == seccomp::Mode::Log {
        ctx.add("hello", [isolated.socket.as_raw_fd()]);
    }
    crate::filter_fds::log(&dev.name, &ctx);
    #[allow(unused_mut)] // the test hook's knobs change it in test builds
    let mut filter = seccomp::compile(dev.kind(), mode, &ctx).map_err(setup)?;
    #[cfg(feature = "test-hooks")]
    if let Some(f) = filter.as_mut() {
        crate::test_hook::adjust_program(&dev.name, mode, f);
    }
    sandbox().map_err(setup)?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(setup("PR_SET_PDEATHSIG failed"));
    }
    if std::os::unix::process::parent_id() != vmm {
        return Err(setup("the VMM ended before the device process started"));
    }
    let (mut lp, _stop_evt) = DeviceLoop::new(dev);
    let server = ProxyServer {
        window: isolated.window,
        socket: isolated.socket,
        stop: lp.stop_flag(),
    };
    let socket = server.socket.as_raw_fd();
    lp.add(Box::new(server));
    let refused = |e: seccomp::Error| (Hello::FilterFailed, e.to_string());
    // `--seccomp log`: the listener goes to the VMM with the hello, and stays open here
    // until the process ends (closing it is not in the filter).
    let _listener = match filter {
        Some(f) if mode == seccomp::Mode::Log => {
            let listener = seccomp::install_with_listener(&f).map_err(refused)?;
            let hello = [Hello::Ready as u8];
            proxy::send_with_fd(socket, &hello, listener.as_raw_fd()).map_err(setup)?;
            Some(listener)
        }
        f => {
            if let Some(f) = f {
                seccomp::install(&f).map_err(refused)?;
            }
            proxy::send(socket, &[Hello::Ready as u8]).map_err(setup)?;
            None
        }
    };
    lp.run();
    Ok(())
}

/// Closes every fd but stderr and `keep` (sorted).
fn close_all_but(keep: &[RawFd]) -> std::io::Result<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().chain([libc::STDERR_FILENO]).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from: u32 = 0;
    for &fd in &keep {
        let fd = u32::try_from(fd).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
        if fd > from {
            close_range(from, fd - 1)?;
        }
        from = fd + 1;
    }
    close_range(from, u32::MAX)
}

fn close_range(first: u32, last: u32) -> std::io::Result<()> {
    // SAFETY: close_range only closes descriptors; this process never uses the ones it
    // closes again (see the module doc).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Step 4 of the module doc.
fn sandbox() -> Result<(), JailError> {
    let ids = Ids::default_for_caller()?;
    if let jail::Unshared::Refused(userns) = jail::unshare_all(ids)? {
        return jail::landlock_device_process(userns);
    }
    jail::build_root(false)?;
    jail::set_rlimit(libc::RLIMIT_CORE, 0, "setting RLIMIT_CORE")?;
    jail::drop_privileges(ids)
}

/// Serves the proxy socket in the device's event loop: each request is one register
/// access on the device's window. The VMM's end closing ends the loop.
struct ProxyServer {
    window: Arc<MmioWindow>,
    socket: OwnedFd,
    stop: Arc<AtomicBool>,
}

impl MutEventSubscriber for ProxyServer {
    fn init(&mut self, ops: &mut EventOps) {
        let ev = Events::new_raw(self.socket.as_raw_fd(), EventSet::IN);
        if let Err(e) = ops.add(ev) {
            log::error!("cannot watch the proxy socket: {e:?}");
            self.stop.store(true, Ordering::Release);
        }
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        match proxy::serve_one(&*self.window, VIRTIO_MMIO_SIZE, self.socket.as_raw_fd()) {
            Ok(Served::Answered) => {}
            Ok(Served::Closed) => self.stop.store(true, Ordering::Release),
            Err(e) => {
                log::error!("proxy socket: {e}; device stopped");
                self.stop.store(true, Ordering::Release);
            }
        }
    }
}
