//! The `microvm seccomp from-strace` parser (`seccomp::strace::analyze`) on any text, and
//! the report's two renderings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let report = seccomp::strace::analyze(&text);
    let _ = report.render();
    let _ = report.filter_file();
});
