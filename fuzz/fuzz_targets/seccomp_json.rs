//! The `--seccomp-filter` JSON reader (`CustomFilters::parse`): any text must give Ok or a
//! one-line error, never a panic. Accepted filters are compiled (as microvm does before
//! installing them) and printed back with `to_json`, which must parse to the same rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seccomp::json::{to_json, CustomFilters};
use seccomp::{compile_rules, Mode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let filters = match CustomFilters::parse(text) {
        Ok(f) => f,
        Err(e) => {
            assert!(!e.contains('\n'), "multi-line error: {e:?}");
            return;
        }
    };
    for (kind, rules) in &filters.kinds {
        let _ = compile_rules(*kind, Mode::Kill, rules);
    }
    let printed = to_json(&filters.kinds);
    let again = CustomFilters::parse(&printed)
        .unwrap_or_else(|e| panic!("to_json output does not parse: {e}\n{printed}"));
    assert_eq!(
        again.kinds, filters.kinds,
        "to_json round trip changed the rules"
    );
});
