//! Real filters installed in forked children: violations, modes, KVM_RUN pinning, panics,
//! and the glibc/std paths (malloc churn, sync, kick, thread exit and join) of each kind.

mod child;

use std::os::fd::AsRawFd;

use child::{errno, in_child, say, set_thread_name, Status};
use seccomp::{FilterContext, Mode, ThreadKind, EXIT_SECCOMP_VIOLATION};

/// Reporter + filter of `kind` on the calling thread of the child; panics (exit 101) on error.
/// Log mode as microvm runs it: the `seccomp-log` supervisor first, then the filter (its
/// listener goes to the supervisor), then registration closes.
fn lock_down(kind: ThreadKind, mode: Mode, ctx: &FilterContext) {
    seccomp::install_violation_reporter(mode).unwrap();
    if mode == Mode::Log {
        seccomp::start_supervisor().unwrap();
    }
    let prog = seccomp::compile(kind, mode, ctx).unwrap().unwrap();
    seccomp::install(&prog).unwrap();
    seccomp::close_registration();
}

fn thread_name(kind: ThreadKind) -> &'static str {
    match kind {
        ThreadKind::Vmm => "vmm",
        ThreadKind::Vcpu => "vcpu0",
        ThreadKind::Blk => "virtio-blk0",
        ThreadKind::Net => "virtio-net0",
        ThreadKind::Rng => "virtio-rng0",
    }
}

fn unix_socket() -> i32 {
    // SAFETY: plain syscall without pointers.
    unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) }
}

