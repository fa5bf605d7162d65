//! Filters in seccompiler's JSON format: writing the built-in ones (`microvm seccomp print
//! --format json`) and reading custom ones (`--seccomp-filter FILE`).
//!
//! The format is seccompiler 0.5's (`compile_from_json`): a top-level object keyed by thread
//! kind, each `{"mismatch_action", "match_action", "filter": [{"syscall", "args"?, "comment"?}]}`
//! with args `{"index", "type", "op", "val", "comment"?}`. As in seccompiler, entries naming the
//! same syscall are merged (an OR of their argument lists) and an entry without `args` allows
//! the syscall unconditionally only if no entry for it has `args`. microvm's own conventions:
//! `match_action` must be `allow`; `mismatch_action` is replaced by the `--seccomp` mode;
//! `type` must be `dword` (every argument microvm checks is a 32-bit C int in the kernel); an
//! argument whose `comment` is `getpid()` is compared to microvm's own pid (tgkill's tgid);
//! an argument whose `comment` is `fd:ROLE` (e.g. `fd:disk`, `fd:stdout`, see `fds.rs`) is
//! compared to the fds the thread holds in that role, whatever `val` says. microvm writes
//! `val` as 0/1/2 for stdin/stdout/stderr and 4294967295 (no fd) for the other roles, so
//! seccompiler itself compiles the same file into a filter that refuses those fds rather
//! than one that allows a wrong one.
//!
//! Reading and writing go through serde: the file's shape is the structs below
//! (`deny_unknown_fields`, so a misspelt key is an error, not a silently ignored rule).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::SeccompCmpOp;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::rule::{ArgCond, ArgRule, SyscallRule};
use crate::{syscall_name, syscall_number, Error, ThreadKind};

/// Custom filters read from a file, per thread kind.
#[derive(Clone, Debug, Default)]
pub struct CustomFilters {
    /// The kinds the file defines, with their rules.
    pub kinds: Vec<(ThreadKind, Vec<SyscallRule>)>,
    /// Non-fatal remarks (e.g. a filter without what the SIGSYS reporter needs).
    pub warnings: Vec<String>,
}

static CUSTOM: OnceLock<CustomFilters> = OnceLock::new();

/// Makes [`crate::rules`] (and so [`crate::compile`]) use `filters` for the kinds they define,
/// for the rest of the process. Call before any filter is compiled; later calls are ignored.
pub fn use_custom_filters(filters: CustomFilters) {
    let _ = CUSTOM.set(filters);
}

/// The custom rules of `kind`, if a file defined them.
pub(crate) fn custom_rules(kind: ThreadKind) -> Option<Vec<SyscallRule>> {
    let custom = CUSTOM.get()?;
    custom
        .kinds
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, r)| r.clone())
}

impl CustomFilters {
    /// Reads and checks the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::FilterFile {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Self::parse(&text).map_err(|detail| Error::FilterFile {
            path: path.display().to_string(),
            detail,
        })
    }

    /// Parses seccompiler JSON text; the error is one line saying what and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        // Errors quote names from the file (keys, kinds, syscalls): escape their control
        // characters, so that e.g. a "\n" in a key cannot split the message.
        Self::parse_text(text).map_err(|e| {
            e.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
    }

    fn parse_text(text: &str) -> Result<Self, String> {
        let file: FileKinds = serde_json::from_str(text).map_err(|e| json_error(&e))?;
        let mut out = CustomFilters::default();
        for (kind, filter) in file.0 {
            let name = kind.name();
            let rules = filter_rules(filter).map_err(|e| format!("kind \"{name}\": {e}"))?;
            let missing: Vec<_> = ["write", "rt_sigreturn", "exit_group", "prctl"]
                .into_iter()
                .filter(|s| !rules.iter().any(|r| r.name == *s))
                .collect();
            if !missing.is_empty() {
                out.warnings.push(format!(
                    "kind \"{name}\" does not allow {}: the SIGSYS reporter of --seccomp true needs them to report a violation",
                    missing.join(", ")
                ));
            }
            out.kinds.push((kind, rules));
        }
        Ok(out)
    }
}

/// One line for a serde_json error: where, and what.
fn json_error(e: &serde_json::Error) -> String {
    let full = e.to_string();
    // serde_json appends " at line L column C"; say it first, once.
    let what = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(what, _)| what);
    let (line, col) = (e.line(), e.column());
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("malformed JSON at line {line} column {col}: {what}")
        }
        _ => format!("at line {line} column {col}: {what}"),
    }
}

/// The file's top level: filters keyed by thread kind, in file order. Kinds are checked
/// as they are read, so an unknown or repeated one is reported with its place (a map type
/// would silently keep the last of two).
struct FileKinds(Vec<(ThreadKind, FileFilter)>);

