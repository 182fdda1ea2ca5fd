//! `fleetctl`: operator commands for Fleet.
//!
//! - `schema`: prints the DDL of the MySQL/MariaDB session table and Fleet's stored
//!   procedures, for DBAs who create them and give Fleet's user only SELECT, INSERT,
//!   UPDATE, DELETE (and EXECUTE).

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
}

fn main() -> ExitCode {
    match Cli::parse().command {
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
