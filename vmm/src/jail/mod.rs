//! `--jail`: a jail for the whole VMM, built in (Firecracker's separate jailer is the
//! model) and entered by the main thread before any other thread exists and before any
//! guest data is read (docs/security.md, "The jail").
//!
//! Every host resource a VM uses is opened first, while microvm still has its privileges
//! and file system ([`crate::builder::open_inputs`]: kernel, initramfs, disks, TAPs,
//! /dev/kvm); those fds survive what follows, so the jail's root holds none of them:
//!
//! 1. with `--jail-cgroup`, the limits are written and the process moves into the cgroup;
//! 2. an unprivileged caller enters a new user namespace mapping only its own uid and gid;
//! 3. new mount, PID, IPC, UTS and network namespaces (`unshare`);
//! 4. `fork`: the child is PID 1 of the new PID namespace and goes on to be the VMM; the
//!    parent drops to the same uid/gid and no capabilities, then only forwards
//!    SIGINT/SIGTERM/SIGHUP to it and exits with its status;
//! 5. in the child: every mount private, a fresh read-only tmpfs holding only a new /proc
//!    (for the sandbox self-checks) as root (`pivot_root`, old root detached);
//! 6. RLIMIT_NOFILE, RLIMIT_NPROC (if asked) and RLIMIT_CORE = 0;
//! 7. no new privileges, the capability bounding and ambient sets emptied, groups, gid and
//!    uid set, every capability dropped.
//!
//! An unprivileged caller on a host that refuses user namespaces gets no namespace at
//! all: steps 2-5 are replaced by a Landlock domain ([`landlocked`]), step 7 keeps the
//! caller's uid.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::JailConfig;

mod landlocked;
mod waiter;

/// uid and gid of `nobody`, the default identity of a jail entered as root.
pub const NOBODY: u32 = 65534;

