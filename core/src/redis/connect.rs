//! How the Redis store finds the server to talk to: a fixed address (its name resolved
//! again on every connect, so a managed endpoint whose name moves on failover is followed),
//! the master that the sentinels name, or the masters of a cluster (see [`super::cluster`]).
//! Whichever it is, the store talks to a [`Link`].
//!
//! Sentinel discovery is built on plain commands rather than the `redis` crate's
//! `sentinel` module: that module opens its connections to the sentinels and to the master
//! without a connect or read timeout (a sentinel host that is down but not refusing would
//! hang the PHP worker), keeps a connection to a sentinel open between discoveries (a PHP
//! worker needs one only while it looks for the master, which is rare), and cannot report
//! why each sentinel was passed over, which is what an admin needs to read in the warning.

use std::time::Duration;

use ::redis::{
    cmd, Client, Connection, ConnectionAddr, ConnectionLike, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, RedisResult, ServerErrorKind, Value,
};

use super::cluster::{opener, ClusterLink};

use crate::config::{host_port, RedisConfig, RedisEndpoint, RedisTls, Secret, Timeouts};
use crate::error::{cause, StoreError};
use crate::keeper::{Connector, Failure};

/// Finds and opens the connection of one Redis store.
pub(super) struct RedisConnector {
    pub endpoint: String,
    timeouts: Timeouts,
    /// The read timeout a connection normally has: the command timeout, plus the
    /// `wait_timeout` a write may spend in `WAIT`.
    pub base_read_timeout: Duration,
    find: Finder,
}

enum Finder {
    Fixed(Client),
    Sentinel(Sentinels),
    Cluster {
        seeds: Vec<(String, u16)>,
        node: NodeSettings,
    },
}

/// What the store talks to: one server's connection, or a cluster's.
pub(crate) enum Link {
    Single(Connection),
    Cluster(ClusterLink),
}

impl Link {
    /// Sends the next commands to wherever `key` lives (a no-op off a cluster).
    pub fn route(&mut self, key: &[u8]) {
        if let Link::Cluster(c) = self {
            c.route(key);
        }
    }

    /// One slot per server holding data: `[0]` off a cluster (any slot routes there).
    pub fn shards(&self) -> Vec<u16> {
        match self {
            Link::Single(_) => vec![0],
            Link::Cluster(c) => c.master_slots(),
        }
    }

    /// Sends the next commands to the owner of `slot` (a no-op off a cluster).
    pub fn route_slot(&mut self, slot: u16) {
        if let Link::Cluster(c) = self {
            c.route_slot(slot);
        }
    }

    /// Sets the read timeout of the connection the next commands go to.
    pub fn set_read_timeout(&mut self, timeout: Duration) -> RedisResult<()> {
        match self {
            Link::Single(c) => c.set_read_timeout(Some(timeout)),
            Link::Cluster(c) => c.set_read_timeout(timeout),
        }
    }

