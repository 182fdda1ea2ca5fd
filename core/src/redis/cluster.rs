//! Redis Cluster: which node owns a session, and following the cluster when that changes.
//!
//! Every key of one session carries the session id as a hash tag (`<prefix>{<id>}`,
//! `<prefix>{<id>}_LOCK`, …), so all of them live in one slot and each locked step is still
//! one script on one node in one round trip.
//!
//! A worker learns the slot map from the first seed node that answers `CLUSTER SLOTS`, and
//! connects lazily to the masters that own the slots of the sessions it serves, so it never
//! holds connections to nodes it does not use. A reply that says the slot is elsewhere is
//! followed: `MOVED` (the slot has a new owner for good: the map is fetched again),
//! `ASK` (the slot is being migrated and this key is already on the target: `ASKING` and
//! the command go there once), `TRYAGAIN` (a multi-key step during a migration: wait a
//! moment). A node that died drops the whole link (see [`crate::keeper`]); the next step
//! fetches the map again, so a replica promoted by the cluster is found.
//!
//! This is built here rather than on the `redis` crate's `cluster` connection, which opens
//! a connection to every master when it reads the map, and sends each command of a
//! pipeline to its own route, so a `WAIT` (which has no key) would not follow its write.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ::redis::{
    cmd, Client, Connection, ConnectionLike, ErrorKind, RedisError, RedisResult, ServerErrorKind,
    Value,
};

/// Slots in a Redis Cluster.
const SLOTS: u16 = 16384;
/// `MOVED` redirects followed for one command before its reply is given back as it is.
const MAX_MOVED: usize = 5;
/// How long to wait before sending a command again after `TRYAGAIN`.
const TRY_AGAIN_PAUSE: Duration = Duration::from_millis(20);

/// The slot of `key`, as Redis computes it (CRC16 of the hash tag, or of the whole key).
pub(super) fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % SLOTS
}

/// Opens a connection to a node (`host`, `port`), with the store's timeouts and credentials.
pub(super) type NodeOpener = Box<dyn Fn(&str, u16) -> RedisResult<Connection> + Send>;

/// One worker's view of a cluster: the slot map and its connections to the masters it used.
pub(super) struct ClusterLink {
    /// (first slot, last slot, owner "host:port"), sorted.
    slots: Vec<(u16, u16, String)>,
    nodes: HashMap<String, Connection>,
    /// The slot of the session the next commands are for.
    target: u16,
    open: NodeOpener,
    /// How long `TRYAGAIN` (and `ASK` back and forth during a migration) is waited out.
    patience: Duration,
    /// A read timeout set for the next commands (a blocking wait), on whichever node they
    /// end up on.
    read_timeout: Option<Duration>,
}

enum Redirect {
    Moved(String),
    Ask(String),
    TryAgain,
}

impl ClusterLink {
    /// Reads the slot map from the first seed that answers.
    pub fn discover(
        seeds: &[(String, u16)],
        open: NodeOpener,
        patience: Duration,
    ) -> RedisResult<ClusterLink> {
        let mut last_error = None;
        for (host, port) in seeds {
            match open(host, *port).and_then(|mut c| read_slots(&mut c, host)) {
                Ok(slots) => {
                    return Ok(ClusterLink {
                        slots,
                        nodes: HashMap::new(),
                        target: 0,
                        open,
                        patience,
                        read_timeout: None,
                    })
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| RedisError::from((ErrorKind::InvalidClientConfig, "no seed nodes"))))
    }

    /// Sends the next commands to the owner of `key`'s slot.
    pub fn route(&mut self, key: &[u8]) {
        self.target = slot(key);
    }

    /// Sends the next commands to the owner of `slot`.
    pub fn route_slot(&mut self, slot: u16) {
        self.target = slot;
    }

    /// The first slot of each master, in slot order: one per master, for commands that walk
    /// the whole cluster (`SCAN`).
    pub fn master_slots(&self) -> Vec<u16> {
        let mut seen: Vec<&str> = Vec::new();
        let mut slots = Vec::new();
        for (first, _, owner) in &self.slots {
            if !seen.contains(&owner.as_str()) {
                seen.push(owner);
                slots.push(*first);
            }
        }
        slots
    }

    fn owner(&self) -> RedisResult<String> {
        let i = self
            .slots
            .partition_point(|(_, last, _)| *last < self.target);
        match self.slots.get(i) {
            Some((first, _, owner)) if *first <= self.target => Ok(owner.clone()),
            _ => Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ClusterDown),
                "no node of the cluster serves slot",
                self.target.to_string(),
            ))),
        }
    }

    fn node(&mut self, addr: &str) -> RedisResult<&mut Connection> {
        if !self.nodes.contains_key(addr) {
            let (host, port) = split_addr(addr)?;
            let connection = (self.open)(host, port)?;
            if let Some(timeout) = self.read_timeout {
                connection.set_read_timeout(Some(timeout))?;
            }
            self.nodes.insert(addr.to_owned(), connection);
        }
        self.nodes.get_mut(addr).ok_or_else(|| {
            RedisError::from((ErrorKind::Client, "cluster node connection vanished"))
        })
    }

    /// Sets the read timeout of every connection the next commands may go to (a redirect
    /// may send a blocking wait to another node than the owner).
    pub fn set_read_timeout(&mut self, timeout: Duration) -> RedisResult<()> {
        self.read_timeout = Some(timeout);
        for connection in self.nodes.values() {
            connection.set_read_timeout(Some(timeout))?;
        }
        Ok(())
    }

    /// Fetches the slot map again, from the node that said it changed.
    fn refresh(&mut self, via: &str) -> RedisResult<()> {
        let host = split_addr(via)?.0.to_owned();
        let slots = read_slots(self.node(via)?, &host)?;
        self.slots = slots;
        // Connections to nodes that own none of our slots any more are not needed.
        let owners: Vec<String> = self.slots.iter().map(|s| s.2.clone()).collect();
        self.nodes.retain(|addr, _| owners.contains(addr));
        Ok(())
    }

    /// Sends `send` to the owner of the target slot, following redirects.
    fn request<T>(
        &mut self,
        mut send: impl FnMut(&mut Connection) -> RedisResult<T>,
        redirect_of: impl Fn(&T) -> Option<Redirect>,
    ) -> RedisResult<T> {
        let deadline = crate::lease::later(Instant::now(), self.patience);
        let mut asking: Option<String> = None;
        let mut moved = 0;
        loop {
            let reply = match asking.take() {
                Some(addr) => {
                    let connection = self.node(&addr)?;
                    cmd("ASKING").query::<()>(connection)?;
                    send(connection)?
                }
                None => {
                    let owner = self.owner()?;
                    send(self.node(&owner)?)?
                }
            };
            let Some(redirect) = redirect_of(&reply) else {
                return Ok(reply);
            };
            // During a migration a step whose keys are split between the two nodes is
            // answered TRYAGAIN (by either), and one whose keys are all gone ASK: both end
            // when the migration does, so they are followed until `patience` runs out.
            match redirect {
                Redirect::Moved(addr) if moved < MAX_MOVED => {
                    moved += 1;
                    self.refresh(&addr)?;
                }
                Redirect::Ask(addr) if Instant::now() < deadline => asking = Some(addr),
                Redirect::TryAgain if Instant::now() < deadline => {
                    std::thread::sleep(TRY_AGAIN_PAUSE)
                }
                _ => return Ok(reply),
            }
        }
    }
}