/// Why the jail could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// A system call of the jail's set-up failed.
    #[error("jail: {step}: {source}")]
    Step {
        /// What was being done, e.g. "pivot_root into the jail".
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An unprivileged caller needs a user namespace, and the host refuses one.
    #[error("jail: an unprivileged caller needs a user namespace and the host refuses one ({source}; user.max_user_namespaces = {max}); run as root or enable user namespaces")]
    NoUserNamespace {
        /// /proc/sys/user/max_user_namespaces, or "?" when unreadable.
        max: String,
        /// What unshare(CLONE_NEWUSER) said.
        #[source]
        source: io::Error,
    },
    /// Neither a user namespace nor Landlock is available to an unprivileged caller.
    #[error("{userns}; Landlock, the jail without namespaces, is not available either (kernel without CONFIG_SECURITY_LANDLOCK, or `landlock` missing from the lsm= boot parameter)")]
    NoConfinement {
        /// Why no user namespace could be made.
        #[source]
        userns: Box<JailError>,
    },
    /// The Landlock domain could not be built or entered.
    #[error("jail: Landlock: {source}")]
    Landlock {
        /// What the landlock crate said.
        #[source]
        source: landlock::RulesetError,
    },
    /// A hierarchy the Landlock domain allows could not be opened.
    #[error("jail: Landlock: opening {path}: {source}")]
    LandlockPath {
        /// The path, e.g. "/proc/self".
        path: &'static str,
        /// What the landlock crate said.
        #[source]
        source: landlock::PathFdError,
    },
    /// An unprivileged caller asked for an identity it cannot map.
    #[error("jail: an unprivileged caller can only run as itself: --jail-{what} {asked} is not its own {what} {own}")]
    ForeignId {
        /// "uid" or "gid".
        what: &'static str,
        /// The id asked for.
        asked: u32,
        /// The caller's own id.
        own: u32,
    },
    /// A file of the delegated cgroup could not be written.
    #[error("jail: cgroup {path}: writing {value:?} to {file}{hint}: {source}", path = .path.display())]
    Cgroup {
        /// The `--jail-cgroup` directory.
        path: PathBuf,
        /// The file, e.g. "memory.max".
        file: &'static str,
        /// What was written.
        value: String,
        /// A plain-words hint for the usual mistakes, or "".
        hint: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, JailError>;

/// The identity the jailed VMM (or a device process, `crate::isolate`) runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    uid: u32,
    gid: u32,
    /// Started as root: the init user namespace, `setgroups` and any uid. Otherwise a user
    /// namespace mapping only the caller's own ids.
    pub(crate) privileged: bool,
}

impl Ids {
    /// The default identity: `nobody` for root, the caller itself otherwise.
    pub(crate) fn default_for_caller() -> Result<Ids> {
        resolve_ids(&JailConfig::default())
    }
}

/// Enters the jail described by `cfg`. Returns in the jailed VMM only; the parent waits for
/// it under its own filter (of `mode`) and exits the process with its status (see
/// [`waiter::wait_and_exit`]). Must be called while the process has a single thread.
pub fn enter(cfg: &JailConfig, mode: seccomp::Mode) -> Result<()> {
    let ids = resolve_ids(cfg)?;
    if let Some(dir) = &cfg.cgroup {
        join_cgroup(dir, cfg)?;
    }
    if let Unshared::Refused(userns) = unshare_all(ids)? {
        return enter_landlocked(cfg, userns);
    }
    // SAFETY: the process has a single thread (the caller's contract), so the child's
    // state is consistent; it returns into ordinary Rust code.
    let pid = check(unsafe { libc::fork() }, "fork into the new PID namespace")?;
    if pid > 0 {
        waiter::wait_and_exit(pid, ids, mode);
    }
    build_root(true)?;
    set_hostname();
    // The limits while CAP_SYS_RESOURCE may still raise a hard limit.
    set_rlimits(cfg)?;
    drop_privileges(ids)?;
    // After the uid change, which clears it: the VMM dies with its waiter.
    // SAFETY: PR_SET_PDEATHSIG takes a signal number.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    check(rc, "PR_SET_PDEATHSIG").map(drop)
}

/// What [`unshare_all`] did.
pub(crate) enum Unshared {
    /// The process is in its new namespaces.
    Namespaces,
    /// The kernel refused an unprivileged caller a user namespace (so any other): why.
    Refused(JailError),
}

/// A user namespace for an unprivileged caller, then new mount, PID, IPC, UTS and network
/// namespaces; nothing at all where the kernel refuses the user namespace.
pub(crate) fn unshare_all(ids: Ids) -> Result<Unshared> {
    if !ids.privileged {
        match enter_user_namespace(ids) {
            Ok(()) => {}
            Err(e @ JailError::NoUserNamespace { .. }) => return Ok(Unshared::Refused(e)),
            Err(e) => return Err(e),
        }
    }
    let flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWNET;
    // SAFETY: unshare only changes this process's namespaces.
    check(unsafe { libc::unshare(flags) }, "creating its namespaces")?;
    Ok(Unshared::Namespaces)
}

/// The jail of an unprivileged caller refused a user namespace (`userns` says why): a
/// Landlock domain, the rlimits, no new privileges and no capability; the uid stays the
/// caller's, and the process is not forked.
fn enter_landlocked(cfg: &JailConfig, userns: JailError) -> Result<()> {
    let why = match &userns {
        JailError::NoUserNamespace { max, source } => {
            format!("{source}; user.max_user_namespaces = {max}")
        }
        other => other.to_string(),
    };
    let enforced = landlocked::restrict(userns)?;
    log::warn!(
        "jail: no user namespace here (unshare: {why}), so no namespace at all: confined by \
         Landlock instead{}: no file by path but /proc/self (read), no TCP, no signal or \
         abstract socket outside microvm",
        if enforced == landlocked::Enforced::Partly {
            " (this kernel's older Landlock ABI: part of it)"
        } else {
            ""
        }
    );
    set_rlimits(cfg)?;
    no_new_privileges()?;
    clear_capabilities()
}

/// A device process (`crate::isolate`) of a caller refused a user namespace (`userns`
/// says why): the same Landlock domain, RLIMIT_CORE 0, no new privileges, no capability.
pub(crate) fn landlock_device_process(userns: JailError) -> Result<()> {
    let enforced = landlocked::restrict(userns)?;
    log::info!("no user namespace here: confined by Landlock instead ({enforced:?} enforced)");
    set_rlimit(libc::RLIMIT_CORE, 0, "setting RLIMIT_CORE")?;
    no_new_privileges()?;
    clear_capabilities()
}

/// The uid/gid to run as, checked against what the caller can map.
fn resolve_ids(cfg: &JailConfig) -> Result<Ids> {
    // SAFETY: these calls only read the process's credentials.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if euid == 0 {
        return Ok(Ids {
            uid: cfg.uid.unwrap_or(NOBODY),
            gid: cfg.gid.unwrap_or(NOBODY),
            privileged: true,
        });
    }
    for (what, asked, own) in [("uid", cfg.uid, euid), ("gid", cfg.gid, egid)] {
        if let Some(asked) = asked.filter(|&a| a != own) {
            return Err(JailError::ForeignId { what, asked, own });
        }
    }
    Ok(Ids {
        uid: euid,
        gid: egid,
        privileged: false,
    })
}

