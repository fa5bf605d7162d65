//! `microvm seccomp ...`: print the filters, replay an strace log against them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use vmm::seccomp::{self, FilterContext, ThreadKind};

/// `microvm seccomp` subcommands.
#[derive(Subcommand, Debug)]
pub enum SeccompCommand {
    /// Print each thread kind's allowed system calls with the reason for each, ioctl request
    /// names, argument conditions, BPF size and the instructions its hot calls cost.
    Print {
        /// Only this thread kind (vmm, vcpu, ...).
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
    },
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
            eprintln!("microvm: error: {e:#}");
            ExitCode::from(vmm::exit::EXIT_ERROR as u8)
        }
    }
}

fn execute(cmd: SeccompCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SeccompCommand::Print { thread, format } => {
            let kinds: Vec<ThreadKind> = match thread {
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
                    .collect::<Vec<_>>()
                    .join("\n"),
                Format::Json => {
                    let filters: Vec<_> = kinds
                        .iter()
                        .map(|k| (*k, seccomp::builtin_rules(*k, &FilterContext::default())))
                        .collect();
                    seccomp::json::to_json(&filters)
                }
                Format::Markdown => seccomp::docs::markdown(),
            };
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        SeccompCommand::FromStrace { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let report = seccomp::strace::analyze(&text);
            if report.threads.is_empty() {
                anyhow::bail!(
                    "{}: no strace lines of the form `PID<comm> syscall(...) = ...` (record with strace -f --decode-pids=comm -o FILE)",
                    file.display()
                );
            }
            print!("{}", report.render());
            Ok(if report.blocked.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