    fn inner(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Link::Single(c) => c,
            Link::Cluster(c) => c,
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command(&mut self, packed: &[u8]) -> RedisResult<Value> {
        self.inner().req_packed_command(packed)
    }

    fn req_packed_commands(
        &mut self,
        packed: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.inner().req_packed_commands(packed, offset, count)
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        self.inner().check_connection()
    }

    fn is_open(&self) -> bool {
        match self {
            Link::Single(c) => c.is_open(),
            Link::Cluster(c) => c.is_open(),
        }
    }
}

/// The sentinels of one master, and how to reach the master once they name it.
struct Sentinels {
    sentinels: Vec<(String, Client)>,
    master: String,
    node: NodeSettings,
}

/// What a data node's connection needs besides its address.
#[derive(Clone)]
struct NodeSettings {
    tls: Option<(RedisTls, Option<Vec<u8>>)>,
    info: RedisConnectionInfo,
}

impl NodeSettings {
    fn client(&self, host: &str, port: u16) -> Result<Client, RedisError> {
        let addr = match &self.tls {
            Some((tls, _)) => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: !tls.verify,
                tls_params: None,
            },
            None => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        client(
            addr,
            self.info.clone(),
            self.tls.as_ref().and_then(|t| t.1.clone()),
        )
    }
}

impl RedisConnector {
    pub fn new(config: &RedisConfig, timeouts: Timeouts) -> Result<RedisConnector, StoreError> {
        let endpoint = config.endpoint.to_string();
        let refused = |e: RedisError| StoreError::connect(&endpoint, Box::new(e));
        let node_info = settings(config.db, &config.username, &config.password);
        let find = match &config.endpoint {
            RedisEndpoint::Tcp { host, port } => Finder::Fixed(
                client(ConnectionAddr::Tcp(host.clone(), *port), node_info, None)
                    .map_err(refused)?,
            ),
            RedisEndpoint::Tls {
                host,
                port,
                verify,
                ca_file,
            } => {
                let tls = RedisTls {
                    verify: *verify,
                    ca_file: ca_file.clone(),
                };
                let node = NodeSettings {
                    tls: Some((tls.clone(), read_ca(&tls).map_err(refused)?)),
                    info: node_info,
                };
                Finder::Fixed(node.client(host, *port).map_err(refused)?)
            }
            RedisEndpoint::Unix { path } => Finder::Fixed(
                client(ConnectionAddr::Unix(path.clone()), node_info, None).map_err(refused)?,
            ),
            RedisEndpoint::Cluster { seeds, tls } => {
                let tls = match tls {
                    Some(tls) => Some((tls.clone(), read_ca(tls).map_err(refused)?)),
                    None => None,
                };
                Finder::Cluster {
                    seeds: seeds.clone(),
                    node: NodeSettings {
                        tls,
                        info: node_info,
                    },
                }
            }
            RedisEndpoint::Sentinel {
                sentinels,
                master,
                tls,
            } => {
                let ca = match tls {
                    Some(tls) => Some((tls.clone(), read_ca(tls).map_err(refused)?)),
                    None => None,
                };
                // Sentinels have no databases; only their own credentials apply.
                let sentinel_node = NodeSettings {
                    tls: ca.clone(),
                    info: settings(0, &config.sentinel_username, &config.sentinel_password),
                };
                let sentinels = sentinels
                    .iter()
                    .map(|(host, port)| {
                        Ok((host_port(host, *port), sentinel_node.client(host, *port)?))
                    })
                    .collect::<Result<_, RedisError>>()
                    .map_err(refused)?;
                Finder::Sentinel(Sentinels {
                    sentinels,
                    master: master.clone(),
                    node: NodeSettings {
                        tls: ca,
                        info: node_info,
                    },
                })
            }
        };
        let base_read_timeout = match config.wait_replicas {
            0 => timeouts.command,
            _ => timeouts.command + config.wait_timeout,
        };
        Ok(RedisConnector {
            endpoint,
            timeouts,
            base_read_timeout,
            find,
        })
    }

    pub fn command_timeout(&self) -> Duration {
        self.timeouts.command
    }

    fn open_with(&self, client: &Client) -> Result<Connection, RedisError> {
        open_with(client, self.timeouts, self.base_read_timeout)
    }

    /// Asks each sentinel in turn for the master's address, and returns a connection to the
    /// first address that confirms with `ROLE` that it is the master.
    fn discover(&self, s: &Sentinels) -> Result<Connection, StoreError> {
        let mut passed_over = Vec::new();
        let mut auth_failure = None;
        for (name, sentinel) in &s.sentinels {
            let asked = self.open_with(sentinel).and_then(|mut c| {
                cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&s.master)
                    .query::<Option<(String, u16)>>(&mut c)
            });
            let (host, port) = match asked {
                Ok(Some(addr)) => addr,
                Ok(None) => {
                    passed_over.push(format!("sentinel {name} knows no master \"{}\"", s.master));
                    continue;
                }
                Err(e) => {
                    let e = classify(&format!("sentinel {name}"), e, self.timeouts.connect, true);
                    if e.kind() == crate::ErrorKind::Auth {
                        auth_failure.get_or_insert(e);
                    } else {
                        passed_over.push(format!("sentinel {name}: {}", e.cause_text()));
                    }
                    continue;
                }
            };
            let master = host_port(&host, port);
            let confirmed = s.node.client(&host, port).and_then(|c| {
                let mut connection = self.open_with(&c)?;
                let role: Value = cmd("ROLE").query(&mut connection)?;
                Ok((connection, role))
            });
            match confirmed {
                Ok((connection, role)) if is_master(&role) => return Ok(connection),
                Ok(_) => passed_over.push(format!(
                    "sentinel {name} named {master}, which is not a master (a failover is under way)"
                )),
                Err(e) => {
                    let e = classify(&format!("master {master}"), e, self.timeouts.connect, true);
                    if e.kind() == crate::ErrorKind::Auth {
                        return Err(e);
                    }
                    passed_over.push(format!(
                        "sentinel {name} named {master}: {}",
                        e.cause_text()
                    ));
                }
            }
        }
        if let (Some(auth), true) = (auth_failure, passed_over.is_empty()) {
            return Err(auth);
        }
        Err(StoreError::connect(
            &self.endpoint,
            cause(format!(
                "no sentinel named a reachable master \"{}\" ({})",
                s.master,
                passed_over.join("; ")
            )),
        ))
    }
}

/// Opens a connection with the connect timeout and sets its read and write timeouts.
fn open_with(
    client: &Client,
    timeouts: Timeouts,
    read_timeout: Duration,
) -> Result<Connection, RedisError> {
    let connection = client.get_connection_with_timeout(timeouts.connect)?;
    connection.set_read_timeout(Some(read_timeout))?;
    connection.set_write_timeout(Some(timeouts.command))?;
    Ok(connection)
}