/// Writes the cgroup limits asked for, then moves this process (and so the VMM it forks)
/// into `dir`. The limits first: the VMM is never in the cgroup without them.
fn join_cgroup(dir: &Path, cfg: &JailConfig) -> Result<()> {
    let limits = [
        ("memory.max", &cfg.memory_max),
        ("cpu.max", &cfg.cpu_max),
        ("pids.max", &cfg.pids_max),
    ];
    for (file, value) in limits {
        if let Some(value) = value {
            write_cgroup(dir, file, value)?;
        }
    }
    write_cgroup(dir, "cgroup.procs", &std::process::id().to_string())
}

fn write_cgroup(dir: &Path, file: &'static str, value: &str) -> Result<()> {
    std::fs::write(dir.join(file), value).map_err(|source| {
        let hint = match source.raw_os_error() {
            Some(libc::ENOENT) if file == "cgroup.procs" => " (not a cgroup v2 directory)",
            Some(libc::ENOENT) => {
                " (is its controller enabled in the parent's cgroup.subtree_control?)"
            }
            Some(libc::EACCES) | Some(libc::EPERM) => {
                " (the cgroup must be delegated to the caller)"
            }
            Some(libc::EBUSY) => " (only a leaf cgroup can hold processes)",
            _ => "",
        };
        JailError::Cgroup {
            path: dir.to_path_buf(),
            file,
            value: value.to_string(),
            hint,
            source,
        }
    })
}

/// A new user namespace in which the caller's own uid and gid map to themselves and
/// nothing else; the process holds every capability there (and only there).
pub(crate) fn enter_user_namespace(ids: Ids) -> Result<()> {
    // A process that changed its uid without exec (a device process forked by a jailed
    // VMM) is not dumpable, and then its /proc/self files belong to the host's root: it
    // could not write its own maps. Dumpable for the writes, as before after.
    // SAFETY: prctl with integer arguments only.
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    if dumpable == 0 {
        // SAFETY: as above.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
        check(rc, "PR_SET_DUMPABLE")?;
    }
    let mapped = map_own_ids(ids);
    if dumpable == 0 {
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    }
    mapped
}

fn map_own_ids(ids: Ids) -> Result<()> {
    // SAFETY: unshare only changes this process's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        let source = io::Error::last_os_error();
        let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        return Err(JailError::NoUserNamespace { max, source });
    }
    let write = |file: &str, text: String, step: &'static str| {
        std::fs::write(file, text).map_err(|source| JailError::Step { step, source })
    };
    // Required before an unprivileged gid_map; the jail sets no groups anyway.
    write(
        "/proc/self/setgroups",
        "deny".into(),
        "writing /proc/self/setgroups",
    )?;
    write(
        "/proc/self/uid_map",
        format!("{0} {0} 1\n", ids.uid),
        "writing /proc/self/uid_map",
    )?;
    write(
        "/proc/self/gid_map",
        format!("{0} {0} 1\n", ids.gid),
        "writing /proc/self/gid_map",
    )
}

/// Where the new tmpfs is mounted before it becomes the root (in the private mount
/// namespace only; the host's /tmp is untouched). Inside a jail, whose root holds only
/// /proc (a device process of a jailed VMM), over that /proc.
fn staging() -> &'static str {
    if Path::new("/tmp").is_dir() {
        "/tmp"
    } else {
        "/proc"
    }
}

/// Replaces the file system with a fresh tmpfs holding only a new /proc (of the new PID
/// namespace: the VMM's own threads) if `proc_fs`, nothing otherwise, then makes it
/// read-only.
pub(crate) fn build_root(proc_fs: bool) -> Result<()> {
    let staging = staging();
    let hidden = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(step("making every mount private"))?;
    mount(
        Some("tmpfs"),
        staging,
        Some("tmpfs"),
        hidden,
        Some("size=16k,nr_inodes=16,mode=0755"),
    )
    .map_err(step("mounting the jail's tmpfs"))?;
    if proc_fs {
        let proc_dir = format!("{staging}/proc");
        std::fs::create_dir(&proc_dir).map_err(step("creating the jail's /proc"))?;
        mount(Some("proc"), &proc_dir, Some("proc"), hidden, None)
            .map_err(step("mounting the jail's /proc"))?;
    }
    std::env::set_current_dir(staging).map_err(step("entering the jail's tmpfs"))?;
    // pivot_root(".", "."): the old root ends up stacked on the new one, then detached.
    let dot = cstring(".");
    // SAFETY: both arguments are valid NUL-terminated paths.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    check(rc as libc::c_int, "pivot_root into the jail")?;
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) };
    check(rc, "detaching the old root")?;
    std::env::set_current_dir("/").map_err(step("entering the jail's root"))?;
    let ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | hidden;
    mount(None, "/", None, ro, None).map_err(step("making the jail's root read-only"))
}

