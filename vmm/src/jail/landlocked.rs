//! `--jail` where an unprivileged caller may not create a user namespace (so no other
//! namespace either): the VMM confines itself with Landlock instead (docs/security.md,
//! "The jail"). Entered by the main thread while it is the only thread, so every thread
//! spawned later inherits the domain; there is no fork and no waiter.
//!
//! The domain handles every access right the kernel knows, of these kinds:
//! - file system: nothing but reading `/proc/self` (the sandbox self-checks and the
//!   filters' fd checks read it); every other path is refused with EACCES, fds already
//!   open keep working;
//! - network (ABI 4): no TCP bind or connect;
//! - scopes (ABI 6): no signal to, and no abstract UNIX socket of, a process outside it.

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use super::{JailError, Result};

/// The newest Landlock ABI whose rights this jail asks for; an older kernel enforces the
/// part it knows (best effort), and says so in the log line.
const ABI_ASKED: ABI = ABI::V6;

/// The only hierarchy the domain lets the VMM open by path, read-only.
const READABLE: &str = "/proc/self";

/// What the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enforced {
    /// Every right asked for.
    Fully,
    /// The rights of an older Landlock ABI only.
    Partly,
}

/// Restricts this thread (and every thread and process it makes later) to the domain
/// above. `userns` is why no user namespace could be made, for the error when Landlock
/// is not available either.
pub(crate) fn restrict(userns: JailError) -> Result<Enforced> {
    let landlock = |source| JailError::Landlock { source };
    let proc_self = PathFd::new(READABLE).map_err(|source| JailError::LandlockPath {
        path: READABLE,
        source,
    })?;
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_ASKED))
        .map_err(landlock)?
        .handle_access(AccessNet::from_all(ABI_ASKED))
        .map_err(landlock)?
        .scope(Scope::from_all(ABI_ASKED))
        .map_err(landlock)?
        .create()
        .map_err(landlock)?
        .add_rule(PathBeneath::new(proc_self, AccessFs::from_read(ABI_ASKED)))
        .map_err(landlock)?
        .restrict_self()
        .map_err(landlock)?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(Enforced::Fully),
        RulesetStatus::PartiallyEnforced => Ok(Enforced::Partly),
        RulesetStatus::NotEnforced => Err(JailError::NoConfinement {
            userns: Box::new(userns),
        }),
    }
}
