//! Summary statistics and the JSON helpers of the bench: string and number literals for
//! the hand-laid-out report, and serde_json to check it and to read it back in tests.

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
    serde_json::Value::from(s).to_string()
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
pub type Value = serde_json::Value;

/// Parses a complete JSON document.
pub fn parse(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| e.to_string())
}
