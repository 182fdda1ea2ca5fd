//! The one connection a worker keeps to its backend, whatever the topology.
//!
//! A PHP worker runs one request at a time, so each store holds at most one connection
//! and reuses it across requests. How that connection is found is the [`Connector`]'s
//! business: a fixed address whose name is resolved again on every connect, the
//! sentinels, a host list. What to do when
//! a step fails is the same for all of them, and lives here:
//!
//! - a failure that leaves the connection in an unknown state (I/O error, timeout mid-reply)
//!   drops it, so the next step connects afresh;
//! - a reply saying the node is not (or no longer) the primary drops it too: after a
//!   failover the old primary often keeps its connections open and refuses every write;
//! - a step the caller marks idempotent (a lock+read, a release) is retried once on a fresh
//!   connection after such a failure. A write is retried only when the node refused it
//!   (not the primary: nothing was done) and the caller says the write proves its lock
//!   itself; a write whose outcome is unknown is never repeated: its error goes back to the
//!   caller, which reports it;
//! - with `max_connection_age`, a connection older than that is replaced when a request
//!   starts (never in the middle of one, where it may hold a lock), so long-lived workers
//!   also follow a planned switch that raised no error;
//! - a connection opened by another process (this one is the child of a `pcntl_fork()`)
//!   is never used: parent and child would read each other's replies (another session's
//!   data). The child forgets it without closing it cleanly, since a clean close (MySQL's
//!   COM_QUIT) would end the parent's session on the shared socket, and opens its own.

use std::time::{Duration, Instant};

use crate::error::StoreError;

/// How a backend finds and opens a connection, and how it reads a failed step.
pub(crate) trait Connector {
    type Conn;
    type Error;

    /// Opens a fresh connection, finding the server anew (no address is cached across
    /// connects, so a moved DNS name or a new primary is followed).
    fn open(&mut self) -> Result<Self::Conn, StoreError>;

    /// What a step's failure means for the connection it ran on.
    fn judge(&self, error: Self::Error) -> Failure;
}

/// A failed step, as the connector reads it.
pub(crate) struct Failure {
    /// Whether the connection is still usable (the server answered with an error reply
    /// about this step only).
    pub keep: bool,
    pub error: StoreError,
}

struct Live<C> {
    conn: C,
    opened: Instant,
    /// The process that opened it.
    pid: u32,
}

impl<C> Live<C> {
    fn opened_here(&self) -> bool {
        self.pid == crate::process::id()
    }
}

/// One kept connection and the rules above.
pub(crate) struct Keeper<K: Connector> {
    pub connector: K,
    live: Option<Live<K::Conn>>,
    max_age: Option<Duration>,
    /// Since the last `take_events`: connections opened after a first one, and connections
    /// dropped because the server was no longer the primary.
    events: crate::store::StoreEvents,
    opened_any: bool,
}

impl<K: Connector> Keeper<K> {
    pub fn new(connector: K, max_age: Option<Duration>) -> Keeper<K> {
        Keeper {
            connector,
            live: None,
            max_age,
            events: crate::store::StoreEvents::default(),
            opened_any: false,
        }
    }

    /// Makes sure a connection is open, replacing one older than `max_connection_age`.
    /// Called when a request starts, when no lock is held on the old connection.
    pub fn connect(&mut self) -> Result<(), StoreError> {
        self.forget_inherited();
        if let (Some(live), Some(max_age)) = (&self.live, self.max_age) {
            if live.opened.elapsed() >= max_age {
                self.live = None;
            }
        }
        if self.live.is_none() {
            self.live = Some(self.open()?);
        }
        Ok(())
    }

    fn open(&mut self) -> Result<Live<K::Conn>, StoreError> {
        let conn = self.connector.open()?;
        if self.opened_any {
            self.events.reconnects += 1;
        }
        self.opened_any = true;
        Ok(Live {
            conn,
            opened: Instant::now(),
            pid: crate::process::id(),
        })
    }

