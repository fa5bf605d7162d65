//! A private network namespace with a TAP `tap0` at 10.0.2.1/24, deleted on drop. Tests
//! only ever talk to addresses inside namespaces they made themselves.

use std::process::{Command, Stdio};

/// The namespace; `Drop` deletes it (and the TAP with it), however the test ends.
pub struct Netns {
    /// Its name, unique to the test process.
    pub name: String,
}

impl Netns {
    /// Creates the namespace and `tap0`. Panics loudly without CAP_NET_ADMIN: a network
    /// test must not pass without testing.
    pub fn new(prefix: &str) -> Netns {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("mvm-{prefix}-{}-{nanos}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap_or_else(|e| panic!("cannot run `ip`: {e}; network tests need iproute2"));
        if !out.status.success() {
            panic!(
                "NET TEST CANNOT RUN: `ip netns add {name}` failed ({}). It needs CAP_NET_ADMIN \
                 (run the tests as root); it refuses to pass without testing.",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let ns = Netns { name };
        ns.exec(&["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"]);
        ns.exec(&["ip", "addr", "add", "10.0.2.1/24", "dev", "tap0"]);
        ns.exec(&["ip", "link", "set", "tap0", "up"]);
        ns
    }

    /// Runs a command inside the namespace and returns its stdout (panics on failure).
    pub fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "{args:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// microvm run inside the namespace (`ip netns exec` execs it, so the child's pid is
    /// microvm's), with stdin closed and output captured.
    pub fn microvm(&self) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_microvm")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