fn thread_kind(name: &str) -> Result<ThreadKind, String> {
    ThreadKind::all()
        .iter()
        .copied()
        .find(|k| k.name() == name)
        .ok_or_else(|| {
            let known: Vec<_> = ThreadKind::all().iter().map(|k| k.name()).collect();
            format!(
                "unknown thread kind \"{name}\" (known: {})",
                known.join(", ")
            )
        })
}

impl<'de> Deserialize<'de> for FileKinds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KindsVisitor;
        impl<'de> Visitor<'de> for KindsVisitor {
            type Value = FileKinds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object keyed by thread kind")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileKinds, A::Error> {
                use serde::de::Error as _;
                let mut out: Vec<(ThreadKind, FileFilter)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let kind = thread_kind(&name).map_err(A::Error::custom)?;
                    if out.iter().any(|(k, _)| *k == kind) {
                        return Err(A::Error::custom(format!(
                            "thread kind \"{name}\" is defined twice"
                        )));
                    }
                    out.push((kind, map.next_value()?));
                }
                Ok(FileKinds(out))
            }
        }
        d.deserialize_map(KindsVisitor)
    }
}

/// One thread kind's filter, as seccompiler 0.5 writes it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileFilter {
    /// Replaced by the `--seccomp` mode; checked to be a valid action.
    #[serde(alias = "default_action", default = "trap")]
    mismatch_action: Action,
    /// Must be `allow`.
    #[serde(alias = "filter_action", default = "allow")]
    match_action: Action,
    filter: Vec<FileEntry>,
}

fn trap() -> Action {
    Action::Trap
}

fn allow() -> Action {
    Action::Allow
}

/// A seccompiler action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Allow,
    Trap,
    KillThread,
    KillProcess,
    Log,
    Errno(u32),
    Trace(u32),
}

/// One allowed call, with optional argument conditions (all must hold).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    syscall: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Vec<FileCond>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

/// One argument condition.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileCond {
    index: u8,
    #[serde(rename = "type")]
    width: Width,
    op: FileOp,
    /// May be left out when `comment` is `getpid()`: microvm's pid is filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    val: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

/// Argument width; microvm compares the low 32 bits only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum Width {
    Dword,
    Qword,
}

/// seccompiler's comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum FileOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    MaskedEq(u64),
}

impl From<FileOp> for SeccompCmpOp {
    fn from(op: FileOp) -> Self {
        match op {
            FileOp::Eq => SeccompCmpOp::Eq,
            FileOp::Ne => SeccompCmpOp::Ne,
            FileOp::Lt => SeccompCmpOp::Lt,
            FileOp::Le => SeccompCmpOp::Le,
            FileOp::Gt => SeccompCmpOp::Gt,
            FileOp::Ge => SeccompCmpOp::Ge,
            FileOp::MaskedEq(m) => SeccompCmpOp::MaskedEq(m),
        }
    }
}

impl From<&SeccompCmpOp> for FileOp {
    fn from(op: &SeccompCmpOp) -> Self {
        match op {
            SeccompCmpOp::Eq => FileOp::Eq,
            SeccompCmpOp::Ne => FileOp::Ne,
            SeccompCmpOp::Lt => FileOp::Lt,
            SeccompCmpOp::Le => FileOp::Le,
            SeccompCmpOp::Gt => FileOp::Gt,
            SeccompCmpOp::Ge => FileOp::Ge,
            SeccompCmpOp::MaskedEq(m) => FileOp::MaskedEq(*m),
        }
    }
}

