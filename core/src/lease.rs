//! Leases: exclusive, time-bounded ownership of a named resource.
//!
//! A session lock is a lease on one session for one request; a cron lock (fleetctl) is a
//! lease on a job name. Both need the same properties: only the holder can release it (a
//! random token compared atomically on release), it ends by itself if the holder dies (a
//! short TTL), it never ends under a live holder (a [`Renewer`] extends it while it is
//! held, up to a maximum hold), and a waiter learns of a release without polling.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{cause, StoreError};

/// Proof of holding a lease: 128 random bits, hex-encoded. Only the holder knows it, so only
/// the holder can release or extend the lease.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseToken(String);

impl LeaseToken {
    /// A fresh token of 128 random bits from the operating system, as 32 hex digits.
    pub fn generate() -> Result<LeaseToken, StoreError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| {
            StoreError::system(
                "the operating system's random number generator failed",
                cause(e.to_string()),
            )
        })?;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let hex = bytes
            .iter()
            .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
            .map(char::from)
            .collect();
        Ok(LeaseToken(hex))
    }

    /// The token as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseToken({}…)", &self.0[..8.min(self.0.len())])
    }
}

/// Longest lease name: it becomes part of a key or a row's primary key.
pub const MAX_LEASE_NAME: usize = 128;

/// Checks a lease name: 1 to [`MAX_LEASE_NAME`] characters of `a-z A-Z 0-9 . _ : / @ -`
/// (no braces, which would break a cluster's hash tag, and nothing a key or log line
/// could be confused by).
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_:/@".contains(c);
    if name.is_empty() || name.len() > MAX_LEASE_NAME || !name.chars().all(allowed) {
        let shown: String = name.chars().take(40).collect();
        return Err(StoreError::lease_name(&shown));
    }
    Ok(())
}

/// What a PHP caller holds for a lease: the fencing number and the secret token, written
/// `<fence>-<token>`, so `(int) $ticket` is the fence (larger for every new holder) and
/// the whole string proves ownership to renew or release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTicket {
    /// The fencing number: larger for every new holder.
    pub fence: u64,
    /// The secret that proves ownership.
    pub token: LeaseToken,
}

impl LeaseTicket {
    /// Reads a ticket written by [`fmt::Display`]; `None` if it is not one.
    pub fn parse(text: &str) -> Option<LeaseTicket> {
        let (fence, token) = text.split_once('-')?;
        let token_ok = token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit());
        Some(LeaseTicket {
            fence: fence.parse().ok()?,
            token: LeaseToken(token.to_owned()).filter_valid(token_ok)?,
        })
    }
}

impl LeaseToken {
    fn filter_valid(self, valid: bool) -> Option<LeaseToken> {
        valid.then_some(self)
    }
}

impl fmt::Display for LeaseTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.fence, self.token.as_str())
    }
}

/// Who holds a lock, as recorded with it (Redis) or as the server shows it (MySQL), for the
/// messages of a request that waited: which server, process and page, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// "web2 pid 1234 (GET /report.php)", or what the server or another handler shows.
    pub who: String,
    /// How long it has held the lock (by the server's clock), when known.
    pub held_for: Option<Duration>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.held_for {
            Some(d) => write!(f, "held for {:.1} s by {}", d.as_secs_f64(), self.who),
            None => write!(f, "held by {}", self.who),
        }
    }
}

/// How a lease is taken: how long it lives unless renewed or released, how long to wait for
/// it, and how long it may be renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTerms {
    /// How long the lease lives unless renewed or released.
    pub ttl: Duration,
    /// How long to wait for a lease someone else holds (zero: do not wait).
    pub wait_timeout: Duration,
    /// Keep the lease alive while it is held, for at most this long after it was taken
    /// (`None`: no renewal; it ends `ttl` after it was taken).
    pub renew_for: Option<Duration>,
}

