//! `microvm seccomp ...`: print the filters, replay an strace log against them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use vmm::seccomp::{self, ThreadKind};

/// `microvm seccomp` subcommands.
#[derive(Subcommand, Debug)]
pub enum SeccompCommand {
    /// Print each thread kind's allowed system calls with the reason for each, ioctl request
    /// names, argument conditions, BPF size and the instructions its hot calls cost.
    Print {
        /// Only this thread kind (vmm, vcpu, ...; `seccomp-log`: the `--seccomp log`
        /// supervisor's filter, `jail-waiter`: the `--jail` waiter's; table format only).
        #[arg(long, value_name = "KIND")]
        thread: Option<String>,
        /// table (for people), json (seccompiler's format, for --seccomp-filter) or markdown
        /// (the generated part of docs/seccomp.md).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Read an `strace -f --decode-pids=comm -o FILE microvm ...` log, group the calls by
    /// thread, and print what the current filters would block, plus a filter file (seccompiler
    /// JSON) that would allow the trace. Exit 0 if nothing would be blocked, 1 otherwise.
    FromStrace {
        /// The strace output file.
        file: PathBuf,
        /// microvm's stderr from the same run with `--log-level debug`: the fd maps
        /// (`seccomp fds of THREAD: ...`) that map the trace's fd numbers to the filters'
        /// roles, when the trace's own write(2) strings were cut (strace -s).
        #[arg(long, value_name = "LOG")]
        fds: Option<PathBuf>,
    },
    /// Prove the sandbox: for each thread kind, fork one child per escape system call
    /// (execve, fork/clone, socket, connect, open/openat, ptrace, process_vm_writev,
    /// mprotect/mmap with PROT_EXEC, bpf, perf_event_open, userfaultfd, io_uring_setup,
    /// kexec_load, init_module, unshare, setns, mount, keyctl, personality ...), install that
    /// kind's filter in it and try the call. Prints what stopped each one; exit 1 if any got
    /// through.
    Check,
}

/// Output formats of `print`.
#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum Format {
    /// Aligned text.
    Table,
    /// seccompiler JSON, reasons as comments.
    Json,
    /// Markdown tables (docs/seccomp.md).
    Markdown,
}

/// Runs `cmd`; errors become one line on stderr and exit 1.
pub fn run(cmd: SeccompCommand) -> ExitCode {
    match execute(cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("microvm: error: {}", crate::one_line(&e));
            ExitCode::from(vmm::exit::EXIT_ERROR as u8)
        }
    }
}

fn execute(cmd: SeccompCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SeccompCommand::Check => check(),
        SeccompCommand::Print { thread, format } => {
            let table = matches!(format, Format::Table);
            let only = |name: &str| table && thread.as_deref().is_none_or(|t| t == name);
            let supervisor = only(seccomp::SUPERVISOR_THREAD);
            let waiter = only(seccomp::waiter::THREAD_NAME);
            let kinds: Vec<ThreadKind> = match thread {
                _ if (supervisor || waiter) && thread.is_some() => Vec::new(),
                None => ThreadKind::all().to_vec(),
                Some(name) => {
                    let kind = ThreadKind::all()
                        .iter()
                        .copied()
                        .find(|k| k.name() == name)
                        .or_else(|| seccomp::strace::kind_of_thread(&name));
                    let known: Vec<&str> = ThreadKind::all().iter().map(|k| k.name()).collect();
                    vec![kind.with_context(|| {
                        format!("unknown thread kind {name:?} (known: {})", known.join(", "))
                    })?]
                }
            };
            let out = match format {
                Format::Table => kinds
                    .iter()
                    .map(|k| seccomp::docs::table(*k))
                    .chain(supervisor.then(seccomp::docs::supervisor_table))
                    .chain(waiter.then(seccomp::docs::waiter_table))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Format::Json => {
                    let filters: Vec<_> = kinds
                        .iter()
                        .map(|k| (*k, seccomp::builtin_symbolic_rules(*k)))
                        .collect();
                    seccomp::json::to_json(&filters)
                }
                Format::Markdown => seccomp::docs::markdown(),
            };
            emit(&out);
            Ok(ExitCode::SUCCESS)
        }
        SeccompCommand::FromStrace { file, fds } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let log = fds
                .map(|f| {
                    std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))
                })
                .transpose()?;
            let report = seccomp::strace::analyze_with_fds(&text, log.as_deref());
            if report.threads.is_empty() {
                anyhow::bail!(
                    "{}: no strace lines of the form `PID<comm> syscall(...) = ...` (record with strace -f --decode-pids=comm -o FILE)",
                    file.display()
                );
            }
            emit(&report.render());
            Ok(if report.blocked.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// `microvm seccomp check`.
fn check() -> anyhow::Result<ExitCode> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut holes = 0;
    for kind in ThreadKind::all() {
        let results = seccomp::check::check_kind(*kind)
            .with_context(|| format!("compiling the {kind} filter"))?;
        let stopped = results.iter().filter(|(_, o)| o.stopped()).count();
        let _ = writeln!(
            out,
            "thread kind {kind}: {stopped} of {} escape calls stopped",
            results.len()
        );
        for (escape, outcome) in &results {
            let _ = writeln!(out, "  {:<34} {outcome}", escape.what);
        }
        holes += results.len() - stopped;
    }
    if holes == 0 {
        out.push_str("every escape call was stopped in every thread kind\n");
    } else {
        let _ = writeln!(
            out,
            "{holes} escape call(s) got through: the filters need fixing"
        );
    }
    emit(&out);
    Ok(if holes == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(vmm::exit::EXIT_ERROR as u8)
    })
}

/// Writes command output to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
