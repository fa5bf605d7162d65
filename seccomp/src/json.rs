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
//! argument whose `comment` is `getpid()` is compared to microvm's own pid (tgkill's tgid).
//!
//! A tiny JSON reader lives here instead of serde: the grammar needed is small and this keeps
//! the crate's dependencies to what the filters themselves need.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use seccompiler::SeccompCmpOp;

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
        let value = Parser::new(text).document()?;
        let Value::Obj(kinds) = value else {
            return Err("the top level must be an object keyed by thread kind".into());
        };
        let mut out = CustomFilters::default();
        for (name, filter) in kinds {
            let kind = ThreadKind::all()
                .iter()
                .copied()
                .find(|k| k.name() == name)
                .ok_or_else(|| {
                    let known: Vec<_> = ThreadKind::all().iter().map(|k| k.name()).collect();
                    format!(
                        "unknown thread kind \"{name}\" (known: {})",
                        known.join(", ")
                    )
                })?;
            if out.kinds.iter().any(|(k, _)| *k == kind) {
                return Err(format!("thread kind \"{name}\" is defined twice"));
            }
            let rules = parse_filter(&filter).map_err(|e| format!("kind \"{name}\": {e}"))?;
            let missing: Vec<_> = ["write", "rt_sigreturn", "exit_group", "prctl"]
                .into_iter()
                .filter(|s| !rules.iter().any(|r| r.name == *s))
                .collect();
            if !missing.is_empty() {
                out.warnings.push(format!(
                    "kind \"{name}\" does not allow {}: the SIGSYS reporter needs them to report a violation",
                    missing.join(", ")
                ));
            }
            out.kinds.push((kind, rules));
        }
        Ok(out)
    }
}