/// Longest single blocking wait. A waiter is woken when the holder releases; this bound
/// only matters when a wake-up is lost (a woken waiter killed before it took the lease, or
/// a phpredis worker releasing its lock, which wakes nobody), so every waiter re-checks at
/// least this often.
pub const MAX_WAIT_SLICE: Duration = Duration::from_secs(1);

/// How long a blocking wait should last before trying again: until the holder's lease
/// would expire, but never past `remaining` nor longer than [`MAX_WAIT_SLICE`].
pub fn wait_slice(holder_ttl_left: Option<Duration>, remaining: Duration) -> Duration {
    let mut slice = remaining.min(MAX_WAIT_SLICE);
    if let Some(left) = holder_ttl_left {
        // One extra millisecond so the lease has surely expired when we look again.
        slice = slice.min(left.saturating_add(Duration::from_millis(1)));
    }
    slice.max(Duration::from_millis(1))
}

/// `at + after`, saturated to the latest instant the clock can represent. Durations here
/// come from user numbers (a huge `max_execution_time` doubles into a maximum hold of
/// centuries), and `Instant + Duration` panics on overflow, which in a PHP worker would
/// leave the lock just taken orphaned.
pub fn later(at: Instant, after: Duration) -> Instant {
    let mut after = after;
    loop {
        if let Some(t) = at.checked_add(after) {
            return t;
        }
        // Halving converges on the largest representable sum in at most 64 steps.
        after /= 2;
    }
}

/// `value` seconds (a number a user gave), at most `max`: `None` unless it is a finite
/// number of 0 or more (NaN, infinities and negative numbers mean nothing as a duration).
/// A finite value beyond `max`, however large, is `max`: `Duration::from_secs_f64` would
/// panic on it.
pub fn saturating_seconds(value: f64, max: Duration) -> Option<Duration> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(value).map_or(max, |d| d.min(max)))
}

/// A cluster-wide lease on a name (a cron job, a "do this once" action), kept in a session
/// store: one holder at a time across every app server, with a fencing token that grows
/// with every new holder, and optionally a schedule slot that stays marked as done after
/// the holder releases, so the same job fired a little later by another node's crontab does
/// not run again in that slot.
pub trait LeaseStore {
    /// Takes lease `name` with `token` for `ttl`, unless someone holds it or `slot` (if
    /// given) is already marked done.
    fn take_lease(
        &mut self,
        name: &str,
        token: &LeaseToken,
        ttl: Duration,
        slot: Option<&Slot>,
    ) -> Result<Taken, StoreError>;

    /// Extends lease `name` by `ttl` if `token` still holds it; `Ok(false)` if it does not.
    fn renew_lease(
        &mut self,
        name: &str,
        token: &LeaseToken,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Releases lease `name` if `token` holds it (the slot, if any, stays marked).
    fn release_lease(&mut self, name: &str, token: &LeaseToken) -> Result<bool, StoreError>;
}

/// The outcome of [`LeaseStore::take_lease`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// This holder has it; `fence` is larger than any earlier holder's.
    Won {
        /// The fencing number of this holder.
        fence: u64,
    },
    /// Someone else holds it now.
    Held,
    /// The slot was already run by someone.
    SlotDone,
}

/// One slot of a schedule: which one (the same text on every node whose clock puts it in
/// the same slot), and how long its done-mark must be kept (to the slot's end plus a margin
/// for clock skew).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The slot, e.g. `2026-12-03T06:00Z` for an hourly job.
    pub id: String,
    /// How long the slot's done-mark is kept.
    pub keep: Duration,
}

impl Slot {
    /// The slot of a schedule with `period` that `now` (Unix time) falls in; its mark is
    /// kept until the slot ends plus `margin`.
    pub fn of(period: Duration, now: Duration, margin: Duration) -> Slot {
        let period_ms = period.as_millis().max(1);
        let index = now.as_millis() / period_ms;
        let end = Duration::from_millis(u64::try_from((index + 1) * period_ms).unwrap_or(u64::MAX));
        Slot {
            id: format!("{}s:{index}", period.as_secs()),
            keep: end.saturating_sub(now).saturating_add(margin),
        }
    }
}

