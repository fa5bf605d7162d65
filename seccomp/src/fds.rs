//! The fds each thread owns, by role, and how rules that name a role are pinned to them.
//!
//! Rules name fds symbolically (`ArgCond::fd(0, "disk")`, `SyscallRule::on_fds`), so they
//! stay data that prints and round-trips through JSON (`"comment": "fd:disk"`). The parent
//! of a thread knows the numbers: it fills a [`FilterContext`] with every fd the thread will
//! use, by role, before the thread is spawned (microvm: `vmm/src/filter_fds.rs`), and
//! [`resolve`] turns each symbolic condition into one alternative per fd of its role. A role
//! the thread has no fd in grants nothing: the alternative goes, and a rule left without
//! alternatives goes too (it never becomes unconditional).
//!
//! Role names are relative to the thread: `disk` is the disk of *this* blk thread, `irq`
//! the irqfd of *this* device, so one filter per kind serves every thread of the kind.

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::RawFd;

use crate::rule::{ArgCond, ArgRule, SyscallRule};
use crate::ThreadKind;

/// Every role a rule may name: (name, what it is). `stdin`/`stdout`/`stderr` are 0/1/2
/// unless a context says otherwise.
#[rustfmt::skip]
pub const ROLES: &[(&str, &str)] = &[
    ("stdin", "fd 0: console input (read by the vmm thread, terminal ioctls)"),
    ("stdout", "fd 1: serial console output (vCPU threads; the vmm thread flushes at exit)"),
    ("stderr", "fd 2: log lines and the SIGSYS report (any thread)"),
    ("vcpu", "this vCPU thread's KVM vCPU fd"),
    ("vm", "the KVM VM fd: once the guest runs, the vmm thread ends the set-up's grace period (and with --pit on turns the PIT's lost-tick reinjection off)"),
    ("disk", "this virtio-blk thread's disk image"),
    ("tap", "this virtio-net thread's TAP"),
    ("epoll", "this thread's own epoll instance (its event loop)"),
    ("signalfd", "the signalfd of SIGINT/SIGTERM/SIGHUP (vmm)"),
    ("status", "/proc/thread-self/status of the vmm thread, opened before its filter (sandbox self-check)"),
    ("exit", "the exit eventfd: a vCPU (or the vmm thread) reports why the VM stops, the vmm thread wakes"),
    ("reset", "the i8042 reset eventfd (vCPU writes, vmm reads)"),
    ("poweroff", "the ACPI power-off eventfd (vCPU writes, vmm reads)"),
    ("irq:serial", "the COM1 irqfd (vCPU on register writes, vmm on console input)"),
    ("irq:i8042", "the i8042 irqfd (vCPU)"),
    ("irq", "this device's irqfd (used-buffer / config interrupts)"),
    ("queue", "this device's queue ioeventfds (read when the guest notifies)"),
    ("notify", "this device's queue eventfds, written to come back for requests left after a pass"),
    ("state", "this device's state eventfd (DRIVER_OK / reset, written by the transport)"),
    ("stop", "this device's stop eventfd (written by the vmm thread at shutdown)"),
    ("timer", "this device's rate-limit timerfds (blk/net with bw= or ops=; none otherwise)"),
    ("notify:virtio", "every device's queue eventfds (QueueNotify writes that reached the vCPU)"),
    ("state:virtio", "every device's state eventfd (the transport on a vCPU wakes its device thread)"),
    ("stop:virtio", "every device's stop eventfd (the vmm thread stops the devices)"),
    ("proxy", "this device process's end of its proxy socket: register requests in, replies out (--isolate devices; no fd for a device thread)"),
    ("window", "this device process's MMIO-window eventfds: the state eventfd trigger and the trapped-QueueNotify clones (--isolate devices; no fd for a device thread)"),
    ("proxy:virtio", "every isolated device's proxy socket, VMM end: a vCPU forwards register accesses (--isolate devices)"),
    ("hello", "--isolate devices under --seccomp log: this device process's proxy socket, for the one hello that hands the VMM its seccomp listener (SCM_RIGHTS); no fd otherwise"),
    ("pidfd:jailed", "the jail's waiter: its pidfd of the jailed VMM (waitid, pidfd_send_signal; --jail only)"),
    ("pidfd:virtio", "every device process's pidfd: the vmm thread reaps and stops them (--isolate devices)"),
    ("hook", "test builds only: the test hook device's wake eventfds (vCPU writes, vmm and device threads read); no fd otherwise"),
];