impl ConnectionLike for ClusterLink {
    fn req_packed_command(&mut self, packed: &[u8]) -> RedisResult<Value> {
        self.request(|c| c.req_packed_command(packed), redirect_of)
    }

    fn req_packed_commands(
        &mut self,
        packed: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        // A pipeline is one session's step and what follows it (`WAIT`): where its first
        // reply is redirected, the whole pipeline goes (a `WAIT` on the wrong node did no
        // harm).
        self.request(
            |c| c.req_packed_commands(packed, offset, count),
            |replies| replies.first().and_then(redirect_of),
        )
    }

    fn get_db(&self) -> i64 {
        0
    }

    fn check_connection(&mut self) -> bool {
        self.nodes.values_mut().all(|c| c.check_connection())
    }

    fn is_open(&self) -> bool {
        self.nodes.values().all(|c| c.is_open())
    }
}

fn redirect_of(reply: &Value) -> Option<Redirect> {
    let Value::ServerError(e) = reply else {
        return None;
    };
    let target = || {
        e.details()
            .and_then(|d| d.split_ascii_whitespace().nth(1))
            .map(str::to_owned)
    };
    match e.kind()? {
        ServerErrorKind::Moved => target().map(Redirect::Moved),
        ServerErrorKind::Ask => target().map(Redirect::Ask),
        ServerErrorKind::TryAgain => Some(Redirect::TryAgain),
        _ => None,
    }
}

fn split_addr(addr: &str) -> RedisResult<(&str, u16)> {
    addr.rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse().ok()?)))
        .ok_or_else(|| {
            RedisError::from((
                ErrorKind::Parse,
                "bad node address in the cluster",
                addr.to_owned(),
            ))
        })
}

/// `CLUSTER SLOTS` as (first, last, owner) ranges, sorted. A node that announces an empty
/// host means the address it was asked on.
fn read_slots(c: &mut Connection, asked_host: &str) -> RedisResult<Vec<(u16, u16, String)>> {
    let reply: Vec<Value> = cmd("CLUSTER").arg("SLOTS").query(c)?;
    let mut slots = Vec::new();
    for range in reply {
        let Value::Array(items) = range else { continue };
        let mut items = items.into_iter();
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
            (items.next(), items.next(), items.next())
        else {
            continue;
        };
        let mut master = master.into_iter();
        let host = match master.next() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(&h).into_owned(),
            Some(Value::SimpleString(h)) => h,
            _ => continue,
        };
        let Some(Value::Int(port)) = master.next() else {
            continue;
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_owned()
        } else {
            host
        };
        let (Ok(first), Ok(last), Ok(port)) = (
            u16::try_from(first),
            u16::try_from(last),
            u16::try_from(port),
        ) else {
            continue;
        };
        slots.push((first, last, crate::config::host_port(&host, port)));
    }
    if slots.is_empty() {
        return Err(RedisError::from((
            ErrorKind::Server(ServerErrorKind::ClusterDown),
            "CLUSTER SLOTS named no node (is cluster mode enabled on the seed nodes?)",
        )));
    }
    slots.sort_by_key(|s| s.0);
    Ok(slots)
}

/// Builds the node opener from a client factory.
pub(super) fn opener(
    client_for: impl Fn(&str, u16) -> RedisResult<Client> + Send + 'static,
    connect: impl Fn(&Client) -> RedisResult<Connection> + Send + 'static,
) -> NodeOpener {
    Box::new(move |host, port| connect(&client_for(host, port)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_hash_tag_as_redis_computes_them() {
        // Values from CLUSTER KEYSLOT on a real server.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"PHPREDIS_SESSION:{abc}_LOCK"), slot(b"abc"));
        assert_eq!(
            slot(b"a{}b"),
            slot(b"a{}b"),
            "an empty tag hashes the whole key"
        );
        assert_ne!(slot(b"a{}b"), slot(b""));
    }
}
