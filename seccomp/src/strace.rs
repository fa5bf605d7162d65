//! `microvm seccomp from-strace FILE`: replay an `strace -f --decode-pids=comm` log against
//! the current filters.
//!
//! Lines look like `12345<vcpu0> ioctl(13, KVM_RUN, 0) = 0`, with `<unfinished ...>` /
//! `<... ioctl resumed>` pairs, `--- SIG... ---` and `+++ exited ... +++` lines (a
//! `[pid 12345<vcpu0>] ` prefix, as strace writes to a terminal, is accepted too). Calls are
//! grouped by thread id; a thread's calls before its own successful
//! `seccomp(SECCOMP_SET_MODE_FILTER, ...)` are set-up and only counted. Its kind comes from
//! its name when it installed the filter (`vcpu3` -> vcpu, `virtio-blk0` -> blk). Each later
//! call is decoded (numbers, `NULL`, known constants and `A|B` flag sets; strings, structs and
//! arrays stay unknown) and run through the kind's `--seccomp true` program in the BPF
//! simulator. A decision that loaded an argument strace did not print as a number or known
//! constant is flagged as uncertain.
//!
//! The filters pin fds by role. microvm logs each thread's fd map at debug level (`seccomp
//! fds of vcpu0: stdout=1 ... exit=4 ...`, `vmm/src/filter_fds.rs`); the replay takes the maps
//! from the trace's own `write(2, "...")` lines (record with `--log-level debug` and
//! `strace -s 1024` so they are not cut) or from a separate log (`--fds FILE`, microvm's
//! stderr), and runs each thread's calls against its filter pinned to *its* fds. A thread
//! without a map is replayed with every fd condition taken as true, and the report says so.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::bpf::{simulate_loads, SeccompData};
use crate::rule::{ArgCond, ArgRule, SyscallRule};
use crate::{compile, syscall_name, syscall_number, FilterContext, Mode, ThreadKind};

/// One call the current filters would not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// Thread name (comm) when it installed its filter.
    pub thread: String,
    /// Its kind.
    pub kind: ThreadKind,
    /// System call name.
    pub syscall: String,
    /// The decoded arguments (None = not decoded).
    pub args: Vec<Option<u64>>,
    /// Whether the decision read an argument strace did not decode.
    pub uncertain: bool,
    /// How many identical calls.
    pub count: usize,
    /// The first such strace line.
    pub line: String,
}

/// One thread of the trace.
#[derive(Clone, Debug, Default)]
pub struct Thread {
    /// Thread id.
    pub tid: u32,
    /// Name when it installed its filter, else the last name seen.
    pub name: String,
    /// Calls before its filter went on (not evaluated).
    pub setup_calls: usize,
    /// Calls after its filter went on.
    pub filtered_calls: usize,
    /// Whether it installed a filter.
    pub filtered: bool,
    /// Whether its calls were replayed against its fd map (else fd pins were not checked).
    pub pinned: bool,
    calls: Vec<(String, Vec<Option<u64>>, String)>,
}

/// The result of replaying a trace.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every thread, by tid.
    pub threads: Vec<Thread>,
    /// Calls the filters would block, grouped.
    pub blocked: Vec<Blocked>,
    /// Calls answered with an errno by design (e.g. `openat` -> EACCES): (thread, syscall, count).
    pub errno_answers: Vec<(String, String, usize)>,
    /// Filtered threads whose name maps to no known kind.
    pub unknown_kind: Vec<String>,
}

/// The kind a thread name denotes: trailing digits and a `virtio-` prefix are dropped.
pub fn kind_of_thread(name: &str) -> Option<ThreadKind> {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let base = base.strip_prefix("virtio-").unwrap_or(base);
    ThreadKind::all().iter().copied().find(|k| k.name() == base)
}