/// Names the new UTS namespace; best effort, nothing depends on it.
fn set_hostname() {
    let name = b"microvm-jail";
    // SAFETY: `name` is valid for `name.len()` bytes.
    unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
}

/// No new privileges, empty bounding and ambient capability sets, the jail's groups, gid
/// and uid, and no capability at all.
pub(crate) fn drop_privileges(ids: Ids) -> Result<()> {
    no_new_privileges()?;
    drop_bounding_set()?;
    if ids.privileged {
        // SAFETY: an empty group list; the pointer is not read.
        check(unsafe { libc::setgroups(0, std::ptr::null()) }, "setgroups")?;
    }
    // SAFETY: plain integer arguments; the process has a single thread.
    let rc = unsafe { libc::setresgid(ids.gid, ids.gid, ids.gid) };
    check(rc, "setresgid to the jail's gid")?;
    // SAFETY: as above.
    let rc = unsafe { libc::setresuid(ids.uid, ids.uid, ids.uid) };
    check(rc, "setresuid to the jail's uid")?;
    clear_capabilities()
}

/// No new privileges (execve can never gain any) and an empty ambient set.
fn no_new_privileges() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check(rc, "PR_SET_NO_NEW_PRIVS")?;
    let clear = libc::PR_CAP_AMBIENT_CLEAR_ALL;
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, clear, 0, 0, 0) };
    check(rc, "clearing the ambient capabilities").map(drop)
}

/// Drops every capability from the bounding set, up to the last one the kernel knows.
fn drop_bounding_set() -> Result<()> {
    for cap in 0.. {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                return Ok(()); // past the last capability
            }
            return Err(JailError::Step {
                step: "dropping the capability bounding set",
                source: e,
            });
        }
    }
    Ok(())
}

/// The capset(2) header and data, version 3 (64-bit sets in two halves).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Empties the effective, permitted and inheritable capability sets.
fn clear_capabilities() -> Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: `header` and both `data` halves are valid, correctly laid out for version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    check(rc as libc::c_int, "dropping every capability").map(drop)
}

/// RLIMIT_NOFILE, RLIMIT_NPROC (if asked) and no core dumps (a core would hold guest RAM).
fn set_rlimits(cfg: &JailConfig) -> Result<()> {
    let nofile = cfg.nofile.unwrap_or(JailConfig::DEFAULT_NOFILE);
    set_rlimit(libc::RLIMIT_NOFILE, nofile, "setting RLIMIT_NOFILE")?;
    if let Some(nproc) = cfg.nproc {
        set_rlimit(libc::RLIMIT_NPROC, nproc, "setting RLIMIT_NPROC")?;
    }
    set_rlimit(libc::RLIMIT_CORE, 0, "setting RLIMIT_CORE")
}

pub(crate) fn set_rlimit(
    resource: libc::__rlimit_resource_t,
    value: u64,
    step: &'static str,
) -> Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: `limit` is a valid rlimit.
    check(unsafe { libc::setrlimit(resource, &limit) }, step).map(drop)
}

fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstring);
    let target = cstring(target);
    let fstype = fstype.map(cstring);
    let data = data.map(cstring);
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is NULL or a valid NUL-terminated string living to the end of
    // the call.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s).expect("jail paths have no NUL byte")
}

fn step(step: &'static str) -> impl FnOnce(io::Error) -> JailError {
    move |source| JailError::Step { step, source }
}

/// `rc` unless negative, in which case the OS error of `step`.
pub(crate) fn check(rc: libc::c_int, step: &'static str) -> Result<libc::c_int> {
    if rc < 0 {
        Err(JailError::Step {
            step,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unprivileged_caller_keeps_its_own_ids() {
        // SAFETY: reads credentials only.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let ids = resolve_ids(&JailConfig::default()).unwrap();
        if euid == 0 {
            assert_eq!((ids.uid, ids.gid, ids.privileged), (NOBODY, NOBODY, true));
        } else {
            assert_eq!((ids.uid, ids.gid, ids.privileged), (euid, egid, false));
        }
    }
}