fn parse_filter(v: &Value) -> Result<Vec<SyscallRule>, String> {
    let fields = v.as_obj("a filter")?;
    let mut entries = None;
    for (key, val) in fields {
        match key.as_str() {
            "mismatch_action" | "default_action" => check_action(val)?,
            "match_action" | "filter_action" => {
                if val.as_str() != Some("allow") {
                    return Err(format!("{key} must be \"allow\""));
                }
            }
            "filter" => entries = Some(val.as_arr("\"filter\"")?),
            other => return Err(format!("unknown field \"{other}\"")),
        }
    }
    let entries = entries.ok_or("missing \"filter\"")?;
    // nr -> (name, reason, alternatives)
    let mut merged: BTreeMap<i64, (&'static str, &'static str, Vec<Vec<ArgCond>>)> =
        BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let (name, conds, comment) = parse_entry(entry).map_err(|e| format!("filter[{i}]: {e}"))?;
        let nr = syscall_number(&name)
            .ok_or_else(|| format!("filter[{i}]: unknown system call name \"{name}\" (x86_64)"))?;
        let static_name = syscall_name(nr).unwrap_or("unknown");
        let slot = merged.entry(nr).or_insert_with(|| {
            let reason: &'static str = match comment {
                Some(c) => Box::leak(c.into_boxed_str()),
                None => "from --seccomp-filter",
            };
            (static_name, reason, Vec::new())
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

type Entry = (String, Option<Vec<ArgCond>>, Option<String>);

fn parse_entry(v: &Value) -> Result<Entry, String> {
    let (mut name, mut conds, mut comment) = (None, None, None);
    for (key, val) in v.as_obj("a filter entry")? {
        match key.as_str() {
            "syscall" => name = Some(val.as_str().ok_or("\"syscall\" must be a string")?),
            "comment" => comment = Some(val.as_str().ok_or("\"comment\" must be a string")?),
            "args" => {
                let list = val.as_arr("\"args\"")?;
                let parsed: Result<Vec<_>, String> = list
                    .iter()
                    .enumerate()
                    .map(|(j, a)| parse_cond(a).map_err(|e| format!("args[{j}]: {e}")))
                    .collect();
                conds = Some(parsed?);
            }
            other => return Err(format!("unknown field \"{other}\"")),
        }
    }
    let name = name.ok_or("missing \"syscall\"")?.to_string();
    Ok((name, conds, comment.map(str::to_string)))
}

fn parse_cond(v: &Value) -> Result<ArgCond, String> {
    let (mut index, mut op, mut val, mut own_pid) = (None, None, None, false);
    let mut dword = false;
    for (key, field) in v.as_obj("an argument condition")? {
        match key.as_str() {
            "index" => {
                let i = field
                    .as_u64()
                    .filter(|i| *i <= 5)
                    .ok_or("index must be 0..=5")?;
                index = Some(i as u8);
            }
            "type" => match field.as_str() {
                Some("dword") => dword = true,
                Some("qword") => return Err(
                    "type \"qword\" is not supported: microvm compares the low 32 bits (\"dword\")"
                        .into(),
                ),
                _ => return Err("type must be \"dword\"".into()),
            },
            "op" => op = Some(parse_op(field)?),
            "val" => val = Some(field.as_u64().ok_or("val must be an unsigned integer")?),
            "comment" => own_pid = field.as_str() == Some("getpid()"),
            other => return Err(format!("unknown field \"{other}\"")),
        }
    }
    if !dword {
        return Err("missing \"type\"".into());
    }
    let value = if own_pid {
        u64::from(std::process::id())
    } else {
        val.ok_or("missing \"val\"")?
    };
    Ok(ArgCond {
        index: index.ok_or("missing \"index\"")?,
        op: op.ok_or("missing \"op\"")?,
        value,
    })
}

fn parse_op(v: &Value) -> Result<SeccompCmpOp, String> {
    if let Value::Obj(fields) = v {
        if let [(k, m)] = fields.as_slice() {
            if k == "masked_eq" {
                return Ok(SeccompCmpOp::MaskedEq(m.as_u64().ok_or("bad mask")?));
            }
        }
    }
    Ok(match v.as_str() {
        Some("eq") => SeccompCmpOp::Eq,
        Some("ne") => SeccompCmpOp::Ne,
        Some("lt") => SeccompCmpOp::Lt,
        Some("le") => SeccompCmpOp::Le,
        Some("gt") => SeccompCmpOp::Gt,
        Some("ge") => SeccompCmpOp::Ge,
        _ => return Err("op must be eq, ne, lt, le, gt, ge or {\"masked_eq\": MASK}".into()),
    })
}

fn check_action(v: &Value) -> Result<(), String> {
    const NAMES: [&str; 5] = ["allow", "trap", "kill_thread", "kill_process", "log"];
    let ok = match v {
        Value::Str(s) => NAMES.contains(&s.as_str()),
        Value::Obj(f) => {
            matches!(f.as_slice(), [(k, n)] if (k == "errno" || k == "trace") && n.as_u64().is_some())
        }
        _ => false,
    };
    ok.then_some(()).ok_or_else(|| "invalid action".to_string())
}

/// Writes `filters` as seccompiler JSON, reasons as `comment`s.
pub fn to_json(filters: &[(ThreadKind, Vec<SyscallRule>)]) -> String {
    let mut out = String::from("{\n");
    for (i, (kind, rules)) in filters.iter().enumerate() {
        let _ = write!(
            out,
            "  \"{kind}\": {{\n    \"mismatch_action\": \"trap\",\n    \"match_action\": \"allow\",\n    \"filter\": [\n"
        );
        let entries: Vec<String> = rules.iter().flat_map(rule_entries).collect();
        out.push_str(&entries.join(",\n"));
        let comma = if i + 1 < filters.len() { "," } else { "" };
        let _ = write!(out, "\n    ]\n  }}{comma}\n");
    }
    out.push_str("}\n");
    out
}

fn rule_entries(rule: &SyscallRule) -> Vec<String> {
    let entry = |args: Option<String>, comment: &str| {
        let args = args.map_or(String::new(), |a| format!(", \"args\": [{a}]"));
        format!(
            "      {{\"syscall\": \"{}\"{args}, \"comment\": {}}}",
            rule.name,
            quote(comment)
        )
    };
    match &rule.args {
        ArgRule::Any => vec![entry(None, rule.reason)],
        ArgRule::Ioctls { fd, requests } => requests
            .iter()
            .map(|r| {
                let mut conds = Vec::new();
                if let Some(fd) = fd {
                    conds.push(cond_json(&ArgCond::eq(0, u64::from(*fd as u32)), "fd"));
                }
                conds.push(cond_json(&ArgCond::eq(1, r.request), r.name));
                entry(Some(conds.join(", ")), &format!("{}: {}", r.name, r.reason))
            })
            .collect(),
        ArgRule::Match(alts) => alts
            .iter()
            .map(|conds| {
                let c: Vec<String> = conds
                    .iter()
                    .map(|c| cond_json(c, crate::docs::cond_label(rule, c).unwrap_or("")))
                    .collect();
                entry(Some(c.join(", ")), rule.reason)
            })
            .collect(),
    }
}

fn cond_json(c: &ArgCond, comment: &str) -> String {
    let op = match &c.op {
        SeccompCmpOp::Eq => "\"eq\"".to_string(),
        SeccompCmpOp::Ne => "\"ne\"".to_string(),
        SeccompCmpOp::Lt => "\"lt\"".to_string(),
        SeccompCmpOp::Le => "\"le\"".to_string(),
        SeccompCmpOp::Gt => "\"gt\"".to_string(),
        SeccompCmpOp::Ge => "\"ge\"".to_string(),
        SeccompCmpOp::MaskedEq(m) => format!("{{\"masked_eq\": {m}}}"),
    };
    let comment = if comment.is_empty() {
        String::new()
    } else {
        format!(", \"comment\": {}", quote(comment))
    };
    format!(
        "{{\"index\": {}, \"type\": \"dword\", \"op\": {op}, \"val\": {}{comment}}}",
        c.index, c.value
    )
}

/// A JSON string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A parsed JSON value (objects keep their order).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    Num(i128),
    Str(String),
    Arr(Vec<Value>),
    Obj(Vec<(String, Value)>),
}

impl Value {
    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Num(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }
    fn as_obj(&self, what: &str) -> Result<&[(String, Value)], String> {
        match self {
            Value::Obj(f) => Ok(f),
            _ => Err(format!("{what} must be an object")),
        }
    }
    fn as_arr(&self, what: &str) -> Result<&[Value], String> {
        match self {
            Value::Arr(a) => Ok(a),
            _ => Err(format!("{what} must be an array")),
        }
    }
}

/// A strict JSON reader for the subset above (no fractions or exponents).
struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            s: text.as_bytes(),
            pos: 0,
        }
    }

    fn err(&self, what: &str) -> String {
        let before = &self.s[..self.pos.min(self.s.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        format!("malformed JSON at line {line} column {col}: {what}")
    }

    fn ws(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn document(mut self) -> Result<Value, String> {
        let v = self.value(0)?;
        self.ws();
        if self.pos != self.s.len() {
            return Err(self.err("trailing characters"));
        }
        Ok(v)
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.pos) == Some(&b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", b as char)))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > 32 {
            return Err(self.err("nested too deeply"));
        }
        self.ws();
        match self.s.get(self.pos) {
            Some(b'{') => {
                self.pos += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    return Ok(Value::Obj(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.expect(b':')?;
                    fields.push((key, self.value(depth + 1)?));
                    self.ws();
                    match self.s.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Value::Obj(fields));
                        }
                        _ => return Err(self.err("expected ',' or '}'")),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    return Ok(Value::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::Arr(items));
                        }
                        _ => return Err(self.err("expected ',' or ']'")),
                    }
                }
            }
            Some(b'"') => self.string().map(Value::Str),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                self.pos += 1;
                while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                text.parse::<i128>()
                    .map(Value::Num)
                    .map_err(|_| self.err("bad number (integers only)"))
            }
            _ => {
                for (word, v) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.s[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(v);
                    }
                }
                Err(self.err("expected a value"))
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.pos) != Some(&b'"') {
            return Err(self.err("expected a string"));
        }
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.pos) else {
                return Err(self.err("unterminated string"));
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err(self.err("unterminated string"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self.s.get(self.pos..self.pos + 4).unwrap_or_default();
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.err("bad \\u escape"))?;
                            self.pos += 4;
                            out.extend_from_slice(code.to_string().as_bytes());
                        }
                        _ => return Err(self.err("bad escape")),
                    }
                }
                b if b < 0x20 => return Err(self.err("control character in string")),
                b => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("invalid UTF-8"))
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
