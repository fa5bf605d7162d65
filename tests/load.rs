//! Load and leaks (docs/robustness.md): 32 vCPUs exiting as fast as they can, 200 VMs one
//! after another with steady fds and RSS, 8 VMs at once. Figures are printed (see them
//! with `--nocapture`).
//!
//! `MICROVM_SOAK=<n>` multiplies the counts (exits per vCPU, sequential VMs, rounds of 8
//! concurrent VMs) by n.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn thirty_two_vcpus_exit_as_fast_as_they_can() {
    let per_cpu = 2000 * u64::from(soak());
    let cmdline =
        format!("console=ttyS0 reboot=k tiny.test=storm tiny.cpus=32 tiny.storm.exits={per_cpu}");
    let start = Instant::now();
    let r = run(&[
        "--kernel",
        TINY_BZIMAGE,
        "--cpus",
        "32",
        "--rng",
        "off",
        "--cmdline",
        &cmdline,
    ]);
    let took = start.elapsed();
    r.assert_pass();
    let mut seen = [false; 32];
    for l in r.stdout.lines() {
        let Some(rest) = l.strip_prefix("tiny: storm: cpu ") else {
            continue;
        };
        let (cpu, rest) = rest.split_once(": ").expect("storm line");
        let cpu: usize = cpu.parse().expect("cpu index");
        assert_eq!(rest, format!("{per_cpu} port-I/O exits"), "{l}");
        assert!(!seen[cpu], "cpu {cpu} reported twice:\n{}", r.stdout);
        seen[cpu] = true;
    }
    assert!(
        seen.iter().all(|&s| s),
        "every cpu reports: {seen:?}\n{}",
        r.describe()
    );
    let total = per_cpu * 32;
    assert!(
        r.stdout
            .contains(&format!("tiny: storm: 32 cpus, {total} port-I/O exits")),
        "{}",
        r.describe()
    );
    eprintln!(
        "storm: 32 vCPUs x {per_cpu} port-I/O exits = {total} in {took:.2?} (whole run, boot \
         included): {:.0} exits/s",
        total as f64 / took.as_secs_f64()
    );
}

/// What one run of a VM looked like from outside, at the same point of every run.
struct Sample {
    fds: usize,
    hwm_kib: u64,
    maxrss_kib: i64,
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Boots the wait-input scenario with a disk and rng, samples /proc/<pid> while the guest
/// waits, releases it and reaps it with wait4 (peak RSS from its rusage).
fn sampled_run(disk: &str) -> Sample {
    let mut child = microvm()
        .args(["--kernel", TINY_BZIMAGE, "--rng", "on"])
        .args(["--disk", &format!("path={disk}")])
        .args(["--cmdline", "console=ttyS0 reboot=k tiny.test=wait-input"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn microvm");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("tiny: waiting for input") {
                let _ = tx.send(None);
            }
            all.push_str(&line);
            all.push('\n');
        }
        let _ = tx.send(Some(all));
    });
    if !matches!(rx.recv_timeout(BOOT_TIMEOUT), Ok(None)) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("run never reached wait-input");
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/pid/fd")
        .count();
    let hwm_kib = status_kib(pid, "VmHWM:");
    child.stdin.as_mut().unwrap().write_all(b"x").unwrap();
    let out = rx
        .recv_timeout(BOOT_TIMEOUT)
        .ok()
        .flatten()
        .unwrap_or_default();
    // Reap with wait4 for the child's own peak RSS (Child is then dropped unreaped-free).
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let mut status = 0;
    // SAFETY: rusage is plain data.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting for our own child, writing into locals.
        let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, libc::WNOHANG, &mut ru) };
        if rc == pid as libc::pid_t {
            break;
        }
        assert!(rc == 0, "wait4: {}", std::io::Error::last_os_error());
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("microvm did not exit after input:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status:#x}:\n{out}"
    );
    assert!(out.contains("tiny: PASS"), "{out}");
    std::mem::forget(child); // already reaped
    Sample {
        fds,
        hwm_kib,
        maxrss_kib: ru.ru_maxrss,
    }
}

#[test]
fn two_hundred_vms_in_a_row_keep_fds_and_rss_steady() {
    let runs = 200 * soak() as usize;
    const WINDOW: usize = 20;
    let dir = scratch("load-seq");
    let _guard = DirGuard(dir.clone());
    let disk = write_file(&dir, "seq.img", &vec![0u8; 64 * 1024]);
    let start = Instant::now();
    let samples: Vec<Sample> = (0..runs).map(|_| sampled_run(&disk)).collect();
    let took = start.elapsed();
    let stats = |s: &[Sample]| {
        (
            s.iter().map(|x| x.fds).max().unwrap(),
            s.iter().map(|x| x.hwm_kib).max().unwrap(),
            s.iter().map(|x| x.maxrss_kib).max().unwrap(),
        )
    };
    let (fds0, hwm0, rss0) = stats(&samples[..WINDOW]);
    let (fds1, hwm1, rss1) = stats(&samples[runs - WINDOW..]);
    eprintln!(
        "sequential: {runs} VMs in {took:.2?} = {:.1} VMs/s; first {WINDOW}: fds {fds0}, VmHWM \
         {hwm0} KiB, peak RSS {rss0} KiB; last {WINDOW}: fds {fds1}, VmHWM {hwm1} KiB, peak RSS \
         {rss1} KiB",
        runs as f64 / took.as_secs_f64()
    );
    assert!(fds1 <= fds0, "open fds grew: {fds0} -> {fds1}");
    // A small margin: 1 MiB or 10 %, whichever is larger.
    let margin = |base: u64| (base / 10).max(1024);
    assert!(
        hwm1 <= hwm0 + margin(hwm0),
        "VmHWM grew: {hwm0} -> {hwm1} KiB"
    );
    assert!(
        rss1 as u64 <= rss0 as u64 + margin(rss0 as u64),
        "peak RSS grew: {rss0} -> {rss1} KiB"
    );
}

#[test]
fn eight_vms_at_once_all_pass() {
    let dir = scratch("load-parallel");
    let _guard = DirGuard(dir.clone());
    for round in 0..soak() {
        let start = Instant::now();
        let children: Vec<_> = (0..8)
            .map(|i| {
                let img = write_file(&dir, &format!("p{i}.img"), &vec![0u8; 64 * 1024]);
                let d = format!("path={img}");
                let cmdline = "console=ttyS0 reboot=k tiny.test=virtio tiny.cpus=2";
                microvm()
                    .args(["--kernel", TINY_BZIMAGE, "--cpus", "2", "--rng", "on"])
                    .args(["--disk", &d, "--cmdline", cmdline])
                    .spawn()
                    .expect("spawn microvm")
            })
            .collect();
        let handles: Vec<_> = children
            .into_iter()
            .map(|c| std::thread::spawn(move || wait_with_timeout(c, BOOT_TIMEOUT * 2)))
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let r = h.join().expect("VM thread");
            r.assert_pass();
            assert!(
                r.stdout.contains("tiny: blk0: write+flush+read-back ok"),
                "VM {i}:\n{}",
                r.describe()
            );
            assert!(r.stdout.contains("tiny: rng0: 32 bytes: "), "VM {i}");
            let disk = std::fs::read(dir.join(format!("p{i}.img"))).unwrap();
            assert_eq!(
                &disk[512..528],
                b"TINY-WROTE-BLK0-",
                "VM {i} wrote its own disk"
            );
        }
        eprintln!(
            "parallel: round {round}: 8 VMs (2 vCPUs, disk, rng) all PASS in {:.2?}",
            start.elapsed()
        );
    }
}