/// The fd maps microvm logged (`seccomp fds of THREAD: role=fd,fd ...`), by thread name,
/// from raw log lines or strace's escaped `write(2, "...")` strings. A map cut short by
/// strace (`"...`) or with an unknown role is left out.
pub fn fd_maps(text: &str) -> BTreeMap<String, FilterContext> {
    const MARK: &str = "seccomp fds of ";
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(at) = line.find(MARK) else {
            continue;
        };
        let rest = &line[at + MARK.len()..];
        let Some((thread, rest)) = rest.split_once(": ") else {
            continue;
        };
        let end = rest
            .find("\\n")
            .or_else(|| rest.find('"'))
            .unwrap_or(rest.len());
        if rest[end..].starts_with("\"...") {
            continue;
        }
        let mut ctx = FilterContext::new();
        let ok = rest[..end].split_whitespace().all(|tok| {
            let Some((role, fds)) = tok.split_once('=') else {
                return false;
            };
            let Some(role) = crate::fds::role(role) else {
                return false;
            };
            let Ok(fds) = fds
                .split(',')
                .map(str::parse::<i32>)
                .collect::<Result<Vec<_>, _>>()
            else {
                return false;
            };
            ctx.add(role, fds);
            true
        });
        if ok {
            out.insert(thread.to_string(), ctx);
        }
    }
    out
}

/// Replays `text` against the current filters, with the fd maps found in it.
pub fn analyze(text: &str) -> Report {
    analyze_with_fds(text, None)
}

/// Replays `text`, with the fd maps of `text` and of `fds_log` (microvm's stderr).
pub fn analyze_with_fds(text: &str, fds_log: Option<&str>) -> Report {
    let mut maps = fd_maps(text);
    if let Some(log) = fds_log {
        maps.extend(fd_maps(log));
    }
    let mut threads: BTreeMap<u32, Thread> = BTreeMap::new();
    let mut pending: BTreeMap<u32, String> = BTreeMap::new();
    let mut tgid = None;
    for line in text.lines() {
        let Some((tid, comm, rest)) = split_prefix(line) else {
            continue;
        };
        tgid.get_or_insert(tid);
        let t = threads.entry(tid).or_insert_with(|| Thread {
            tid,
            ..Thread::default()
        });
        if !t.filtered {
            t.name = comm.to_string();
        }
        if rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        let full = if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some(start) = pending.remove(&tid) else {
                continue;
            };
            let after = resumed.split_once("resumed>").map_or("", |(_, a)| a);
            format!("{start}{after}")
        } else if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(tid, head.trim_end().to_string());
            continue;
        } else {
            rest.to_string()
        };
        let Some((name, args, ret)) = split_call(&full) else {
            continue;
        };
        if t.filtered {
            t.filtered_calls += 1;
            t.calls.push((name.to_string(), args, line.to_string()));
        } else {
            t.setup_calls += 1;
            if name == "seccomp"
                && full.contains("SECCOMP_SET_MODE_FILTER")
                && ret.trim_start().starts_with("0")
            {
                t.filtered = true;
                t.name = comm.to_string();
            }
        }
    }
    let mut report = Report::default();
    let own_pid = u64::from(std::process::id());
    let mut blocked: BTreeMap<(u32, String, Vec<Option<u64>>), Blocked> = BTreeMap::new();
    let mut errnos: BTreeMap<(String, String), usize> = BTreeMap::new();
    for t in threads.values_mut() {
        if !t.filtered {
            continue;
        }
        let Some(kind) = kind_of_thread(&t.name) else {
            report.unknown_kind.push(t.name.clone());
            continue;
        };
        let ctx = match maps.get(&t.name) {
            Some(ctx) => {
                t.pinned = true;
                ctx.clone()
            }
            None => FilterContext::unpinned(),
        };
        let Ok(Some(prog)) = compile(kind, Mode::Kill, &ctx) else {
            continue;
        };
        for (name, args, line) in &t.calls {
            let Some(nr) = syscall_number(name) else {
                continue;
            };
            let mut words = [0u64; 6];
            for (w, a) in words.iter_mut().zip(args) {
                *w = a.unwrap_or(0);
            }
            // The filter pins tgkill's tgid to the running process; map the traced one.
            if nr == libc::SYS_tgkill && args.first().copied().flatten() == tgid.map(u64::from) {
                words[0] = own_pid;
            }
            let (verdict, loaded) = simulate_loads(&prog, &SeccompData::new(nr, words));
            if verdict.allows() {
                continue;
            }
            if verdict.errno().is_some() {
                *errnos.entry((t.name.clone(), name.clone())).or_default() += 1;
                continue;
            }
            let uncertain =
                (0..6).any(|i| loaded & (1 << i) != 0 && args.get(i).copied().flatten().is_none());
            let relevant: Vec<Option<u64>> = (0..6)
                .map(|i| {
                    if loaded & (1 << i) != 0 {
                        args.get(i).copied().flatten()
                    } else {
                        None
                    }
                })
                .collect();
            blocked
                .entry((t.tid, name.clone(), relevant.clone()))
                .and_modify(|b| b.count += 1)
                .or_insert_with(|| Blocked {
                    thread: t.name.clone(),
                    kind,
                    syscall: name.clone(),
                    args: relevant,
                    uncertain,
                    count: 1,
                    line: line.clone(),
                });
        }
    }
    report.blocked = blocked.into_values().collect();
    report.errno_answers = errnos.into_iter().map(|((t, s), n)| (t, s, n)).collect();
    report.threads = threads.into_values().collect();
    report
}