#[test]
fn kill_mode_reports_a_forbidden_socket_and_exits_148() {
    for kind in ThreadKind::all().iter().copied() {
        let (status, err) = in_child(|| {
            set_thread_name(thread_name(kind));
            lock_down(kind, Mode::Kill, &FilterContext::default());
            unix_socket();
            0 // not reached
        });
        assert_eq!(
            status,
            Status::Exited(EXIT_SECCOMP_VIOLATION),
            "{kind}: {err}"
        );
        let want = format!(
            "thread {} (kind {kind}) made a forbidden system call: socket (41) args [0x1, 0x1, 0x0,",
            thread_name(kind)
        );
        assert!(err.contains(&want), "{kind}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

/// Log mode: each distinct (thread, syscall) is reported once on stderr (by the supervisor,
/// with the thread's name and arguments), the call really runs with its real result
/// (SECCOMP_USER_NOTIF_FLAG_CONTINUE), repeats are counted in the exit summary.
#[test]
fn log_mode_reports_and_survives_under_every_kind() {
    for kind in ThreadKind::all().iter().copied() {
        let (status, err) = in_child(|| {
            set_thread_name(thread_name(kind));
            lock_down(kind, Mode::Log, &FilterContext::default());
            let fds: Vec<i32> = (0..3).map(|_| unix_socket()).collect();
            // SAFETY: getppid has no arguments.
            let ppid = unsafe { libc::getppid() };
            // SAFETY: closing the sockets made above (close is allowed).
            fds.iter().for_each(|fd| unsafe {
                libc::close(*fd);
            });
            churn();
            let summary = seccomp::log_summary().unwrap_or_default();
            say(&summary);
            let ok = fds.iter().all(|fd| *fd >= 0)
                && ppid == std::os::unix::process::parent_id() as i32
                && summary.contains("socket (41) x3")
                && summary.contains("getppid (110) x1");
            i32::from(!ok) * 10
        });
        assert_eq!(status, Status::Exited(0), "{kind}: {err}");
        let reports: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("forbidden system call"))
            .collect();
        assert_eq!(
            reports.len(),
            2,
            "{kind}: one line per distinct call: {err}"
        );
        let want = format!(
            "thread {} (kind {kind}) made a forbidden system call: socket (41) args [0x1, 0x1, 0x0,",
            thread_name(kind)
        );
        assert!(reports[0].contains(&want), "{kind}: {err}");
        assert!(reports[0].ends_with("allowed by --seccomp log (reported once per thread and call; the exit summary counts repeats)"), "{err}");
        assert!(reports[1].contains("getppid (110)"), "{err}");
    }
}

/// glibc's malloc/free paths (brk, mmap, mremap, arena mprotect, trim madvise, the
/// overcommit openat answered EACCES) run under every kind's filter without a report.
#[test]
fn malloc_churn_under_every_kind() {
    for kind in ThreadKind::all().iter().copied() {
        let (status, err) = in_child(|| {
            set_thread_name(thread_name(kind));
            lock_down(kind, Mode::Kill, &FilterContext::default());
            churn();
            // A second arena: glibc makes one per thread, but spawning is forbidden once
            // filtered, so churn again with different sizes instead.
            let v: Vec<Vec<usize>> = (1..2000).map(|i| vec![i; i % 700]).collect();
            i32::from(v.len() != 1999)
        });
        assert_eq!(status, Status::Exited(0), "{kind}: {err}");
        assert!(err.is_empty(), "{kind}: {err}");
    }
}

#[test]
fn off_mode_compiles_to_nothing() {
    for kind in ThreadKind::all() {
        let prog = seccomp::compile(*kind, Mode::Off, &FilterContext::default()).unwrap();
        assert!(prog.is_none());
    }
    assert!(
        seccomp::install(&Vec::new()).is_err(),
        "empty program is an error"
    );
}

/// ioctl(fd, KVM_RUN) under the vcpu filter pinned to `pinned`, made on `target`.
/// Returns the child status: 0 = reached the kernel (errno `expect_errno` or success).
fn kvm_run_on(pinned: i32, target: i32, request: u64) -> (Status, String) {
    in_child(|| {
        set_thread_name("vcpu0");
        lock_down(
            ThreadKind::Vcpu,
            Mode::Kill,
            &FilterContext::new().with("vcpu", [pinned]),
        );
        // SAFETY: KVM_RUN takes no argument; on a non-KVM fd the kernel returns ENOTTY.
        let rc = unsafe { libc::ioctl(target, request as _, 0) };
        if rc >= 0 || errno() != 0 {
            0
        } else {
            11
        }
    })
}

#[test]
fn vcpu_kvm_run_is_allowed_on_the_pinned_fd_only() {
    let a = std::fs::File::open("/dev/null").unwrap();
    let b = std::fs::File::open("/dev/null").unwrap();
    let run = seccomp::ioctls::KVM_RUN();
    // Allowed: the call reaches the kernel, which answers ENOTTY; the child exits 0.
    let (status, err) = kvm_run_on(a.as_raw_fd(), a.as_raw_fd(), run);
    assert_eq!(status, Status::Exited(0), "{err}");
    // Forbidden: another fd, or another request (KVM_SET_REGS) on the pinned fd.
    for (target, request) in [(b.as_raw_fd(), run), (a.as_raw_fd(), 0x4090_ae82)] {
        let (status, err) = kvm_run_on(a.as_raw_fd(), target, request);
        assert_eq!(status, Status::Exited(EXIT_SECCOMP_VIOLATION), "{err}");
        assert!(err.contains("ioctl (16)"), "{err}");
    }
}

#[test]
fn vcpu_kvm_run_on_a_real_vcpu() {
    let Ok(kvm) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    else {
        eprintln!("skipped: no /dev/kvm");
        return;
    };
    // KVM_CREATE_VM = _IO(0xAE, 1), KVM_CREATE_VCPU = _IO(0xAE, 0x41).
    // SAFETY: KVM ioctls with integer arguments on a /dev/kvm fd.
    let vm = unsafe { libc::ioctl(kvm.as_raw_fd(), 0xae01, 0) };
    assert!(vm >= 0, "KVM_CREATE_VM: {}", errno());
    // SAFETY: as above, on the VM fd.
    let vcpu = unsafe { libc::ioctl(vm, 0xae41, 0) };
    assert!(vcpu >= 0, "KVM_CREATE_VCPU: {}", errno());
    let run = seccomp::ioctls::KVM_RUN();
    // An unconfigured vCPU exits at once (success or an errno): the filter let it through.
    let (status, err) = kvm_run_on(vcpu, vcpu, run);
    assert_eq!(status, Status::Exited(0), "{err}");
    let (status, err) = kvm_run_on(vcpu, vm, run);
    assert_eq!(status, Status::Exited(EXIT_SECCOMP_VIOLATION), "{err}");
    // SAFETY: closing fds we created.
    unsafe {
        libc::close(vcpu);
        libc::close(vm);
    }
}

#[test]
fn a_panic_under_each_filter_ends_by_sigabrt() {
    for kind in ThreadKind::all().iter().copied() {
        let (status, err) = in_child(|| {
            // panic=abort behaviour: the hook prints (with a forced backtrace, which needs the
            // same syscalls as RUST_BACKTRACE=1), then aborts.
            std::panic::set_hook(Box::new(|info| {
                let bt = std::backtrace::Backtrace::force_capture();
                say(&format!("panicked: {info}\n{bt}\n"));
                std::process::abort();
            }));
            set_thread_name(thread_name(kind));
            lock_down(kind, Mode::Kill, &FilterContext::default());
            panic!("boom under {kind}");
        });
        assert_eq!(status, Status::Signaled(libc::SIGABRT), "{kind}: {err}");
        assert!(err.contains(&format!("boom under {kind}")), "{kind}: {err}");
        assert!(!err.contains("forbidden"), "{kind}: {err}");
    }
}

extern "C" fn on_kick(_: libc::c_int) {}

/// The real thread layout: a vcpu0 thread filtered first, then the main thread filtered as
/// vmm; vmm kicks vcpu0 out of a sleep with SIGRTMIN, vcpu0 returns and vmm joins it.
/// Both run the glibc/std paths they need: malloc churn (brk, mmap, mremap, arena mprotect,
/// trim madvise, overcommit openat), Mutex/Condvar/mpsc, HashMap, fd drop, eventfd, epoll,
/// termios, thread exit, join.
#[test]
fn vcpu_thread_runs_exits_and_is_joined_under_filters() {
    let (status, err) = in_child(|| {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{mpsc, Arc, Condvar, Mutex};
        // SAFETY: an empty handler without SA_RESTART, registered before any filter.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_kick as *const () as usize;
            libc::sigaction(libc::SIGRTMIN(), &act, std::ptr::null_mut());
        }
        seccomp::install_violation_reporter(Mode::Kill).unwrap();
        // SAFETY: plain fd-creating syscalls.
        let (efd, epfd) = unsafe { (libc::eventfd(0, 0), libc::epoll_create1(0)) };
        // The eventfd is the exit eventfd (vcpu writes, vmm reads); epfd the vmm's epoll.
        let vcpu_ctx = FilterContext::new().with("exit", [efd]);
        let vmm_ctx = FilterContext::new()
            .with("exit", [efd])
            .with("epoll", [epfd]);
        let vcpu_prog = seccomp::compile(ThreadKind::Vcpu, Mode::Kill, &vcpu_ctx);
        let vcpu_prog = vcpu_prog.unwrap().unwrap();
        let ready = Arc::new((Mutex::new(false), Condvar::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let (ready2, done2) = (ready.clone(), done.clone());
        let opened_before = std::fs::File::open("/proc/self/stat").unwrap();
        let vcpu = std::thread::Builder::new()
            .name("vcpu0".into())
            .spawn(move || {
                seccomp::install(&vcpu_prog).unwrap();
                churn();
                // No file is opened once filtered: openat answers EACCES, no trap.
                let denied = std::fs::File::open("/proc/self/stat").map_err(|e| e.kind());
                let denied = denied.err() == Some(std::io::ErrorKind::PermissionDenied);
                let mut map = std::collections::HashMap::new();
                map.insert(1, vec![0u8; 64]);
                tx.send(map.remove(&1).unwrap()).unwrap();
                drop(opened_before);
                // SAFETY: writes 8 bytes from a local u64 to an eventfd.
                unsafe { libc::write(efd, (&1u64 as *const u64).cast(), 8) };
                *ready2.0.lock().unwrap() = true;
                ready2.1.notify_all();
                let long = libc::timespec {
                    tv_sec: 15,
                    tv_nsec: 0,
                };
                // SAFETY: valid timespec; no remainder wanted.
                let rc = unsafe {
                    libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &long, std::ptr::null_mut())
                };
                done2.store(true, Ordering::SeqCst);
                // Still alive for a while, so that join really waits (futex op 265).
                std::thread::sleep(std::time::Duration::from_millis(100));
                rc == libc::EINTR && denied
            });
        let vcpu = vcpu.unwrap();
        let mut ok = ready
            .1
            .wait_while(ready.0.lock().unwrap(), |r| !*r)
            .map(|_| true)
            .unwrap();
        ok &= rx.recv().unwrap().len() == 64;
        // Exactly one thread (vcpu0) is filtered so far.
        let filtered = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
            .filter(|s| s.contains("Seccomp:\t2"))
            .count();
        ok &= filtered == 1;
        // Main becomes the vmm thread: filtered after every spawn.
        set_thread_name("vmm");
        seccomp::install(
            &seccomp::compile(ThreadKind::Vmm, Mode::Kill, &vmm_ctx)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        churn();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        let mut tio: libc::termios = unsafe_zeroed();
        let mut val = 0u64;
        // SAFETY: valid buffers for epoll_wait, read and tcgetattr/tcsetattr on fd 0.
        unsafe {
            libc::epoll_wait(epfd, events.as_mut_ptr(), 4, 0);
            ok &= libc::read(efd, (&mut val as *mut u64).cast(), 8) == 8;
            if libc::tcgetattr(0, &mut tio) == 0 {
                libc::tcsetattr(0, libc::TCSANOW, &tio);
            }
        }
        use std::os::unix::thread::JoinHandleExt;
        while !done.load(Ordering::SeqCst) {
            // SAFETY: the thread is alive until joined below.
            unsafe { libc::pthread_kill(vcpu.as_pthread_t(), libc::SIGRTMIN()) };
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        ok &= vcpu.join().unwrap();
        // SAFETY: closing fds we created.
        unsafe {
            libc::close(efd);
            libc::close(epfd);
        }
        i32::from(!ok) * 12
    });
    assert_eq!(status, Status::Exited(0), "{err}");
}

fn unsafe_zeroed<T: Copy>() -> T {
    // SAFETY: only used for plain C structs (termios) for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// malloc/free churn: small and large blocks, realloc growth, frees that trim the heap.
fn churn() {
    let mut keep: Vec<Vec<u8>> = Vec::new();
    for i in 0..3000usize {
        keep.push(vec![i as u8; (i * 977) % 300_000]);
        if i % 3 == 0 {
            keep.swap_remove(i % keep.len());
        }
    }
    let mut grow = vec![0u8; 200_000];
    grow.resize(4_000_000, 1);
    drop(grow);
    drop(keep);
}

/// A documented limit of SECCOMP_RET_TRAP: glibc's pthread_create blocks every signal around
/// clone3, and a trap while SIGSYS is blocked makes the kernel kill the process with plain
/// SIGSYS (no report; the audit log still has it). Our threads never spawn once filtered.
#[test]
fn forbidden_call_with_sigsys_blocked_dies_by_sigsys() {
    let (status, err) = in_child(|| {
        set_thread_name("vcpu0");
        lock_down(ThreadKind::Vcpu, Mode::Kill, &FilterContext::default());
        let spawned = std::thread::Builder::new().spawn(|| 1);
        i32::from(spawned.is_ok()) * 10
    });
    assert_eq!(status, Status::Signaled(libc::SIGSYS), "{err}");
    assert!(!err.contains("forbidden system call"), "{err}");
}

/// Log mode has no such limit (a notification needs no signal): a thread spawn is reported,
/// runs, and the new thread's own forbidden calls reach the same supervisor, named after
/// its parent and its tid.
#[test]
fn log_mode_reports_a_thread_spawn_and_lets_it_run() {
    let (status, err) = in_child(|| {
        set_thread_name("vcpu0");
        lock_down(ThreadKind::Vcpu, Mode::Log, &FilterContext::default());
        let spawned = std::thread::Builder::new().spawn(|| {
            // SAFETY: getppid has no arguments.
            unsafe { libc::getppid() }
        });
        let ok = spawned.is_ok_and(|t| t.join().is_ok_and(|p| p > 0));
        i32::from(!ok) * 10
    });
    assert_eq!(status, Status::Exited(0), "{err}");
    assert!(
        err.contains("thread vcpu0 (kind vcpu) made a forbidden system call: clone3 (435)"),
        "{err}"
    );
    assert!(err.contains("thread vcpu0:"), "{err}");
    assert!(err.contains("getppid (110)"), "{err}");
}

/// A log-mode filter whose listener nobody serves (no supervisor, or its fd closed) makes
/// forbidden calls fail with ENOSYS (kernel rule): a thread never hangs for want of one.
#[test]
fn log_mode_without_a_supervisor_fails_calls_with_enosys() {
    let (status, err) = in_child(|| {
        set_thread_name("vcpu0");
        seccomp::install_violation_reporter(Mode::Log).unwrap();
        let prog = seccomp::compile(ThreadKind::Vcpu, Mode::Log, &FilterContext::default());
        seccomp::install(&prog.unwrap().unwrap()).unwrap();
        let fd = unix_socket();
        i32::from(!(fd == -1 && errno() == libc::ENOSYS)) * 10
    });
    assert_eq!(status, Status::Exited(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

/// The supervisor's own filter traps instead of notifying (it cannot answer itself): in log
/// mode its forbidden call is reported by the SIGSYS handler and fails with ENOSYS, unrun.
#[test]
fn a_forbidden_call_of_the_supervisor_is_reported_and_not_run() {
    let (status, err) = in_child(|| {
        set_thread_name(seccomp::SUPERVISOR_THREAD);
        seccomp::install_violation_reporter(Mode::Log).unwrap();
        seccomp::install(&seccomp::supervisor_filter(7).unwrap()).unwrap();
        let fd = unix_socket();
        i32::from(!(fd == -1 && errno() == libc::ENOSYS)) * 10
    });
    assert_eq!(status, Status::Exited(0), "{err}");
    assert!(err.starts_with("microvm: seccomp: thread seccomp-log (kind ?) made a forbidden system call: socket (41) args [0x1, 0x1, 0x0,"), "{err}");
    assert!(err.contains("NOT run"), "{err}");
}

/// Every kind's log-mode program, and the supervisor's, decide nothing by instruction
/// pointer: no code the process can jump to makes an unreported call.
#[test]
fn no_log_filter_looks_at_the_instruction_pointer() {
    for kind in ThreadKind::all().iter().copied() {
        let prog = seccomp::compile(kind, Mode::Log, &FilterContext::example(kind));
        let prog = prog.unwrap().unwrap();
        assert!(!seccomp::bpf::reads_instruction_pointer(&prog), "{kind}");
        assert!(
            prog.iter().any(|i| i.k == libc::SECCOMP_RET_USER_NOTIF),
            "{kind}"
        );
    }
    let prog = seccomp::supervisor_filter(7).unwrap();
    assert!(!seccomp::bpf::reads_instruction_pointer(&prog));
    assert!(!prog.iter().any(|i| i.k == libc::SECCOMP_RET_USER_NOTIF));
    assert!(seccomp::supervisor_rules()
        .iter()
        .all(|r| !r.reason.is_empty()));
}

/// A sleep interrupted by SIGSTOP and resumed by SIGCONT comes back through
/// `restart_syscall` (the kernel's ERESTART_RESTARTBLOCK); every filter allows it, so a
/// stopped and continued microvm is not reported as a violation.
#[test]
fn a_sleep_stopped_and_continued_survives_every_filter() {
    for kind in ThreadKind::all().iter().copied() {
        let (status, err) = in_child(|| {
            // An unfiltered helper process stops and continues us while we sleep.
            // SAFETY: getpid has no arguments.
            let me = unsafe { libc::getpid() };
            // SAFETY: the helper only sleeps, signals its parent and _exits.
            if unsafe { libc::fork() } == 0 {
                std::thread::sleep(std::time::Duration::from_millis(100));
                // SAFETY: signals to our parent, then _exit.
                unsafe {
                    libc::kill(me, libc::SIGSTOP);
                    libc::usleep(100_000);
                    libc::kill(me, libc::SIGCONT);
                    libc::_exit(0);
                }
            }
            set_thread_name(thread_name(kind));
            lock_down(kind, Mode::Kill, &FilterContext::default());
            let start = std::time::Instant::now();
            std::thread::sleep(std::time::Duration::from_millis(400));
            i32::from(start.elapsed() < std::time::Duration::from_millis(400))
        });
        assert_eq!(status, Status::Exited(0), "{kind}: {err}");
    }
}