/// Renews one lease at a time on a helper thread, for a holder (a PHP worker) that runs one
/// request at a time and must not pay for renewal on its own thread.
///
/// The holder registers a lease when it takes it ([`Renewer::hold`]) and unregisters it when
/// it releases it ([`Renewer::release`]): a mutex each, no I/O, no wake-up of the thread. The
/// thread wakes every third of the TTL; a lease held for a third of its TTL since it was
/// taken or last renewed is renewed through `renew`, which runs on the thread (with its own
/// connection, opened only when the first renewal is due). So a short request costs nothing,
/// a lease never expires under a live holder while renewals get through, and a holder that
/// died stops renewing: its lease ends within the TTL. Renewal stops after the lease's
/// `renew_for`, so a hung holder cannot keep a lease forever.
///
/// The thread never calls into PHP: it runs `renew` only, with every signal blocked (PHP's
/// timers and FPM's signals go to the request thread). It is started lazily, so in PHP-FPM it
/// is started in the worker after the fork; a process that forks again (pcntl_fork) starts a
/// new one. It ends when the `Renewer` is dropped.
pub struct Renewer {
    shared: Arc<Shared>,
    pid: u32,
    next_id: u64,
}

/// How a lease is renewed: given the key, the token and the TTL, `Ok(true)` if it was still
/// the holder's and now lives `ttl` from now, `Ok(false)` if it was not the holder's any more.
pub type RenewFn = Box<dyn FnMut(&[u8], &str, Duration) -> Result<bool, StoreError> + Send>;

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    lease: Option<Held>,
    /// How often the thread looks at the lease: a third of the shortest TTL seen.
    tick: Option<Duration>,
    stop: bool,
}

struct Held {
    id: u64,
    key: Vec<u8>,
    token: String,
    ttl: Duration,
    taken: Instant,
    /// When the next renewal is due: a third of the TTL after the last success, or a tick
    /// after a failed attempt.
    next_attempt: Instant,
    renew_until: Instant,
    report: RenewalReport,
}

/// What happened to a lease while it was held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenewalReport {
    /// How long it was held, from taking to release.
    pub held: Duration,
    /// How many renewals succeeded.
    pub renewals: u32,
    /// Why renewal stopped before the release, if it did.
    pub stopped: Option<RenewalStop>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// Why renewal stopped before the lease was released.
pub enum RenewalStop {
    /// The maximum hold (`renew_for`) ran out.
    MaxHold(Duration),
    /// The lease was not the holder's any more when a renewal came.
    Lost,
    /// The last renewal attempt failed with this error (renewal goes on trying).
    Failing(String),
}

