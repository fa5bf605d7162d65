//! Unit tests of the JSON filter reader (seccomp/src/json.rs).

use super::*;

#[test]
fn malformed_json_names_the_place() {
    let e = CustomFilters::parse("{\n  \"vmm\": [1,, 2]\n}").unwrap_err();
    assert!(e.starts_with("malformed JSON at line 2 column"), "{e}");
    let e = CustomFilters::parse(r#"{"nosuch": {}}"#).unwrap_err();
    assert!(e.contains("unknown thread kind \"nosuch\""), "{e}");
    assert!(e.starts_with("at line 1 column"), "{e}");
    let e = CustomFilters::parse(r#"{"vmm": {"filter": []}, "vmm": {"filter": []}}"#).unwrap_err();
    assert!(e.contains("thread kind \"vmm\" is defined twice"), "{e}");
    let e = CustomFilters::parse(r#"{"vmm": {"mismatch_action": "explode", "filter": []}}"#)
        .unwrap_err();
    assert!(e.contains("unknown variant `explode`"), "{e}");
    let e = CustomFilters::parse(
        r#"{"vcpu": {"mismatch_action": "trap", "match_action": "allow", "filter": [{"syscall": "nosuchcall"}]}}"#,
    )
    .unwrap_err();
    assert!(e.contains("unknown system call name \"nosuchcall\""), "{e}");
}

#[test]
fn errors_stay_on_one_line() {
    // Found by the seccomp_json fuzz target: a JSON-escaped newline in a key.
    let e = CustomFilters::parse(
        r#"{"vmm": {"filter": [{"syscall": "mmap", "\nargs": [{"index": 0}]}]}}"#,
    )
    .unwrap_err();
    assert!(!e.contains('\n'), "{e:?}");
    assert!(e.contains(r#"unknown field `\nargs`"#), "{e}");
    let e = CustomFilters::parse(r#"{"vm\tm": {}}"#).unwrap_err();
    assert!(e.contains(r#"unknown thread kind "vm\tm""#), "{e}");
}

#[test]
fn merges_like_seccompiler() {
    let f = CustomFilters::parse(
        r#"{"vcpu": {"mismatch_action": {"errno": 1}, "match_action": "allow", "filter": [
            {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 44672}]},
            {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": {"masked_eq": 255}, "val": 1}]},
            {"syscall": "read", "comment": "r\u00e9ason"}]}}"#,
    )
    .unwrap();
    let (kind, rules) = &f.kinds[0];
    assert_eq!(*kind, ThreadKind::Vcpu);
    assert_eq!(rules[0].name, "read");
    assert_eq!(rules[0].reason, "réason");
    assert!(matches!(&rules[1].args, ArgRule::Match(a) if a.len() == 2));
    assert_eq!(f.warnings.len(), 1);
}