impl Report {
    /// The printed report: per thread, then the filter file that would allow the trace.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for t in &self.threads {
            let kind =
                kind_of_thread(&t.name).map_or("unknown kind".to_string(), |k| format!("kind {k}"));
            if !t.filtered {
                let _ = writeln!(
                    out,
                    "thread {} (tid {}): never installed a filter; {} calls, not evaluated",
                    t.name, t.tid, t.setup_calls
                );
                continue;
            }
            let _ = writeln!(out, "thread {} (tid {}, {kind}): {} calls before its filter (set-up, not evaluated), {} after", t.name, t.tid, t.setup_calls, t.filtered_calls);
            if !t.pinned && kind_of_thread(&t.name).is_some() {
                let _ = writeln!(out, "  fd pins not checked: no fd map for {} (record microvm with --log-level debug and strace -s 1024, or pass --fds with its stderr)", t.name);
            }
            let mine: Vec<&Blocked> = self.blocked.iter().filter(|b| b.thread == t.name).collect();
            if mine.is_empty() && kind_of_thread(&t.name).is_some() {
                let _ = writeln!(out, "  nothing would be blocked");
            }
            for b in mine {
                let args: Vec<String> = b
                    .args
                    .iter()
                    .enumerate()
                    .filter_map(|(i, a)| a.map(|v| format!("arg{i}={v:#x}")))
                    .collect();
                let note = if b.uncertain {
                    " (uncertain: an argument the filter checks was not decoded)"
                } else {
                    ""
                };
                let nr = syscall_number(&b.syscall).unwrap_or(-1);
                let _ = writeln!(
                    out,
                    "  BLOCKED {} ({nr}) [{}] x{}{note}\n    first: {}",
                    b.syscall,
                    args.join(" "),
                    b.count,
                    b.line.trim()
                );
            }
        }
        for (thread, syscall, n) in &self.errno_answers {
            let _ = writeln!(out, "note: {thread}: {syscall} x{n} is answered with an errno by design (see the errno rules), not blocked");
        }
        for name in &self.unknown_kind {
            let _ = writeln!(
                out,
                "note: thread {name} installed a filter but its name maps to no thread kind"
            );
        }
        let _ = writeln!(
            out,
            "summary: {} distinct blocked call(s), {} in total",
            self.blocked.len(),
            self.blocked.iter().map(|b| b.count).sum::<usize>()
        );
        out.push_str("--- a filter file that allows this trace (seccompiler JSON, for --seccomp-filter) ---\n");
        out.push_str(&self.filter_file());
        out
    }

    /// The built-in filters of the kinds in the trace, plus rules for what was blocked.
    pub fn filter_file(&self) -> String {
        let mut kinds: Vec<ThreadKind> = self
            .threads
            .iter()
            .filter(|t| t.filtered)
            .filter_map(|t| kind_of_thread(&t.name))
            .collect();
        kinds.sort_by_key(|k| k.name());
        kinds.dedup();
        let filters: Vec<(ThreadKind, Vec<SyscallRule>)> = kinds
            .into_iter()
            .map(|kind| {
                let mut rules = crate::symbolic_rules(kind);
                for b in self.blocked.iter().filter(|b| b.kind == kind) {
                    add_rule(&mut rules, b);
                }
                (kind, rules)
            })
            .collect();
        crate::json::to_json(&filters)
    }
}

