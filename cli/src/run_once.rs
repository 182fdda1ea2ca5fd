//! `fleetctl run-once`: a job that the same crontab line starts on every node, run by one
//! node only, and (with `--every`) once per schedule slot.

use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleet_core::lease::later;
use fleet_core::{
    open_lease_store, parse_save_path, LeaseStore, LeaseToken, Slot, StoreConfig, Taken, Timeouts,
};

/// Exit status when COMMAND did not run here: another node holds the lease, or this slot
/// has already run (`EX_TEMPFAIL`).
pub const NOT_RUN: u8 = 75;
/// Exit status when the lease was lost while COMMAND ran (it was sent SIGTERM).
pub const LEASE_LOST: u8 = 76;

/// How long a slot's done-mark outlives the slot, for nodes whose clocks are behind.
const SKEW_MARGIN: Duration = Duration::from_secs(60);

/// The longest duration fleetctl takes (`--ttl`, `--every`, `--wait`): a year and a day.
/// Longer is a typo, and would overflow the clock arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

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
        let give_up = later(Instant::now(), self.wait);
        let (fence, taken_at) = loop {
            // The lease lives `ttl` from when the server set it, which is after this instant:
            // counting from here errs on the safe side.
            let attempt = Instant::now();
            match leases.take_lease(&self.name, &token, self.ttl, slot.as_ref())? {
                Taken::Won { fence } => break (fence, attempt),
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
        // Renewal runs on a thread of its own, so a renewal stuck in a hung server's
        // timeouts cannot hold up the watch on the deadline below.
        let stop = Arc::new(AtomicBool::new(false));
        let renewals = spawn_renewal(
            config.clone(),
            self.name.clone(),
            token.clone(),
            self.ttl,
            taken_at,
            stop.clone(),
        )?;
        // One failed renewal (a restart, a failover, a network blip) is no reason to stop a
        // job whose lease still has two thirds of its TTL: renewal is retried, and COMMAND is
        // stopped only when the lease would really lapse, a safety margin before the last
        // successful renewal's TTL runs out (so it stops before another node can take over).
        let margin = self.ttl / 10;
        let mut last_renewed = taken_at;
        let mut failing: Option<String> = None;
        let mut lost = false;
        let status: ExitStatus = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            let signal = RECEIVED.swap(0, Ordering::SeqCst);
            if signal != 0 {
                signal_child(signal);
            }
            let mut gone: Option<String> = None;
            loop {
                match renewals.try_recv() {
                    Ok(Renewal::Renewed(at)) => {
                        if failing.take().is_some() && self.verbose {
                            eprintln!("fleetctl: renewed the lease {} again", self.name);
                        }
                        last_renewed = last_renewed.max(at);
                    }
                    Ok(Renewal::Failed(e)) => {
                        if failing.is_none() {
                            eprintln!(
                                "fleetctl: renewing the lease {} failed ({e}); retrying until {:.1} s before its TTL of {:.1} s runs out",
                                self.name,
                                margin.as_secs_f64(),
                                self.ttl.as_secs_f64()
                            );
                        }
                        failing = Some(e);
                    }
                    Ok(Renewal::Lost) => gone = Some("another holder has it".to_owned()),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        gone = Some("the renewal thread ended".to_owned());
                        break;
                    }
                }
            }
            let lapses = later(last_renewed, self.ttl.saturating_sub(margin));
            if !lost && gone.is_none() && Instant::now() >= lapses {
                gone = Some(match &failing {
                    Some(e) => format!(
                        "renewal failed until the lease was about to lapse; last error: {e}"
                    ),
                    None => "no renewal got through before the lease was about to lapse".to_owned(),
                });
            }
            if let (false, Some(why)) = (lost, gone) {
                eprintln!(
                    "fleetctl: lost the lease {} while {program} ran ({why}); sending it SIGTERM",
                    self.name
                );
                lost = true;
                stop.store(true, Ordering::SeqCst);
                signal_child(libc::SIGTERM);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The thread is not joined: a renewal stuck in its timeouts must not delay the exit,
        // and one that lands after the release below finds the token gone and does nothing.
        stop.store(true, Ordering::SeqCst);
        if lost {
            return Ok(LEASE_LOST);
        }
        // The slot's mark (with --every) stays; the lease itself is free for the next slot,
        // or for the next run without --every.
        let _ = leases.release_lease(&self.name, &token);
        Ok(exit_code(status))
    }
}