    /// Drops, without a word to the server, a connection this process inherited from its
    /// parent across a fork: the parent still uses the socket. Its descriptor stays open in
    /// the child (one per store and fork, closed when the child exits).
    fn forget_inherited(&mut self) {
        if self.live.as_ref().is_some_and(|l| !l.opened_here()) {
            if let Some(inherited) = self.live.take() {
                std::mem::forget(inherited);
            }
        }
    }

    pub fn is_connected(&self) -> bool {
        self.live.as_ref().is_some_and(Live::opened_here)
    }

    /// What happened to the connection since the last call.
    pub fn take_events(&mut self) -> crate::store::StoreEvents {
        std::mem::take(&mut self.events)
    }

    /// The open connection, if any.
    pub fn current(&self) -> Option<&K::Conn> {
        self.live
            .as_ref()
            .filter(|l| l.opened_here())
            .map(|l| &l.conn)
    }

    /// Runs `op` on the connection, opening one if needed, and once more on a fresh one if
    /// it failed in a way `retry` allows.
    pub fn run<T>(
        &mut self,
        retry: Retry,
        mut op: impl FnMut(&mut K::Conn) -> Result<T, K::Error>,
    ) -> Result<T, StoreError> {
        self.forget_inherited();
        let reused = self.live.is_some();
        match self.run_once(&mut op) {
            Err(e) if retry.allows(&e, reused) => self.run_once(&mut op),
            other => other,
        }
    }

    fn run_once<T>(
        &mut self,
        op: &mut impl FnMut(&mut K::Conn) -> Result<T, K::Error>,
    ) -> Result<T, StoreError> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.open()?,
        };
        match op(&mut live.conn) {
            Ok(v) => {
                self.live = Some(live);
                Ok(v)
            }
            Err(e) => {
                let failure = self.connector.judge(e);
                if failure.error.is_not_primary() {
                    self.events.failovers += 1;
                }
                if failure.keep && !failure.error.is_not_primary() {
                    self.live = Some(live);
                }
                Err(failure.error)
            }
        }
    }
}

/// When a failed step is run once more on a fresh connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Never: the step depends on the connection (a lock the server ties to it), or its
    /// outcome may be unknown.
    Never,
    /// Only if the node refused it as not the primary, so nothing was done; for writes that
    /// check on the server that the request still holds its lock.
    IfRefused,
    /// A step that is safe to repeat (a lock+read, a release, a read): also when a reused
    /// connection turned out dead.
    Idempotent,
}