/// Extends `rules` so that `b` is allowed: the exact values of the checked arguments when
/// they were decoded, else the syscall with any arguments.
fn add_rule(rules: &mut Vec<SyscallRule>, b: &Blocked) {
    let Some(nr) = syscall_number(&b.syscall) else {
        return;
    };
    let name = syscall_name(nr).unwrap_or("unknown");
    let reason: &'static str = Box::leak(
        format!(
            "added by from-strace: {} x{} on {}",
            b.syscall, b.count, b.thread
        )
        .into_boxed_str(),
    );
    let conds: Vec<ArgCond> = b
        .args
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.map(|v| ArgCond::eq(i as u8, v & 0xffff_ffff)))
        .collect();
    let exact = !b.uncertain && !conds.is_empty();
    match rules.iter_mut().find(|r| r.nr == nr) {
        Some(rule) if exact => match &mut rule.args {
            ArgRule::Match(alts) => alts.push(conds),
            ArgRule::Ioctls { fd, requests } => {
                let mut alts: Vec<Vec<ArgCond>> = requests
                    .iter()
                    .map(|r| {
                        let mut c: Vec<ArgCond> = fd.iter().map(|r| ArgCond::fd(0, r)).collect();
                        c.push(ArgCond::eq(1, r.request));
                        c
                    })
                    .collect();
                alts.push(conds);
                rule.args = ArgRule::Match(alts);
            }
            ArgRule::Any => {}
        },
        Some(rule) => rule.args = ArgRule::Any,
        None => {
            let args = if exact {
                ArgRule::Match(vec![conds])
            } else {
                ArgRule::Any
            };
            rules.push(SyscallRule::new(name, nr, reason, args));
        }
    }
}

/// `12345<comm> rest` or `[pid 12345<comm>] rest` -> (tid, comm, rest).
fn split_prefix(line: &str) -> Option<(u32, &str, &str)> {
    let line = line.strip_prefix("[pid").map_or(line, str::trim_start);
    let lt = line.find('<')?;
    let tid: u32 = line[..lt].trim().parse().ok()?;
    let gt = line[lt..].find('>')? + lt;
    let rest = line[gt + 1..].trim_start_matches(']').trim_start();
    Some((tid, &line[lt + 1..gt], rest))
}

/// `name(args) = ret` -> (name, decoded args, ret text).
fn split_call(s: &str) -> Option<(&str, Vec<Option<u64>>, &str)> {
    let open = s.find('(')?;
    let name = &s[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let body = &s[open + 1..];
    let (mut depth, mut in_str, mut esc) = (0i32, false, false);
    let mut args = Vec::new();
    let mut start = 0;
    let mut end = None;
    for (i, c) in body.char_indices() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' if depth == 0 => {
                args.push(&body[start..i]);
                end = Some(i);
                break;
            }
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                args.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    let end = end?;
    let ret = body[end + 1..].trim_start().strip_prefix('=').unwrap_or("");
    let decoded = args
        .iter()
        .map(|a| decode(a.trim()))
        .filter(|_| true)
        .collect::<Vec<_>>();
    let decoded = if decoded.len() == 1 && args[0].trim().is_empty() {
        Vec::new()
    } else {
        decoded
    };
    Some((name, decoded, ret))
}