/// The role named `name`, as the `'static` string rules use; `None` if there is no such role.
pub fn role(name: &str) -> Option<&'static str> {
    ROLES.iter().map(|(r, _)| *r).find(|r| *r == name)
}

/// Facts known when a filter is built, so rules can pin them: the fds the thread owns, by
/// role (see [`ROLES`]). The parent fills it before spawning the thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterContext {
    /// Role -> fds, in the order rules test them (hottest first).
    pub fds: BTreeMap<&'static str, Vec<RawFd>>,
    /// Replaying a trace without an fd map: every fd condition holds (pins unchecked).
    pub any_fd: bool,
}

impl FilterContext {
    /// An empty context (only stdin/stdout/stderr, as 0/1/2).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `fds` to `role` (panics on a role not in [`ROLES`]: a typo in microvm's code).
    pub fn with(mut self, role: &'static str, fds: impl IntoIterator<Item = RawFd>) -> Self {
        self.add(role, fds);
        self
    }

    /// Adds `fds` to `role`.
    pub fn add(&mut self, role: &'static str, fds: impl IntoIterator<Item = RawFd>) {
        let role = self::role(role).unwrap_or_else(|| panic!("unknown fd role {role:?}"));
        let v = self.fds.entry(role).or_default();
        for fd in fds {
            if !v.contains(&fd) {
                v.push(fd);
            }
        }
    }

    /// The fds of `role` (stdin/stdout/stderr default to 0/1/2).
    pub fn get(&self, role: &str) -> Vec<RawFd> {
        if let Some(v) = self.fds.get(role) {
            return v.clone();
        }
        match role {
            "stdin" => vec![0],
            "stdout" => vec![1],
            "stderr" => vec![2],
            _ => Vec::new(),
        }
    }

    /// The role of `fd` in this context, if any (for reports).
    pub fn role_of(&self, fd: RawFd) -> Option<&'static str> {
        ROLES
            .iter()
            .map(|(r, _)| *r)
            .find(|r| self.get(r).contains(&fd))
    }

    /// A plausible context for a thread of `kind`, with distinct fd numbers per role, as a
    /// VM with one disk, one TAP and rng would give it: for `print` counts, `check` and
    /// tests. Numbers from 20 up, so stdin/stdout/stderr and low "foreign" fds stay apart.
    pub fn example(kind: ThreadKind) -> Self {
        let roles: &[&'static str] = match kind {
            ThreadKind::Vmm => &[
                "epoll",
                "exit",
                "reset",
                "poweroff",
                "signalfd",
                "status",
                "irq:serial",
                "stop:virtio",
                "vm",
            ],
            ThreadKind::Vcpu => &[
                "vcpu",
                "exit",
                "reset",
                "poweroff",
                "irq:serial",
                "irq:i8042",
                "notify:virtio",
                "state:virtio",
            ],
            ThreadKind::Blk => &[
                "epoll", "disk", "irq", "queue", "notify", "state", "stop", "timer",
            ],
            ThreadKind::Net => &[
                "epoll", "tap", "irq", "queue", "notify", "state", "stop", "timer",
            ],
            ThreadKind::Rng => &["epoll", "irq", "queue", "notify", "state", "stop"],
        };
        let mut ctx = Self::new();
        for (i, r) in roles.iter().enumerate() {
            // Each role gets its own block of two numbers (net has two queues).
            let base = 20 + 2 * i as RawFd;
            let n = if matches!(*r, "queue" | "notify") && kind == ThreadKind::Net {
                2
            } else {
                1
            };
            ctx.add(r, base..base + n);
        }
        ctx
    }

    /// A context under which every fd condition holds (a replay without an fd map).
    pub fn unpinned() -> Self {
        Self {
            any_fd: true,
            ..Self::default()
        }
    }
}