impl Connector for RedisConnector {
    type Conn = Link;
    type Error = RedisError;

    fn open(&mut self) -> Result<Link, StoreError> {
        let connect_failed = |e| classify(&self.endpoint, e, self.timeouts.connect, true);
        match &self.find {
            Finder::Fixed(client) => self
                .open_with(client)
                .map(Link::Single)
                .map_err(connect_failed),
            Finder::Sentinel(s) => self.discover(s).map(Link::Single),
            Finder::Cluster { seeds, node } => {
                let (timeouts, read_timeout) = (self.timeouts, self.base_read_timeout);
                let node = node.clone();
                let open = opener(
                    move |host, port| node.client(host, port),
                    move |client| open_with(client, timeouts, read_timeout),
                );
                // A seed that accepts but does not answer CLUSTER SLOTS ran into the read
                // timeout, which is what the message should name.
                ClusterLink::discover(seeds, open, self.timeouts.command)
                    .map(Link::Cluster)
                    .map_err(|e| classify(&self.endpoint, e, self.timeouts.command, true))
            }
        }
    }

    fn judge(&self, e: RedisError) -> Failure {
        // A server's error reply leaves the connection usable; anything else (I/O error,
        // timeout mid-reply) leaves it in an unknown state.
        let keep = matches!(e.kind(), ErrorKind::Server(_)) && !e.is_unrecoverable_error();
        Failure {
            keep,
            error: classify(&self.endpoint, e, self.timeouts.command, false),
        }
    }
}

/// Whether a `ROLE` reply says master.
fn is_master(role: &Value) -> bool {
    match role {
        Value::Array(items) => matches!(
            items.first(),
            Some(Value::BulkString(b)) if b == b"master"
        ),
        _ => false,
    }
}

/// Turns a driver error into one an admin can act on. `connecting`: it came from opening
/// the connection.
pub(super) fn classify(
    endpoint: &str,
    e: RedisError,
    waited: Duration,
    connecting: bool,
) -> StoreError {
    let text = e.to_string();
    let auth_failure = matches!(e.kind(), ErrorKind::AuthenticationFailed)
        || matches!(e.kind(), ErrorKind::Server(ServerErrorKind::NoPerm))
        || text.contains("NOAUTH")
        || text.contains("WRONGPASS");
    // A demoted primary refuses writes (also inside a script) with READONLY; a replica cut
    // off from its master refuses reads with MASTERDOWN.
    let not_primary = matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
    ) || text.contains("READONLY")
        || text.contains("MASTERDOWN");
    if auth_failure {
        StoreError::auth(endpoint, Box::new(e))
    } else if not_primary {
        StoreError::not_primary(endpoint, Box::new(e))
    } else if connecting && (text.contains("SSL") || text.contains("certificate")) {
        StoreError::tls(endpoint, Box::new(e))
    } else if e.is_timeout() {
        StoreError::timed_out(endpoint, waited)
    } else if connecting {
        StoreError::connect(endpoint, Box::new(e))
    } else if matches!(e.kind(), ErrorKind::Server(_)) {
        StoreError::server(endpoint, Box::new(e))
    } else {
        StoreError::connection_lost(endpoint, Box::new(e))
    }
}

fn settings(db: i64, user: &Option<String>, password: &Option<Secret>) -> RedisConnectionInfo {
    // No CLIENT SETINFO: it would cost a round trip on every new connection.
    let mut settings = RedisConnectionInfo::default()
        .set_db(db)
        .set_skip_set_lib_name();
    if let Some(user) = user {
        settings = settings.set_username(user);
    }
    if let Some(password) = password {
        settings = settings.set_password(password.expose());
    }
    settings
}

fn read_ca(tls: &RedisTls) -> Result<Option<Vec<u8>>, RedisError> {
    let Some(ca_file) = &tls.ca_file else {
        return Ok(None);
    };
    // Parsing checked it already; checked again here, just before the read, because a
    // RedisTls can be built without parsing and the guard can be installed after.
    if !crate::config::file_allowed(ca_file) {
        return Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "tls_ca_file \"{}\" is not within open_basedir: Fleet does not read files PHP itself may not open",
                ca_file.display()
            ),
        )));
    }
    std::fs::read(ca_file).map(Some).map_err(|e| {
        RedisError::from(std::io::Error::new(
            e.kind(),
            format!("cannot read tls_ca_file {}: {e}", ca_file.display()),
        ))
    })
}

fn client(
    addr: ConnectionAddr,
    settings: RedisConnectionInfo,
    root_cert: Option<Vec<u8>>,
) -> Result<Client, RedisError> {
    let info = addr.into_connection_info()?.set_redis_settings(settings);
    match root_cert {
        Some(root_cert) => Client::build_with_tls(
            info,
            ::redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            },
        ),
        None => Client::open(info),
    }
}