/// A number, `NULL`, a known constant or an `A|B` set of them.
fn decode(arg: &str) -> Option<u64> {
    let arg = arg.split(" /*").next().unwrap_or(arg).trim();
    if arg.contains('|') && !arg.starts_with('"') {
        return arg
            .split('|')
            .try_fold(0u64, |acc, p| Some(acc | decode(p)?));
    }
    // `3</dev/kvm>` (strace -y): the fd number.
    let arg = match arg.find('<') {
        Some(i) if i > 0 && arg[..i].bytes().all(|b| b.is_ascii_digit()) => &arg[..i],
        _ => arg,
    };
    if let Some(hex) = arg.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok();
    }
    if let Ok(n) = arg.parse::<i64>() {
        return Some(n as u64);
    }
    if let Some(n) = arg
        .strip_prefix("SIGRT_")
        .and_then(|n| n.parse::<u64>().ok())
    {
        return Some(32 + n);
    }
    if let Some(r) = crate::ioctls::number_of(arg) {
        return Some(r);
    }
    constant(arg)
}

/// Constants strace prints for the arguments our filters check.
#[rustfmt::skip]
fn constant(name: &str) -> Option<u64> {
    use libc::*;
    let v: i64 = match name {
        "NULL" | "PROT_NONE" | "O_RDONLY" | "FUTEX_WAIT" | "SIG_BLOCK" => 0,
        "PROT_READ" => PROT_READ.into(), "PROT_WRITE" => PROT_WRITE.into(), "PROT_EXEC" => PROT_EXEC.into(),
        "MAP_SHARED" => MAP_SHARED.into(), "MAP_PRIVATE" => MAP_PRIVATE.into(), "MAP_ANONYMOUS" => MAP_ANONYMOUS.into(),
        "MAP_FIXED" => MAP_FIXED.into(), "MAP_NORESERVE" => MAP_NORESERVE.into(), "MAP_STACK" => MAP_STACK.into(),
        "O_WRONLY" => O_WRONLY.into(), "O_RDWR" => O_RDWR.into(), "O_CREAT" => O_CREAT.into(), "O_TRUNC" => O_TRUNC.into(),
        "O_CLOEXEC" => O_CLOEXEC.into(), "O_NONBLOCK" => O_NONBLOCK.into(), "O_APPEND" => O_APPEND.into(),
        "AT_FDCWD" => AT_FDCWD.into(),
        "FUTEX_WAKE" => 1, "FUTEX_WAIT_BITSET" => 9, "FUTEX_WAKE_BITSET" => 10,
        "FUTEX_WAIT_PRIVATE" => 128, "FUTEX_WAKE_PRIVATE" => 129,
        "FUTEX_WAIT_BITSET_PRIVATE" => 137, "FUTEX_WAKE_BITSET_PRIVATE" => 138, "FUTEX_CLOCK_REALTIME" => 256,
        "MADV_DONTNEED" => MADV_DONTNEED.into(), "MADV_FREE" => MADV_FREE.into(),
        "PR_GET_NAME" => PR_GET_NAME.into(), "PR_SET_NAME" => PR_SET_NAME.into(),
        "F_GETFD" => F_GETFD.into(), "F_SETFD" => F_SETFD.into(), "F_GETFL" => F_GETFL.into(), "F_SETFL" => F_SETFL.into(),
        "SIG_UNBLOCK" => SIG_UNBLOCK.into(), "SIG_SETMASK" => SIG_SETMASK.into(),
        "SIGABRT" => SIGABRT.into(), "SIGKILL" => SIGKILL.into(), "SIGTERM" => SIGTERM.into(), "SIGINT" => SIGINT.into(),
        "SIGHUP" => SIGHUP.into(), "SIGSYS" => SIGSYS.into(), "SIGUSR1" => SIGUSR1.into(), "SIGUSR2" => SIGUSR2.into(),
        "SIGRTMIN" => 32,
        "EPOLL_CTL_ADD" => EPOLL_CTL_ADD.into(), "EPOLL_CTL_DEL" => EPOLL_CTL_DEL.into(), "EPOLL_CTL_MOD" => EPOLL_CTL_MOD.into(),
        "CLOCK_REALTIME" => CLOCK_REALTIME.into(), "CLOCK_MONOTONIC" => CLOCK_MONOTONIC.into(),
        "AF_UNIX" => AF_UNIX.into(), "AF_INET" => AF_INET.into(), "SOCK_STREAM" => SOCK_STREAM.into(), "SOCK_DGRAM" => SOCK_DGRAM.into(),
        _ => return None,
    };
    Some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_constants() {
        assert_eq!(
            split_prefix("12<vcpu0> ioctl(13, KVM_RUN, 0) = 0"),
            Some((12, "vcpu0", "ioctl(13, KVM_RUN, 0) = 0"))
        );
        assert_eq!(
            split_prefix("[pid 12<vmm>] read(3, \"\", 8) = 0").map(|p| p.1),
            Some("vmm")
        );
        let (name, args, _) = split_call(
            "mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f",
        )
        .unwrap();
        assert_eq!(name, "mmap");
        assert_eq!(args[2], Some(3));
        assert_eq!(args[4], Some(u64::MAX));
        let (_, args, _) = split_call("write(2, \"a, b) = (\", 8) = 8").unwrap();
        assert_eq!(args, vec![Some(2), None, Some(8)]);
        let (_, args, _) = split_call("getppid() = 1").unwrap();
        assert!(args.is_empty());
        assert_eq!(decode("SIGRT_2"), Some(34));
        assert_eq!(
            decode("FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME"),
            Some(393)
        );
        assert_eq!(decode("13</dev/kvm>"), Some(13));
        assert_eq!(kind_of_thread("vcpu12"), Some(ThreadKind::Vcpu));
        assert_eq!(kind_of_thread("vmm"), Some(ThreadKind::Vmm));
        assert_eq!(kind_of_thread("tokio-1"), None);
    }

    #[test]
    fn finds_exactly_the_blocked_calls() {
        let trace = "\
100<microvm> prctl(PR_SET_NAME, \"vmm\") = 0
100<vmm> socket(AF_UNIX, SOCK_STREAM, 0) = 3
101<vmm> prctl(PR_SET_NAME, \"vcpu0\") = 0
101<vcpu0> seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, {len=90, filter=0x1}) = 0
101<vcpu0> ioctl(13, KVM_RUN <unfinished ...>
100<vmm> seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, {len=90, filter=0x1}) = 0
101<vcpu0> <... ioctl resumed>, 0) = 0
101<vcpu0> ioctl(13, KVM_SET_REGS, 0x7ffd) = 0
101<vcpu0> getppid() = 1
101<vcpu0> getppid() = 1
101<vcpu0> --- SIGRT_2 {si_signo=SIGRT_2} ---
100<vmm> tgkill(100, 101, SIGRT_2) = 0
100<vmm> openat(AT_FDCWD, \"/proc/sys/vm/overcommit_memory\", O_RDONLY|O_CLOEXEC) = -1 EACCES (Permission denied)
100<vmm> epoll_wait(4, [], 16, -1) = 0
101<vcpu0> +++ exited with 0 +++
";
        let r = analyze(trace);
        let got: Vec<(&str, &str, usize)> = r
            .blocked
            .iter()
            .map(|b| (b.thread.as_str(), b.syscall.as_str(), b.count))
            .collect();
        assert_eq!(
            got,
            vec![("vcpu0", "getppid", 2), ("vcpu0", "ioctl", 1)],
            "{}",
            r.render()
        );
        assert_eq!(r.errno_answers, vec![("vmm".into(), "openat".into(), 1)]);
        let file = r.filter_file();
        let custom = crate::CustomFilters::parse(&file).unwrap();
        assert_eq!(custom.kinds.len(), 2);
    }
}
