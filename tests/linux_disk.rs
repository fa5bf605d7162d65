//! Debian's stock cloud kernel on microvm's virtio-blk: an ext4 filesystem made here with
//! `mke2fs -d` (no root needed) is mounted, written and synced in one boot, read back
//! identical in the next, and the same bytes are read here with `debugfs`; a
//! `readonly=on` disk cannot be written; parallel O_DIRECT readers and writers (busybox dd,
//! 4 KiB blocks) get and leave the right data, boot after boot.
//!
//! Sessions run natively with VT-x/AMD-V, in the nested host otherwise (common/linux.rs).

mod common;

use std::time::Duration;

use common::linux::{e2fs_tool, pseudo_random, sha256_file, Session};
use common::soak;

#[test]
#[ignore = "boots Debian's cloud kernel 3 times (in the nested host without VT-x, ~1.5 min); run by .ci/run via --include-ignored"]
fn ext4_written_in_one_boot_is_read_back_in_the_next_and_here() {
    let mut s = Session::new("ext4");
    let files = s.work().join("files");
    std::fs::create_dir_all(&files).expect("mkdir files");
    std::fs::write(files.join("host.bin"), pseudo_random(256 << 10, 7)).expect("write host.bin");
    let host_sha = sha256_file(&files.join("host.bin"));
    let img = s.work().join("fs.img");
    let st = e2fs_tool("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-d"])
        .arg(&files)
        .arg(&img)
        .arg("32M")
        .status()
        .expect("mke2fs");
    assert!(st.success(), "mke2fs -d failed");

    s.sh("stage fs.img");
    s.boot(
        "write",
        "bzImage-cloud",
        "ext4-write",
        "mvarg=1024",
        "--cpus 2 --disk path=\"$RUN/fs.img\"",
    );
    s.boot(
        "read",
        "vmlinux-cloud",
        "ext4-read",
        "",
        "--cpus 2 --disk path=\"$RUN/fs.img\"",
    );
    s.boot(
        "ro",
        "bzImage-cloud",
        "readonly",
        "",
        "--cpus 2 --disk path=\"$RUN/fs.img\",readonly=on",
    );
    s.sh("unstage fs.img");
    let o = s.run(Duration::from_secs(400));

    let w = o.boot("write");
    assert_eq!(
        w.mv("host.bin"),
        Some(host_sha.as_str()),
        "host.bin as made by mke2fs -d:\n{}",
        w.describe()
    );
    let written = w.mv("guest.bin-written").unwrap_or_default().to_string();
    assert_eq!(written.len(), 64, "{}", w.describe());
    assert_eq!(w.mv("umount"), Some("ok"), "{}", w.describe());
    w.assert_clean("ext4 write boot");

    let r = o.boot("read");
    assert_eq!(
        r.mv("guest.bin-read"),
        Some(written.as_str()),
        "second boot reads other bytes:\n{}",
        r.describe()
    );
    assert_eq!(
        r.mv("host.bin"),
        Some(host_sha.as_str()),
        "{}",
        r.describe()
    );
    r.assert_clean("ext4 read boot");

    let ro = o.boot("ro");
    assert_eq!(
        ro.mv("ro-flag"),
        Some("1"),
        "readonly=on must show as a read-only disk:\n{}",
        ro.describe()
    );
    assert_eq!(ro.mv("direct-write"), Some("failed"), "{}", ro.describe());
    assert_ne!(ro.mv("rw-mount"), Some("writable"), "{}", ro.describe());
    assert_eq!(
        ro.mv("host.bin"),
        Some(host_sha.as_str()),
        "{}",
        ro.describe()
    );
    ro.assert_clean("read-only disk boot");

    // The same bytes, read here from the image the nested host gave back.
    let out = e2fs_tool("debugfs")
        .args(["-R", "cat /guest.bin"])
        .arg(&img)
        .output()
        .expect("debugfs");
    let here = s.work().join("guest.bin.here");
    std::fs::write(&here, &out.stdout).expect("write guest.bin.here");
    assert_eq!(
        out.stdout.len(),
        1 << 20,
        "debugfs cat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sha256_file(&here),
        written,
        "the image read here differs from what the guest wrote"
    );
    let fsck = e2fs_tool("e2fsck")
        .args(["-f", "-n"])
        .arg(&img)
        .output()
        .expect("e2fsck");
    assert!(
        fsck.status.success(),
        "e2fsck -fn after the boots:\n{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

/// Boots per direct-I/O session; two sessions make the 20 boots.
const DIO_BOOTS: u32 = 10;
/// Parallel readers and as many writers per boot.
const DIO_JOBS: u32 = 4;
/// One region: 512 blocks of 4 KiB.
const REGION: usize = 2 << 20;

/// `boots` guest boots, each with DIO_JOBS readers of regions 0.. (filled here) and
/// DIO_JOBS writers of the next regions, all O_DIRECT and in parallel; every region read is
/// checked against what was made here, every region written against the guest's read-back
/// and the image's bytes after the boot.
fn parallel_direct_io(tag: &str, boots: u32) {
    let mut s = Session::new(tag);
    let n = DIO_JOBS as usize;
    let mut image = Vec::with_capacity(4 * n * REGION);
    let mut expected = Vec::new();
    for k in 0..n {
        let region = pseudo_random(REGION, 100 + k as u64);
        let f = s.work().join(format!("region{k}"));
        std::fs::write(&f, &region).expect("write region");
        expected.push(sha256_file(&f));
        image.extend_from_slice(&region);
    }
    image.resize(4 * n * REGION, 0);
    std::fs::write(s.work().join("dio.img"), &image).expect("write dio.img");
    for i in 0..boots {
        // A step per boot, each on a fresh copy of the image: a dead nested host costs one
        // boot, not the session.
        s.step().sh("stage dio.img");
        let name = format!("d{i:02}");
        let cpus = if i % 2 == 0 { 2 } else { 4 };
        s.boot(
            &name,
            "bzImage-cloud",
            "dio",
            &format!("mvarg={n}"),
            &format!("--cpus {cpus} --disk path=\"$RUN/dio.img\""),
        );
        for k in n..2 * n {
            s.sh(&format!(
                "echo \"HOST {name}-r{k} sha=$(dd if=\"$RUN/dio.img\" bs=4096 skip={} count=512 2>/dev/null | sha256sum | cut -d' ' -f1)\"",
                k * 512
            ));
        }
    }
    // ~25 s a boot; room for a retried boot or two (a hang costs GUEST_TIMEOUT).
    let o = s.run(Duration::from_secs(300 + 60 * u64::from(boots)));
    let mut failures = Vec::new();
    for i in 0..boots {
        let name = format!("d{i:02}");
        let b = o.boot(&name);
        let mut bad = Vec::new();
        if b.rc != 0 || b.mv("rc") != Some("0") || b.mv("dio-failed-dd") != Some("0") {
            bad.push("exit/rc/dd failure".to_string());
        }
        for (k, sha) in expected.iter().enumerate() {
            if b.mv_in(&format!("region={k}"), "read") != Some(sha.as_str()) {
                bad.push(format!("region {k} read wrong"));
            }
        }
        for k in n..2 * n {
            let first = format!("region={k}");
            let written = b.mv_in(&first, "written").map(str::to_string);
            if b.mv_in(&first, "readback") != Some("same") {
                bad.push(format!("region {k} read back differently in the guest"));
            }
            if written.is_none() || written != o.host_value(&format!("{name}-r{k}"), "sha") {
                bad.push(format!(
                    "region {k} in the image differs from what the guest wrote"
                ));
            }
        }
        if !bad.is_empty() {
            failures.push(format!("boot {name}: {}\n{}", bad.join(", "), b.describe()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {boots} boots failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
#[ignore = "boots Debian's cloud kernel 10 times (in the nested host without VT-x, ~3 min); run by .ci/run via --include-ignored"]
fn parallel_direct_io_first_ten_boots() {
    parallel_direct_io("dio-a", DIO_BOOTS * soak());
}

#[test]
#[ignore = "boots Debian's cloud kernel 10 times (in the nested host without VT-x, ~3 min); run by .ci/run via --include-ignored"]
fn parallel_direct_io_next_ten_boots() {
    parallel_direct_io("dio-b", DIO_BOOTS * soak());
}