impl fmt::Display for FilterContext {
    /// `stdin=0 stdout=1 ... disk=5 queue=16,17`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (role, _) in ROLES {
            let fds = self.get(role);
            if fds.is_empty() {
                continue;
            }
            let list: Vec<String> = fds.iter().map(|fd| fd.to_string()).collect();
            write!(
                f,
                "{}{role}={}",
                if first { "" } else { " " },
                list.join(",")
            )?;
            first = false;
        }
        Ok(())
    }
}

/// `rules` with every fd role replaced by the fds `ctx` gives it (see the module docs).
pub fn resolve(rules: &[SyscallRule], ctx: &FilterContext) -> Vec<SyscallRule> {
    rules.iter().filter_map(|r| resolve_rule(r, ctx)).collect()
}

fn fd_value(fd: RawFd) -> u64 {
    // fds are `unsigned int` in the kernel: compare the 32-bit pattern.
    u64::from(fd as u32)
}

fn resolve_rule(rule: &SyscallRule, ctx: &FilterContext) -> Option<SyscallRule> {
    let args = match &rule.args {
        ArgRule::Any => ArgRule::Any,
        ArgRule::Ioctls { fd: None, requests } => ArgRule::Ioctls {
            fd: None,
            requests: requests.clone(),
        },
        ArgRule::Ioctls {
            fd: Some(_),
            requests,
        } if ctx.any_fd => ArgRule::Ioctls {
            fd: None,
            requests: requests.clone(),
        },
        ArgRule::Ioctls {
            fd: Some(role),
            requests,
        } => {
            let fds = ctx.get(role);
            // Request-major: the first request (KVM_RUN) is decided first.
            let alts: Vec<Vec<ArgCond>> = requests
                .iter()
                .flat_map(|r| {
                    fds.iter().map(move |fd| {
                        vec![ArgCond::eq(0, fd_value(*fd)), ArgCond::eq(1, r.request)]
                    })
                })
                .collect();
            if alts.is_empty() {
                return None;
            }
            ArgRule::Match(alts)
        }
        ArgRule::Match(alts) => {
            let mut out = Vec::new();
            for conds in alts {
                expand(conds, ctx, &mut Vec::new(), &mut out);
            }
            if out.is_empty() {
                return None;
            }
            if out.iter().any(Vec::is_empty) {
                // Every condition of an alternative held unconditionally (unpinned replay).
                ArgRule::Any
            } else {
                ArgRule::Match(out)
            }
        }
    };
    Some(SyscallRule::new(rule.name, rule.nr, rule.reason, args))
}

/// Every combination of the fds of the roles in `rest`, appended to `out`.
fn expand(
    rest: &[ArgCond],
    ctx: &FilterContext,
    prefix: &mut Vec<ArgCond>,
    out: &mut Vec<Vec<ArgCond>>,
) {
    let Some((c, rest)) = rest.split_first() else {
        out.push(prefix.clone());
        return;
    };
    match c.fd {
        None => {
            prefix.push(c.clone());
            expand(rest, ctx, prefix, out);
            prefix.pop();
        }
        Some(_) if ctx.any_fd => expand(rest, ctx, prefix, out),
        Some(role) => {
            for fd in ctx.get(role) {
                prefix.push(ArgCond {
                    value: fd_value(fd),
                    fd: None,
                    ..c.clone()
                });
                expand(rest, ctx, prefix, out);
                prefix.pop();
            }
        }
    }
}

/// The roles `rules` name, in first-use order.
pub fn roles_used(rules: &[SyscallRule]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for rule in rules {
        let roles: Vec<&'static str> = match &rule.args {
            ArgRule::Ioctls { fd: Some(r), .. } => vec![r],
            ArgRule::Match(alts) => alts.iter().flatten().filter_map(|c| c.fd).collect(),
            _ => Vec::new(),
        };
        for r in roles {
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}