/// The rules of one kind's filter: entries naming the same call merged (an OR of their
/// argument lists), as seccompiler does.
fn filter_rules(filter: FileFilter) -> Result<Vec<SyscallRule>, String> {
    if filter.match_action != Action::Allow {
        return Err("match_action must be \"allow\"".into());
    }
    // nr -> (name, reason, alternatives)
    let mut merged: BTreeMap<i64, (&'static str, &'static str, Vec<Vec<ArgCond>>)> =
        BTreeMap::new();
    for (i, entry) in filter.filter.into_iter().enumerate() {
        let name = entry.syscall;
        let nr = syscall_number(&name)
            .ok_or_else(|| format!("filter[{i}]: unknown system call name \"{name}\" (x86_64)"))?;
        let conds = entry
            .args
            .map(|args| {
                args.into_iter()
                    .enumerate()
                    .map(|(j, c)| arg_cond(c).map_err(|e| format!("filter[{i}]: args[{j}]: {e}")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let comment = entry.comment;
        let slot = merged.entry(nr).or_insert_with(|| {
            let reason: &'static str = match comment {
                Some(c) => Box::leak(c.into_boxed_str()),
                None => "from --seccomp-filter",
            };
            (syscall_name(nr).unwrap_or("unknown"), reason, Vec::new())
        });
        if let Some(conds) = conds {
            slot.2.push(conds);
        }
    }
    Ok(merged
        .into_iter()
        .map(|(nr, (name, reason, alts))| {
            let args = if alts.is_empty() {
                ArgRule::Any
            } else {
                ArgRule::Match(alts)
            };
            SyscallRule::new(name, nr, reason, args)
        })
        .collect())
}

fn arg_cond(c: FileCond) -> Result<ArgCond, String> {
    if c.index > 5 {
        return Err("index must be 0..=5".into());
    }
    if c.width == Width::Qword {
        return Err(
            "type \"qword\" is not supported: microvm compares the low 32 bits (\"dword\")".into(),
        );
    }
    let op: SeccompCmpOp = c.op.into();
    if let Some(name) = c.comment.as_deref().and_then(|c| c.strip_prefix("fd:")) {
        let role = crate::fds::role(name).ok_or_else(|| {
            let known: Vec<&str> = crate::fds::ROLES.iter().map(|(r, _)| *r).collect();
            format!("unknown fd role \"{name}\" (known: {})", known.join(", "))
        })?;
        if op != SeccompCmpOp::Eq {
            return Err(format!("fd:{name} needs \"op\": \"eq\""));
        }
        return Ok(ArgCond::fd(c.index, role));
    }
    let value = if c.comment.as_deref() == Some("getpid()") {
        u64::from(std::process::id())
    } else {
        c.val.ok_or("missing \"val\"")?
    };
    Ok(ArgCond {
        index: c.index,
        op,
        value,
        fd: None,
    })
}

/// Writes `filters` as seccompiler JSON, reasons as `comment`s.
pub fn to_json(filters: &[(ThreadKind, Vec<SyscallRule>)]) -> String {
    let kinds: Vec<(&str, FileFilter)> = filters
        .iter()
        .map(|(kind, rules)| {
            let filter = FileFilter {
                mismatch_action: Action::Trap,
                match_action: Action::Allow,
                filter: rules.iter().flat_map(rule_entries).collect(),
            };
            (kind.name(), filter)
        })
        .collect();
    // Serialising plain data (string keys, no floats) cannot fail.
    let mut out = serde_json::to_string_pretty(&InOrder(&kinds)).unwrap_or_default();
    out.push('\n');
    out
}

/// Kinds as a JSON object, in the given order.
struct InOrder<'a>(&'a [(&'a str, FileFilter)]);

impl Serialize for InOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, filter) in self.0 {
            map.serialize_entry(name, filter)?;
        }
        map.end()
    }
}

/// The `val` written for an fd role: the number where it is fixed (0/1/2), else no fd at all
/// (seccompiler compiles that into "refused", never into "a wrong fd allowed").
pub(crate) fn placeholder_fd(role: &str) -> u64 {
    match role {
        "stdin" => 0,
        "stdout" => 1,
        "stderr" => 2,
        _ => u64::from(u32::MAX),
    }
}

fn file_cond(c: &ArgCond, comment: &str) -> FileCond {
    if let Some(role) = c.fd {
        return FileCond {
            index: c.index,
            width: Width::Dword,
            op: FileOp::Eq,
            val: Some(placeholder_fd(role)),
            comment: Some(format!("fd:{role}")),
        };
    }
    FileCond {
        index: c.index,
        width: Width::Dword,
        op: (&c.op).into(),
        val: Some(c.value),
        comment: (!comment.is_empty()).then(|| comment.to_string()),
    }
}

fn rule_entries(rule: &SyscallRule) -> Vec<FileEntry> {
    let entry = |args: Option<Vec<FileCond>>, comment: String| FileEntry {
        syscall: rule.name.to_string(),
        args,
        comment: Some(comment),
    };
    match &rule.args {
        ArgRule::Any => vec![entry(None, rule.reason.to_string())],
        ArgRule::Ioctls { fd, requests } => requests
            .iter()
            .map(|r| {
                let mut conds = Vec::new();
                if let Some(role) = fd {
                    conds.push(file_cond(&ArgCond::fd(0, role), ""));
                }
                conds.push(file_cond(&ArgCond::eq(1, r.request), r.name));
                entry(Some(conds), format!("{}: {}", r.name, r.reason))
            })
            .collect(),
        ArgRule::Match(alts) => alts
            .iter()
            .map(|conds| {
                let c = conds
                    .iter()
                    .map(|c| file_cond(c, crate::docs::cond_label(rule, c).unwrap_or("")))
                    .collect();
                entry(Some(c), rule.reason.to_string())
            })
            .collect(),
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
