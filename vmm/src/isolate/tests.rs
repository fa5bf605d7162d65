//! The dead-child path without a VM: a forked process that ends is reaped once through
//! its pidfd, with how it ended, and its device is marked as needing a reset.

use super::*;
use event_manager::SubscriberOps;

/// Forks a child that exits with `code`, or waits to be killed when `code` is None.
fn child(code: Option<i32>) -> DeviceProcess {
    // SAFETY: the child only sleeps or exits; it touches nothing of the test process.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: async-signal-safe calls only, then the child ends.
        unsafe {
            if let Some(code) = code {
                libc::_exit(code);
            }
            loop {
                libc::pause();
            }
        }
    }
    // SAFETY: our own child.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open: {}", io::Error::last_os_error());
    DeviceProcess {
        name: "virtio-test0".into(),
        pid,
        // SAFETY: a fresh pidfd owned by nobody else.
        pidfd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
        stop_evt: EventFd::new(libc::EFD_NONBLOCK).unwrap(),
        state: Arc::new(ProxyState::default()),
        reaped: AtomicBool::new(false),
    }
}

#[test]
fn a_killed_child_is_reaped_once_with_its_signal() {
    let p = child(None);
    assert_eq!(p.reap(false), None, "still running");
    // SAFETY: our own child.
    assert_eq!(unsafe { libc::kill(p.pid(), libc::SIGKILL) }, 0);
    assert_eq!(p.reap(true), Some(Ended::Signal(libc::SIGKILL)));
    assert_eq!(p.reap(true), None, "reaped once");
    assert_eq!(Ended::Signal(9).to_string(), "signal 9");
}

#[test]
fn an_exit_code_is_reported_as_such() {
    let p = child(Some(3));
    assert_eq!(p.reap(true), Some(Ended::Exited(3)));
    assert_eq!(Ended::Exited(3).to_string(), "exit code 3");
}

#[test]
fn the_reaper_marks_the_device_dead_when_its_process_ends() {
    let procs = Arc::new(vec![child(Some(0))]);
    let mut manager: event_manager::EventManager<Box<dyn MutEventSubscriber>> =
        event_manager::EventManager::new().unwrap();
    manager.add_subscriber(Box::new(Reaper::new(procs.clone())));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !procs[0].state.is_dead() && Instant::now() < deadline {
        manager.run_with_timeout(100).unwrap();
    }
    assert!(procs[0].state.is_dead());
    assert!(procs[0].reaped.load(Ordering::Acquire));
}

#[test]
fn stop_kills_a_process_that_ignores_its_stop_eventfd() {
    let procs = vec![child(None)];
    let started = Instant::now();
    stop(&procs);
    assert!(procs[0].reaped.load(Ordering::Acquire));
    assert!(started.elapsed() >= crate::threads::STOP_TIMEOUT);
}
