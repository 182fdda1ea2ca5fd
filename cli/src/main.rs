//! `fleetctl`: operator commands for Fleet.
//!
//! - `schema`: prints the DDL of the MySQL/MariaDB session table, for DBAs who create it
//!   themselves and give Fleet's user only SELECT, INSERT, UPDATE and DELETE.

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
    /// Print the CREATE TABLE statement of the MySQL/MariaDB session table.
    Schema {
        /// The table name, as given by table= in session.save_path.
        #[arg(long, default_value = fleet_core::config::DEFAULT_TABLE)]
        table: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Schema { table } => {
            // The same validation save_path applies, so the printed DDL is what Fleet expects.
            match fleet_core::parse_save_path(&format!("mysql://localhost/db?table={table}")) {
                Ok(_) => {
                    println!("{};", fleet_core::mysql::create_table_sql(&table));
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
