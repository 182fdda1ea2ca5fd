//! Real servers for Fleet's tests, benchmarks and demo: `redis-server`, `mariadbd`,
//! `php-fpm` and `nginx` from Debian's packages, each started on a free loopback port with its own temp
//! dir, and stopped by PID when dropped. No mocks.
//!
//! - [`process`]: a child process that is stopped (TERM, then KILL) when dropped.
//! - [`redis_server`]: a Redis server (also a replica, or on another 127.0.0.x), a sentinel,
//!   and a TCP endpoint that accepts but never answers.
//! - [`redis_cluster`]: a Redis Cluster made with `redis-cli --cluster create`.
//! - [`redis_flavour`]: Redis or Valkey for the whole run (`FLEET_REDIS_SERVER`).
//! - [`hosts`]: a test's own name in /etc/hosts, moved between addresses as a managed
//!   endpoint name is on failover.
//! - [`mariadb_server`]: a MariaDB server with a database and user for Fleet.
//! - [`web`]: PHP-FPM pools behind an nginx round-robin balancer, and a small HTTP client.
//! - [`paths`]: where the built extension, the PHP tests and the web pages are.
//! - [`php`]: the machine's PHP (binary, FPM, extension dir, run-tests.php) by its
//!   `php-config`.

pub mod hosts;
pub mod mariadb_server;
pub mod paths;
pub mod php;
pub mod process;
pub mod redis_cluster;
pub mod redis_flavour;
pub mod redis_server;
pub mod web;

pub use hosts::HostName;
pub use mariadb_server::MariaDbServer;
pub use redis_cluster::RedisCluster;
pub use redis_server::{Blackhole, RedisServer, Sentinel};
pub use web::{Http, WebStack};