impl Retry {
    /// A connection that was fine at the last request may have died since (server restart,
    /// idle timeout): worth one fresh try. A node that says it is not the primary is worth
    /// one fresh try on any connection, since the next connect looks for the primary again.
    fn allows(self, e: &StoreError, reused: bool) -> bool {
        match self {
            Retry::Never => false,
            Retry::IfRefused => e.is_not_primary(),
            Retry::Idempotent => e.is_not_primary() || (reused && e.is_connection_failure()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::cause;

    /// Counts opens; each step fails with the next error `script` queued, or succeeds.
    struct Scripted {
        opens: usize,
    }

    impl Connector for Scripted {
        type Conn = usize;
        type Error = (bool, StoreError);
        fn open(&mut self) -> Result<usize, StoreError> {
            self.opens += 1;
            Ok(self.opens)
        }
        fn judge(&self, (keep, error): (bool, StoreError)) -> Failure {
            Failure { keep, error }
        }
    }

    fn keeper() -> Keeper<Scripted> {
        Keeper::new(Scripted { opens: 0 }, None)
    }

    fn step(k: &mut Keeper<Scripted>, idempotent: bool) -> Result<usize, StoreError> {
        let retry = if idempotent {
            Retry::Idempotent
        } else {
            Retry::Never
        };
        k.run(retry, |conn| match next_failure() {
            Some(f) => Err(f),
            None => Ok(*conn),
        })
    }

    thread_local! {
        static FAILURES: std::cell::RefCell<Vec<Option<(bool, StoreError)>>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    fn next_failure() -> Option<(bool, StoreError)> {
        FAILURES.with(|f| f.borrow_mut().pop().flatten())
    }

    fn script(failures: Vec<Option<(bool, StoreError)>>) {
        FAILURES.with(|f| *f.borrow_mut() = failures.into_iter().rev().collect());
    }

    fn lost() -> (bool, StoreError) {
        (false, StoreError::connection_lost("e", cause("reset")))
    }

    fn readonly() -> (bool, StoreError) {
        (true, StoreError::not_primary("e", cause("READONLY")))
    }

    #[test]
    fn a_dead_reused_connection_is_replaced_and_an_idempotent_step_retried() {
        let mut k = keeper();
        script(vec![None]);
        assert_eq!(step(&mut k, true).unwrap(), 1);
        script(vec![Some(lost()), None]);
        assert_eq!(step(&mut k, true).unwrap(), 2, "ran again on connection 2");
    }

    #[test]
    fn a_write_is_not_repeated() {
        let mut k = keeper();
        script(vec![None]);
        step(&mut k, false).unwrap();
        script(vec![Some(lost()), None]);
        assert!(step(&mut k, false).is_err());
        assert!(!k.is_connected(), "the broken connection is dropped");
        script(vec![None]);
        assert_eq!(step(&mut k, false).unwrap(), 2);
    }

    #[test]
    fn not_primary_drops_even_a_fresh_connection_and_retries_once() {
        let mut k = keeper();
        script(vec![Some(readonly()), None]);
        assert_eq!(step(&mut k, true).unwrap(), 2);
        script(vec![Some(readonly()), Some(readonly())]);
        let e = step(&mut k, true).unwrap_err();
        assert!(e.is_not_primary(), "{e}");
        assert!(!k.is_connected());
        assert_eq!(k.connector.opens, 3, "one retry, not more");
    }

    #[test]
    fn a_lock_checking_write_is_retried_only_when_refused() {
        let mut k = keeper();
        script(vec![None]);
        k.run(Retry::IfRefused, |c| Ok::<_, (bool, StoreError)>(*c))
            .unwrap();
        script(vec![Some(lost()), None]);
        let op = |c: &mut usize| match next_failure() {
            Some(f) => Err(f),
            None => Ok(*c),
        };
        assert!(
            k.run(Retry::IfRefused, op).is_err(),
            "unknown outcome: not repeated"
        );
        script(vec![Some(readonly()), None]);
        assert_eq!(k.run(Retry::IfRefused, op).unwrap(), 3);
    }

    #[test]
    fn a_server_error_reply_keeps_the_connection() {
        let mut k = keeper();
        let reply = (true, StoreError::server("e", cause("ERR")));
        script(vec![Some(reply)]);
        assert!(step(&mut k, true).is_err());
        assert!(k.is_connected());
        assert_eq!(k.connector.opens, 1);
    }

    /// After a fork the child must not share its parent's socket: the connection is left
    /// to the parent (not closed) and the child's next step opens its own.
    #[test]
    fn a_connection_inherited_across_a_fork_is_never_used() {
        let mut k = keeper();
        script(vec![None]);
        assert_eq!(step(&mut k, false).unwrap(), 1);
        // As the child of a fork sees it: opened by another process.
        if let Some(live) = k.live.as_mut() {
            live.pid = std::process::id().wrapping_add(1);
        }
        assert!(!k.is_connected());
        assert!(k.current().is_none());
        script(vec![None]);
        assert_eq!(
            step(&mut k, false).unwrap(),
            2,
            "ran on a connection of its own"
        );
        if let Some(live) = k.live.as_mut() {
            live.pid = std::process::id().wrapping_add(1);
        }
        k.connect().unwrap();
        assert_eq!(k.connector.opens, 3, "connect() opens its own too");
    }

    #[test]
    fn max_age_replaces_an_old_connection_at_request_start() {
        let mut k = Keeper::new(Scripted { opens: 0 }, Some(Duration::from_millis(30)));
        k.connect().unwrap();
        k.connect().unwrap();
        assert_eq!(k.connector.opens, 1);
        std::thread::sleep(Duration::from_millis(40));
        k.connect().unwrap();
        assert_eq!(k.connector.opens, 2);
    }
}
