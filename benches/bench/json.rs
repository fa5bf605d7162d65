//! Summary statistics, a minimal JSON writer and a minimal JSON checker (no serde in
//! this workspace).

/// Median, min, max and count of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Number of values.
    pub n: usize,
}

/// Stats of `v`; None when empty.
pub fn stats(v: &[f64]) -> Option<Stats> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Some(Stats {
        median,
        min: s[0],
        max: s[n - 1],
        n,
    })
}

/// A JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (finite; non-finite values become null).
pub fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.6}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        "null".into()
    }
}

/// A parsed JSON value (what the tests need to look at the bench's output).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// null
    Null,
    /// true / false
    Bool(bool),
    /// a number
    Num(f64),
    /// a string
    Str(String),
    /// an array
    Arr(Vec<Value>),
    /// an object, in order
    Obj(Vec<(String, Value)>),
}

// The accessors are for tests/bench.rs, which includes this file.
#[allow(dead_code)]
impl Value {
    /// Member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Arr(a) => Some(a),
            _ => None,
        }
    }
}

/// Parses a complete JSON document.
pub fn parse(s: &str) -> Result<Value, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let v = value(b, &mut i)?;
    ws(b, &mut i);
    if i != b.len() {
        return Err(format!("trailing data at byte {i}"));
    }
    Ok(v)
}

fn ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i].is_ascii_whitespace() {
        *i += 1;
    }
}

fn value(b: &[u8], i: &mut usize) -> Result<Value, String> {
    ws(b, i);
    let err = |i: usize, what: &str| Err(format!("{what} at byte {i}"));
    match b.get(*i) {
        Some(b'{') => {
            *i += 1;
            let mut m = Vec::new();
            ws(b, i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return Ok(Value::Obj(m));
            }
            loop {
                ws(b, i);
                let Value::Str(k) = value(b, i)? else {
                    return err(*i, "object key is not a string");
                };
                ws(b, i);
                if b.get(*i) != Some(&b':') {
                    return err(*i, "expected ':'");
                }
                *i += 1;
                m.push((k, value(b, i)?));
                ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return Ok(Value::Obj(m));
                    }
                    _ => return err(*i, "expected ',' or '}'"),
                }
            }
        }
        Some(b'[') => {
            *i += 1;
            let mut a = Vec::new();
            ws(b, i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Ok(Value::Arr(a));
            }
            loop {
                a.push(value(b, i)?);
                ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return Ok(Value::Arr(a));
                    }
                    _ => return err(*i, "expected ',' or ']'"),
                }
            }
        }
        Some(b'"') => {
            *i += 1;
            let mut s = String::new();
            loop {
                match b.get(*i) {
                    None => return err(*i, "unterminated string"),
                    Some(b'"') => {
                        *i += 1;
                        return Ok(Value::Str(s));
                    }
                    Some(b'\\') => {
                        let c = match b.get(*i + 1) {
                            Some(b'n') => '\n',
                            Some(b't') => '\t',
                            Some(b'u') => {
                                let hex = std::str::from_utf8(b.get(*i + 2..*i + 6).unwrap_or(b""))
                                    .unwrap_or("");
                                let code = u32::from_str_radix(hex, 16)
                                    .map_err(|_| format!("bad \\u escape at byte {i}"))?;
                                *i += 4;
                                char::from_u32(code).unwrap_or('?')
                            }
                            Some(&c) => c as char,
                            None => return err(*i, "unterminated escape"),
                        };
                        s.push(c);
                        *i += 2;
                    }
                    Some(_) => {
                        let start = *i;
                        while *i < b.len() && b[*i] != b'"' && b[*i] != b'\\' {
                            *i += 1;
                        }
                        s.push_str(std::str::from_utf8(&b[start..*i]).map_err(|e| e.to_string())?);
                    }
                }
            }
        }
        Some(b't') if b[*i..].starts_with(b"true") => {
            *i += 4;
            Ok(Value::Bool(true))
        }
        Some(b'f') if b[*i..].starts_with(b"false") => {
            *i += 5;
            Ok(Value::Bool(false))
        }
        Some(b'n') if b[*i..].starts_with(b"null") => {
            *i += 4;
            Ok(Value::Null)
        }
        Some(c) if *c == b'-' || c.is_ascii_digit() => {
            let start = *i;
            while *i < b.len() && matches!(b[*i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                *i += 1;
            }
            let text = std::str::from_utf8(&b[start..*i]).map_err(|e| e.to_string())?;
            text.parse()
                .map(Value::Num)
                .map_err(|_| format!("bad number {text:?} at byte {start}"))
        }
        _ => err(*i, "unexpected character"),
    }
}
