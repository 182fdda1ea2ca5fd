//! `fleetctl run-once`: a job that the same crontab line starts on every node, run by one
//! node only, and (with `--every`) once per schedule slot.

use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleet_core::{open_lease_store, parse_save_path, LeaseToken, Slot, Taken, Timeouts};

/// Exit status when COMMAND did not run here: another node holds the lease, or this slot
/// has already run (`EX_TEMPFAIL`).
pub const NOT_RUN: u8 = 75;
/// Exit status when the lease was lost while COMMAND ran (it was sent SIGTERM).
pub const LEASE_LOST: u8 = 76;

/// How long a slot's done-mark outlives the slot, for nodes whose clocks are behind.
const SKEW_MARGIN: Duration = Duration::from_secs(60);

pub struct RunOnce {
    pub store: String,
    pub name: String,
    pub every: Option<Duration>,
    pub ttl: Duration,
    pub wait: Duration,
    pub verbose: bool,
    pub command: Vec<String>,
}

/// The signal received (SIGTERM or SIGINT) and not yet forwarded to COMMAND; 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

impl RunOnce {
    /// Runs the job if this node wins; returns the exit status for fleetctl.
    pub fn run(&self) -> Result<u8, Box<dyn std::error::Error>> {
        let config = parse_save_path(&self.store)?;
        let mut leases = open_lease_store(&config, Timeouts::default())?;
        let token = LeaseToken::generate()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let slot = self.every.map(|p| Slot::of(p, now, SKEW_MARGIN));
        let give_up = Instant::now() + self.wait;
        let fence = loop {
            match leases.take_lease(&self.name, &token, self.ttl, slot.as_ref())? {
                Taken::Won { fence } => break fence,
                Taken::Held if Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                outcome => {
                    if self.verbose {
                        let why = match outcome {
                            Taken::SlotDone => "this slot has already run",
                            _ => "another node holds it",
                        };
                        eprintln!("fleetctl: {}: {why}; not running", self.name);
                    }
                    return Ok(NOT_RUN);
                }
            }
        };
        // SAFETY: installs a handler that only stores into an atomic (async-signal-safe).
        unsafe {
            libc::signal(libc::SIGTERM, remember as *const () as libc::sighandler_t);
            libc::signal(libc::SIGINT, remember as *const () as libc::sighandler_t);
        }
        let Some((program, args)) = self.command.split_first() else {
            return Err("no COMMAND given after --".into());
        };
        let mut child = Command::new(program)
            .args(args)
            .env("FLEET_LEASE_TOKEN", fence.to_string())
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let child_pid = libc::pid_t::try_from(child.id()).unwrap_or(0);
        let signal_child = |signal: libc::c_int| {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child_pid, signal) };
        };
        let renew_every = self.ttl / 3;
        let mut next_renewal = Instant::now() + renew_every;
        let mut lost = false;
        let status: ExitStatus = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            let signal = RECEIVED.swap(0, Ordering::SeqCst);
            if signal != 0 {
                signal_child(signal);
            }
            if !lost && Instant::now() >= next_renewal {
                match leases.renew_lease(&self.name, &token, self.ttl) {
                    Ok(true) => next_renewal += renew_every,
                    outcome => {
                        let why = match outcome {
                            Err(e) => e.to_string(),
                            _ => "another holder has it".to_owned(),
                        };
                        eprintln!(
                            "fleetctl: lost the lease {} while {program} ran ({why}); sending it SIGTERM",
                            self.name
                        );
                        lost = true;
                        signal_child(libc::SIGTERM);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if lost {
            return Ok(LEASE_LOST);
        }
        // The slot's mark (with --every) stays; the lease itself is free for the next slot,
        // or for the next run without --every.
        let _ = leases.release_lease(&self.name, &token);
        Ok(exit_code(status))
    }
}

/// COMMAND's exit status as fleetctl's: its code, or 128 + the signal that ended it.
fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}

/// A duration as cron users write it: `90`, `90s`, `5m`, `2h`, `1d`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(format!("\"{text}\": the unit must be ms, s, m, h or d")),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(Duration::from_secs_f64(n * scale)),
        _ => Err(format!(
            "\"{text}\" is not a positive duration such as 30s or 5m"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_cron_users_write_them() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("0").is_err());
    }
}
