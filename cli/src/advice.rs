//! What an operator can do about a store error, in fleetctl's terms (its `--store` URL):
//! fleet-core's messages state the facts and leave the advice to each program.

use std::error::Error;

use fleet_core::{ErrorKind, StoreError};

/// `e`'s message, followed by advice where it is a store error that has some.
pub fn report(e: &(dyn Error + 'static)) -> String {
    let advice = match e.downcast_ref::<StoreError>().map(StoreError::kind) {
        Some(ErrorKind::Connect) => ". Check that the server runs and the store URL points at it; raise connect_timeout= in the URL if it is only slow to accept",
        Some(ErrorKind::Tls) => ". Set tls_ca_file= in the store URL to the CA that signed the server certificate (tls_verify=0 skips verification)",
        Some(ErrorKind::TimedOut) => ". Raise timeout= in the store URL if the server is only slow",
        Some(ErrorKind::Auth) => ". Check the user and password given in the store URL (user=, password_file=, password_env=)",
        Some(ErrorKind::NotPrimary) => "; if this persists, give the primary in the store URL (its managed endpoint name, the sentinels, or a host list)",
        Some(ErrorKind::DamagedData) => ". Delete it (fleetctl sessions destroy) if it stays unreadable",
        _ => "",
    };
    format!("{e}{advice}")
}
