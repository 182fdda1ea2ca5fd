//! `fleetctl`: operator commands for Fleet.
//!
//! - `schema`: prints the DDL of the MySQL/MariaDB session table and Fleet's stored
//!   procedures, for DBAs who create them and give Fleet's user only SELECT, INSERT,
//!   UPDATE, DELETE (and EXECUTE).
//! - `gc`: deletes expired sessions now, for sites that prefer a crontab line to
//!   `gc_interval`.

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
    /// Delete expired sessions from a MySQL/MariaDB store now, in bounded batches, and
    /// print how many were deleted (Redis expires sessions by itself).
    Gc {
        /// The store, written as session.save_path (e.g.
        /// "mysql://sessions@db/app?password_file=/run/secrets/db").
        #[arg(long)]
        store: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Gc { store } => match gc(&store) {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("fleetctl: {e}");
                ExitCode::from(1)
            }
        },
        Command::Schema {
            table,
            no_procedures,
        } => {
            // The same validation save_path applies, so the printed DDL is what Fleet expects.
            match fleet_core::parse_save_path(&format!("mysql://localhost/db?table={table}")) {
                Ok(_) => {
                    print!(
                        "{}",
                        fleet_core::mysql::schema_script(&table, !no_procedures)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fleetctl: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Deletes every expired session of `save_path`'s store; says how many.
fn gc(save_path: &str) -> Result<String, Box<dyn std::error::Error>> {
    use fleet_core::{SessionStore, StoreConfig};
    let config = fleet_core::parse_save_path(save_path)?;
    let StoreConfig::MySql(mysql) = &config else {
        return Ok(format!(
            "{}: Redis expires sessions by itself; nothing to delete",
            config.endpoint()
        ));
    };
    let mut store = fleet_core::mysql::MySqlStore::new(mysql, fleet_core::Timeouts::default())?;
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
