//! A host name of the test's own in `/etc/hosts`, which the test can move from one loopback
//! address to another, as a managed service (ElastiCache, Azure Cache, Aurora) moves its
//! endpoint name on failover. glibc reads `/etc/hosts` on every lookup, so PHP workers and
//! the code under test follow the move on their next connect.
//!
//! Each name is unique to its test process (`fleet-<pid>-<tag>.test`), edits are made under
//! an exclusive `flock` on a lock file (tests run in parallel processes), the file is
//! rewritten in place (it may be a bind mount in a container, so no rename) without ever
//! being empty, and the line is removed when the guard is dropped.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;

const HOSTS: &str = "/etc/hosts";
const LOCK: &str = "/tmp/fleet-harness-hosts.lock";

pub struct HostName {
    pub name: String,
}

impl HostName {
    /// Adds `name → address`.
    pub fn add(tag: &str, address: &str) -> HostName {
        let host = HostName {
            name: format!("fleet-{}-{tag}.test", std::process::id()),
        };
        host.point_to(address);
        host
    }

    /// Moves the name to `address`.
    pub fn point_to(&self, address: &str) {
        let line = format!("{address} {}", self.name);
        edit(|lines| {
            lines.retain(|l| !self.owns(l));
            lines.push(line.clone());
        });
    }

    fn owns(&self, line: &str) -> bool {
        line.split_whitespace().nth(1) == Some(self.name.as_str())
    }
}

impl Drop for HostName {
    fn drop(&mut self) {
        edit(|lines| lines.retain(|l| !self.owns(l)));
    }
}

fn edit(change: impl FnOnce(&mut Vec<String>)) {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK)
        .unwrap_or_else(|e| panic!("{LOCK}: {e}"));
    // SAFETY: flock(2) on a file descriptor we own, for the lifetime of `lock`.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "flock {LOCK}");
    let text = std::fs::read_to_string(HOSTS).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    change(&mut lines);
    let mut out = lines.join("\n");
    out.push('\n');
    // Written over from the start and then cut to length, never truncated first: glibc
    // reads the file on every lookup without this lock, and between a truncate and the
    // write another test process found the file empty and its own name unknown (6% of
    // lookups failed while edits ran; none this way). A reader now sees every line of the
    // old text or of the new; a shorter new text leaves the old text's tail after it for
    // an instant, but glibc takes a name's first line, which for every name the new text
    // has is in the new text.
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(false)
        .open(HOSTS)
        .unwrap_or_else(|e| panic!("{HOSTS} must be writable for this test (run as root): {e}"));
    file.write_all(out.as_bytes())
        .unwrap_or_else(|e| panic!("write {HOSTS}: {e}"));
    file.set_len(out.len() as u64)
        .unwrap_or_else(|e| panic!("cut {HOSTS} to length: {e}"));
    // The lock ends when `lock` is closed.
}
