//! The log-mode syscall gadget: one `syscall` instruction whose address the `--seccomp log`
//! filters allow unconditionally, so the SIGSYS reporter can perform a trapped call itself
//! (the Chromium sandbox technique, `SandboxSyscall`).
//!
//! The kernel puts the address of the instruction *after* `syscall` into
//! `seccomp_data.instruction_pointer`; [`allowed_ip`] is that address.

use std::arch::global_asm;

// microvm_seccomp_syscall(nr, a0, a1, a2, a3, a4, a5) -> rax, System V calling convention:
// nr in rdi, a0..a4 in rsi, rdx, rcx, r8, r9, a5 on the stack; the kernel wants rax, rdi,
// rsi, rdx, r10, r8, r9. It touches no memory besides its own stack slot.
global_asm!(
    ".text",
    ".globl microvm_seccomp_syscall",
    ".type microvm_seccomp_syscall, @function",
    "microvm_seccomp_syscall:",
    "    mov rax, rdi",
    "    mov rdi, rsi",
    "    mov rsi, rdx",
    "    mov rdx, rcx",
    "    mov r10, r8",
    "    mov r8, r9",
    "    mov r9, [rsp + 8]",
    "    syscall",
    ".globl microvm_seccomp_syscall_ret",
    "microvm_seccomp_syscall_ret:",
    "    ret",
    ".size microvm_seccomp_syscall, . - microvm_seccomp_syscall",
);

extern "C" {
    fn microvm_seccomp_syscall(
        nr: i64,
        a0: u64,
        a1: u64,
        a2: u64,
        a3: u64,
        a4: u64,
        a5: u64,
    ) -> i64;
    fn microvm_seccomp_syscall_ret();
}

/// The instruction pointer the kernel reports for a call made through the gadget.
pub(crate) fn allowed_ip() -> u64 {
    microvm_seccomp_syscall_ret as *const () as u64
}

/// Performs system call `nr` with `args` through the gadget; returns the raw result
/// (`-errno` on failure).
///
/// # Safety
/// The call itself must be sound in the caller's context (pointers in `args` valid for what
/// `nr` does with them), exactly as for `libc::syscall`.
pub(crate) unsafe fn syscall(nr: i64, args: [u64; 6]) -> i64 {
    // SAFETY: the gadget follows the C ABI; the caller guarantees the call's own soundness.
    unsafe { microvm_seccomp_syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn gadget_performs_a_call() {
        // SAFETY: getpid has no arguments and no side effects.
        let pid = unsafe { super::syscall(libc::SYS_getpid, [0; 6]) };
        assert_eq!(pid, i64::from(std::process::id()));
        // SAFETY: close(-1) touches nothing and fails with EBADF.
        let rc = unsafe { super::syscall(libc::SYS_close, [u64::MAX, 0, 0, 0, 0, 0]) };
        assert_eq!(rc, -i64::from(libc::EBADF));
        assert_ne!(super::allowed_ip(), 0);
    }
}
