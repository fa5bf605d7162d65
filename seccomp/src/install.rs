//! Installing a program on the calling thread.

use seccompiler::BpfProgram;

use crate::compile::BPF_MAX_INSNS;
use crate::report::thread_name;
use crate::Error;

/// Installs `prog` on the calling thread only (no TSYNC), after setting NO_NEW_PRIVS.
///
/// Filters cannot be removed and are inherited by threads spawned afterwards. An empty or
/// oversized program is an error, as is any prctl/seccomp failure; nothing panics.
pub fn install(prog: &BpfProgram) -> Result<(), Error> {
    let current = || {
        let mut buf = [0u8; 16];
        thread_name(&mut buf).to_string()
    };
    if prog.len() > BPF_MAX_INSNS {
        return Err(Error::InstallTooLarge {
            thread: current(),
            len: prog.len(),
        });
    }
    // seccompiler sets PR_SET_NO_NEW_PRIVS, then seccomp(SECCOMP_SET_MODE_FILTER, 0, prog);
    // it refuses an empty program.
    seccompiler::apply_filter(prog).map_err(|source| Error::Install {
        thread: current(),
        source,
    })
}
