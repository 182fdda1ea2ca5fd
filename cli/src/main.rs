//! `fleetctl`: operator commands for Fleet.
//!
//! - `schema`: prints the DDL of the MySQL/MariaDB session table and Fleet's stored
//!   procedures, for DBAs who create them and give Fleet's user only SELECT, INSERT,
//!   UPDATE, DELETE (and EXECUTE).
//! - `gc`: deletes expired sessions now, for sites that prefer a crontab line to
//!   `gc_interval`.
//! - `run-once`: runs a cron job on one node of the cluster (per schedule slot with
//!   `--every`), holding a lease in the session store.
//! - `copy`: copies sessions from PHP's files handler or another store into a Fleet store,
//!   keeping their lifetimes (zero-logout migration).
//! - `sessions`: counts, lists, shows (decoded) and destroys stored sessions.

mod advice;
mod copy;
mod run_once;
mod sessions;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fleetctl",
    version,
    about = "Operator commands for Fleet, the shared PHP session handler"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the MySQL/MariaDB session table and stored procedures, as a script for the
    /// mysql or mariadb client.
    Schema {
        /// The table name, as given by table= in session.save_path.
        #[arg(long, default_value = fleet_core::config::DEFAULT_TABLE)]
        table: String,
        /// Leave out the stored procedures (for procedures=0 in session.save_path).
        #[arg(long)]
        no_procedures: bool,
    },
    /// Run COMMAND on the one node that wins the lease NAME (the same crontab line runs on
    /// every node). Exits with COMMAND's status; 75 if another node holds the lease or this
    /// --every slot has already run; 76 if the lease was lost while COMMAND ran.
    RunOnce {
        /// The store, written as session.save_path (every Redis form, or MySQL).
        #[arg(long)]
        store: String,
        /// The lease's name: one per job.
        #[arg(long)]
        name: String,
        /// The schedule of the crontab line (e.g. 5m): run at most once per slot of this
        /// period, even when nodes start the line a little apart.
        #[arg(long, value_parser = run_once::parse_duration)]
        every: Option<std::time::Duration>,
        /// How long the lease outlives a node that died holding it; renewed every third.
        #[arg(long, default_value = "30s", value_parser = run_once::parse_duration)]
        ttl: std::time::Duration,
        /// How long to wait for a lease another node holds before giving up.
        #[arg(long, default_value = "0s", value_parser = parse_wait)]
        wait: std::time::Duration,
        /// Say why COMMAND did not run (by default fleetctl stays silent for cron).
        #[arg(long, short)]
        verbose: bool,
        /// The job and its arguments, after --.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Copy sessions into a Fleet store, keeping each one's remaining lifetime: from PHP's
    /// files handler (files:///var/lib/php/sessions) or any store URL (phpredis keys with
    /// its prefix, MySQL). Expired sessions are skipped and sessions already in --to are
    /// never overwritten, so it can run again after the switch.
    Copy {
        /// files:///path/to/sessions, or a store URL written as session.save_path.
        #[arg(long)]
        from: String,
        /// The Fleet store, written as session.save_path.
        #[arg(long)]
        to: String,
        /// session.gc_maxlifetime of the source, in seconds: a file session lives this long
        /// after its last write; also the lifetime of source sessions stored without expiry.
        #[arg(long, default_value_t = 1440)]
        max_lifetime: u64,
        /// Count what would be copied; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect a store's sessions: count, list, show ID, destroy ID.
    Sessions {
        /// The store, written as session.save_path.
        #[arg(long)]
        store: String,
        /// Print JSON instead of text.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: sessions::Action,
    },
    /// Delete expired sessions from a MySQL/MariaDB store now, in bounded batches, and
    /// print how many were deleted (Redis expires sessions by itself).
    Gc {
        /// The store, written as session.save_path (e.g.
        /// "mysql://sessions@db/app?password_file=/run/secrets/db").
        #[arg(long)]
        store: String,
    },
}

fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    match text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
    {
        "0" => Ok(std::time::Duration::ZERO),
        _ => run_once::parse_duration(text),
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::RunOnce {
            store,
            name,
            every,
            ttl,
            wait,
            verbose,
            command,
        } => {
            let job = run_once::RunOnce {
                store,
                name,
                every,
                ttl,
                wait,
                verbose,
                command,
            };
            match job.run() {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("fleetctl: {}", advice::report(&*e));
                    ExitCode::from(1)
                }
            }
        }
        Command::Copy {
            from,
            to,
            max_lifetime,
            dry_run,
            json,
        } => {
            let job = copy::Copy {
                from,
                to,
                max_lifetime: std::time::Duration::from_secs(max_lifetime),
                dry_run,
            };
            match job.run() {
                Ok(counts) => {
                    if json {
                        println!("{}", counts.json(dry_run));
                    } else {
                        println!("{}", counts.summary(dry_run));
                    }
                    if counts.failed == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("fleetctl: {}", advice::report(&*e));
                    ExitCode::from(1)
                }
            }
        }
        Command::Sessions {
            store,
            json,
            action,
        } => match sessions::run(&store, action, json) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("fleetctl: {}", advice::report(&*e));
                ExitCode::from(1)
            }
        },
        Command::Gc { store } => match gc(&store) {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("fleetctl: {}", advice::report(&*e));
                ExitCode::from(1)
            }
        },
        Command::Schema {
            table,
            no_procedures,
        } => {
            // The name goes into the DDL as it is, so it gets the check table= gets, applied
            // to the name itself: splicing it into a save_path to parse would let `&` and
            // %-escapes change what is checked.
            match fleet_core::config::validate_table_name(&table) {
                Ok(table) => {
                    print!("{}", fleet_core::schema_script(&table, !no_procedures));
                    ExitCode::SUCCESS
                }
                Err(fleet_core::ConfigError::Invalid { reason, .. }) => {
                    eprintln!("fleetctl: --table {table:?}: {reason}");
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("fleetctl: --table {table:?}: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Deletes every expired session of `save_path`'s store; says how many.
fn gc(save_path: &str) -> Result<String, Box<dyn std::error::Error>> {
    use fleet_core::BackendConfig;
    let config = fleet_core::parse_save_path(save_path)?;
    let BackendConfig::MySql(_) = &config.backend else {
        return Ok(format!(
            "{}: Redis expires sessions by itself; nothing to delete",
            config.endpoint()
        ));
    };
    let mut store = fleet_core::open_store(&config, fleet_core::Timeouts::default())?;
    let mut deleted = 0;
    // Each call deletes for a bounded time; a backlog takes several.
    loop {
        let batch = store.gc(std::time::Duration::ZERO)?;
        deleted += batch;
        if batch == 0 {
            break;
        }
    }
    Ok(format!(
        "{}: deleted {deleted} expired sessions",
        store.endpoint()
    ))
}
