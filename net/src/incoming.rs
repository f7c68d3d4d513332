//! Where a connection came from. What an accepted message becomes is decided in
//! core (`sluice_core::node::accepted`); the driver supplies only this client's
//! address and the reverse DNS name a lookup running beside the session finds.

use sluice_core::smtp::address::Domain;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// Where the connection came from, as the Received header names it.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub address: SocketAddr,
    /// The forward-confirmed reverse DNS name of the address, once a lookup running
    /// beside the session has found one; a message accepted before that (or without
    /// a name) is traced by its address literal alone.
    pub name: Arc<OnceLock<Domain>>,
}

impl ClientInfo {
    pub fn new(address: SocketAddr) -> ClientInfo {
        ClientInfo {
            address,
            name: Arc::default(),
        }
    }
}