/// What the renewal thread reports.
enum Renewal {
    /// Renewed by a call started at this instant: the lease lives `ttl` from then at least.
    Renewed(Instant),
    /// This attempt failed (the store down, slow, failing over); renewal goes on.
    Failed(String),
    /// The lease is not ours any more: another holder has it.
    Lost,
}

/// Renews lease `name` every third of `ttl` from `taken`, with a connection of its own,
/// retrying a failed attempt every tenth of the TTL (at most every second), until `stop`.
fn spawn_renewal(
    config: StoreConfig,
    name: String,
    token: LeaseToken,
    ttl: Duration,
    taken: Instant,
    stop: Arc<AtomicBool>,
) -> Result<Receiver<Renewal>, String> {
    let (tx, rx) = mpsc::channel();
    let retry_every = (ttl / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
    std::thread::Builder::new()
        .name("fleetctl-renewal".into())
        .spawn(move || {
            let mut store = None;
            let mut next = later(taken, ttl / 3);
            loop {
                while Instant::now() < next {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let left = next.saturating_duration_since(Instant::now());
                    std::thread::sleep(left.min(Duration::from_millis(50)));
                }
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let started = Instant::now();
                let outcome = renew_once(&mut store, &config, &name, &token, ttl);
                let report = match outcome {
                    Ok(true) => {
                        next = later(started, ttl / 3);
                        Renewal::Renewed(started)
                    }
                    Ok(false) => Renewal::Lost,
                    Err(e) => {
                        next = later(Instant::now(), retry_every);
                        Renewal::Failed(e.to_string())
                    }
                };
                let done = matches!(report, Renewal::Lost);
                if tx.send(report).is_err() || done {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the lease renewal thread: {e}"))?;
    Ok(rx)
}

/// One renewal on the thread's own store, opened on first use (and kept after a failure:
/// the store reconnects by itself).
fn renew_once(
    store: &mut Option<Box<dyn LeaseStore>>,
    config: &StoreConfig,
    name: &str,
    token: &LeaseToken,
    ttl: Duration,
) -> Result<bool, fleet_core::StoreError> {
    let opened = match store.take() {
        Some(s) => s,
        None => open_lease_store(config, Timeouts::default())?,
    };
    store.insert(opened).renew_lease(name, token, ttl)
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
    // The unit is the alphabetic tail, so an exponent (`1e3s`) stays in the number.
    let split = text
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .len();
    let (number, unit) = match &text[split..] {
        "" => (text, "s"),
        unit => (&text[..split], unit),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(format!("\"{text}\": the unit must be ms, s, m, h or d")),
    };
    let seconds = match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => n * scale,
        _ => {
            return Err(format!(
                "\"{text}\" is not a positive duration such as 30s or 5m"
            ))
        }
    };
    // Checked before the conversion: `Duration::from_secs_f64` panics past u64::MAX
    // seconds (`--ttl 1e300s`), and a finite number times the scale may be infinite.
    if seconds.is_nan() || seconds > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "\"{text}\" is too long: a duration is more than 0 and at most 366d"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
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
        assert_eq!(parse_duration("366d"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("1e3ms"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn huge_durations_are_refused_not_a_panic() {
        for huge in [
            "1e300s",
            "1e20",
            "367d",
            "1e308d",
            "100000000000000000000000s",
            "inf",
            "NaN",
            "1e",
        ] {
            let refused = parse_duration(huge);
            assert!(refused.is_err(), "{huge}: {refused:?}");
        }
        assert!(matches!(parse_duration("1e300s"), Err(m) if m.contains("at most 366d")));
    }
}