impl Renewer {
    /// A renewer whose thread renews with `renew`. The thread starts now.
    pub fn start(renew: RenewFn) -> Result<Renewer, StoreError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        spawn_without_signals(shared.clone(), renew)?;
        Ok(Renewer {
            shared,
            pid: crate::process::id(),
            next_id: 0,
        })
    }

    /// Whether this renewer's thread lives in this process (it does not in the child of a
    /// fork).
    pub fn in_this_process(&self) -> bool {
        self.pid == crate::process::id()
    }

    /// Registers a lease just taken at `taken`; returns its id for [`Renewer::release`].
    pub fn hold(
        &mut self,
        key: &[u8],
        token: &LeaseToken,
        ttl: Duration,
        renew_for: Duration,
        taken: Instant,
    ) -> u64 {
        self.next_id += 1;
        let tick = (ttl / 3).max(Duration::from_millis(10));
        let mut state = lock(&self.shared.state);
        state.lease = Some(Held {
            id: self.next_id,
            key: key.to_vec(),
            token: token.as_str().to_owned(),
            ttl,
            taken,
            next_attempt: later(taken, ttl / 3),
            renew_until: later(taken, renew_for),
            report: RenewalReport::default(),
        });
        // Only a shorter TTL than the thread knows needs it woken (rare: a changed setting).
        if state.tick.is_none_or(|t| tick < t) {
            state.tick = Some(tick);
            self.shared.wake.notify_one();
        }
        self.next_id
    }

    /// Unregisters lease `id` before it is released, and says how it went.
    pub fn release(&mut self, id: u64) -> Option<RenewalReport> {
        // In the child of a fork the mutex is the parent's copy, possibly held by a thread
        // that does not exist here: locking it could wait forever. The lease is the parent's.
        if !self.in_this_process() {
            return None;
        }
        let mut state = lock(&self.shared.state);
        match state.lease.take() {
            Some(held) if held.id == id => {
                let mut report = held.report;
                report.held = held.taken.elapsed();
                Some(report)
            }
            other => {
                state.lease = other;
                None
            }
        }
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        // In the child of a fork there is no thread to stop, and the mutex may have been
        // held at the fork by the parent's thread: leave it (and its memory) alone.
        if !self.in_this_process() {
            std::mem::forget(self.shared.clone());
            return;
        }
        // The thread is told to stop, not joined: a renewal under way may take up to its
        // timeouts, and nothing waits for it.
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_one();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the renewal thread with every signal blocked, so the process's signals (PHP's
/// execution timer, FPM's) are never delivered to it.
fn spawn_without_signals(shared: Arc<Shared>, renew: RenewFn) -> Result<(), StoreError> {
    // SAFETY: sigfillset and pthread_sigmask on sigset_t values we own; the old mask is put
    // back right after the spawn, so the calling thread's mask is unchanged.
    let old = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    };
    let spawned = std::thread::Builder::new()
        .name("fleet-renewer".into())
        .spawn(move || run(&shared, renew));
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    spawned
        .map(|_| ())
        .map_err(|e| StoreError::system("cannot start the lock renewal thread", Box::new(e)))
}

/// The renewal thread.
fn run(shared: &Shared, mut renew: RenewFn) {
    let mut state = lock(&shared.state);
    loop {
        if state.stop {
            return;
        }
        let tick = state.tick.unwrap_or(Duration::from_secs(1));
        let now = Instant::now();
        let mut sleep = tick;
        let mut due = None;
        if let Some(held) = &mut state.lease {
            let finished = matches!(
                held.report.stopped,
                Some(RenewalStop::MaxHold(_) | RenewalStop::Lost)
            );
            if finished {
                // Nothing more to do for this lease until it is released.
            } else if now >= held.renew_until {
                held.report.stopped = Some(RenewalStop::MaxHold(held.renew_until - held.taken));
            } else if now >= held.next_attempt {
                due = Some((held.id, held.key.clone(), held.token.clone(), held.ttl));
            } else {
                sleep = sleep.min(held.next_attempt - now);
            }
        }
        if let Some((id, key, token, ttl)) = due {
            // The holder may release meanwhile; a renewal only extends a lease whose token is
            // still there, so a late one does no harm.
            drop(state);
            let started = Instant::now();
            let outcome = renew(&key, &token, ttl);
            state = lock(&shared.state);
            if let Some(held) = state.lease.as_mut().filter(|h| h.id == id) {
                match outcome {
                    Ok(true) => {
                        held.next_attempt = later(started, ttl / 3);
                        held.report.renewals += 1;
                        held.report.stopped = None;
                    }
                    Ok(false) => held.report.stopped = Some(RenewalStop::Lost),
                    Err(e) => {
                        held.next_attempt = later(Instant::now(), tick);
                        held.report.stopped = Some(RenewalStop::Failing(e.to_string()));
                    }
                }
            }
            continue;
        }
        state = shared
            .wake
            .wait_timeout(state, sleep)
            .map(|(s, _)| s)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0);
    }
}

#[cfg(test)]
mod tests;
