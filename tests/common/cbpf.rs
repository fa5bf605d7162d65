//! A thread's real seccomp filters, read back from outside with ptrace
//! (`PTRACE_SECCOMP_GET_FILTER`), and a classic-BPF interpreter of the tests' own that runs
//! them: not microvm's (seccomp/src/bpf.rs), so a bug there cannot hide a hole here.

use std::io;

/// One classic-BPF instruction, as the kernel hands it back (`struct sock_filter`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// `AUDIT_ARCH_X86_64`.
pub const ARCH_X86_64: u32 = 0xc000_003e;
/// The action bits of a seccomp return value.
const ACTION_MASK: u32 = 0xffff_0000;

/// What a filter decided for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// KILL_PROCESS, KILL_THREAD, TRAP or ERRNO: the call does not happen.
    Refused,
    /// ALLOW, LOG, TRACE or USER_NOTIF: the call can happen.
    Passes(u32),
}

/// Runs `prog` for system call `nr` with `args`, as the kernel would on x86_64.
pub fn decide(prog: &[Insn], nr: i64, args: [u64; 6]) -> Verdict {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&(nr as u32).to_le_bytes());
    data[4..8].copy_from_slice(&ARCH_X86_64.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let ret = run(prog, &data);
    match ret & ACTION_MASK {
        0x8000_0000 | 0x0000_0000 | 0x0003_0000 | 0x0005_0000 => Verdict::Refused,
        _ => Verdict::Passes(ret),
    }
}

/// Classic BPF as seccomp accepts it (loads of 32-bit words from `seccomp_data`, the
/// scratch memory, ALU, jumps, returns). Panics on anything else: a test must not guess.
fn run(prog: &[Insn], data: &[u8; 64]) -> u32 {
    let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
    let mut pc = 0usize;
    loop {
        let i = *prog.get(pc).expect("the program ran off its end");
        pc += 1;
        let src = if i.code & 0x08 != 0 { x } else { i.k };
        match i.code & 0x07 {
            0x00 => match i.code & 0xe0 {
                0x00 => a = i.k,
                0x20 => {
                    let o = i.k as usize;
                    a = u32::from_le_bytes(data[o..o + 4].try_into().expect("4 bytes"));
                }
                0x60 => a = mem[i.k as usize],
                0x80 => a = 64,
                m => panic!("unsupported load mode {m:#x}"),
            },
            0x01 => match i.code & 0xe0 {
                0x00 => x = i.k,
                0x60 => x = mem[i.k as usize],
                0x80 => x = 64,
                m => panic!("unsupported ldx mode {m:#x}"),
            },
            0x02 => mem[i.k as usize] = a,
            0x03 => mem[i.k as usize] = x,
            0x04 => {
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x30 => a.checked_div(src).unwrap_or(0),
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src).unwrap_or(0),
                    0x70 => a.checked_shr(src).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(src).unwrap_or(0),
                    0xa0 => a ^ src,
                    op => panic!("unsupported ALU op {op:#x}"),
                }
            }
            0x05 => {
                let taken = match i.code & 0xf0 {
                    0x00 => {
                        pc += i.k as usize;
                        continue;
                    }
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    op => panic!("unsupported jump {op:#x}"),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            0x06 => {
                return match i.code & 0x18 {
                    0x00 => i.k,
                    0x10 => a,
                    r => panic!("unsupported return source {r:#x}"),
                }
            }
            _ => {
                if i.code & 0xf8 == 0x80 {
                    a = x;
                } else {
                    x = a;
                }
            }
        }
    }
}

/// `PTRACE_SECCOMP_GET_FILTER` (not in the libc crate).
const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

/// Every seccomp filter thread `tid` carries, newest first: the thread is seized,
/// interrupted for the reads and let go again.
pub fn filters_of(tid: i32) -> io::Result<Vec<Vec<Insn>>> {
    // SAFETY: plain ptrace requests on a thread id; no memory is passed.
    if unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let read = read_filters(tid);
    // SAFETY: as above; the thread is ours to let go.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0, 0) };
    read
}

fn read_filters(tid: i32) -> io::Result<Vec<Vec<Insn>>> {
    // SAFETY: a seized thread; no memory is passed.
    if unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: waits for the tracee's stop; `status` is a valid out pointer.
    if unsafe { libc::waitpid(tid, &mut status, libc::__WALL) } != tid {
        return Err(io::Error::last_os_error());
    }
    let mut all = Vec::new();
    for index in 0usize.. {
        // SAFETY: a null buffer asks for the filter's length only.
        let n = unsafe {
            libc::ptrace(
                PTRACE_SECCOMP_GET_FILTER,
                tid,
                index,
                std::ptr::null_mut::<Insn>(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) {
                break;
            }
            return Err(e);
        }
        let mut prog = vec![Insn::default(); n as usize];
        // SAFETY: `prog` holds exactly the `n` instructions the kernel said it would write.
        let got = unsafe { libc::ptrace(PTRACE_SECCOMP_GET_FILTER, tid, index, prog.as_mut_ptr()) };
        if got != n {
            return Err(io::Error::last_os_error());
        }
        all.push(prog);
    }
    Ok(all)
}
