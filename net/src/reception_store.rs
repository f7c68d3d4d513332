//! What the SMTP driver needs from storage — checking credentials, answering the
//! router's directory lookups, making an accepted message durable — as a trait:
//! the production `Store` implements it, and tests (and later the simulator's
//! drivers) can supply their own.
//! Arguments are owned so that the futures can outlive the session's borrow.

use crate::store::{IncomingMessage, Store, StoreError};
use sluice_core::directory::{DirectoryAnswer, DirectoryQuery};
use std::future::Future;

/// The storage one reception (an SMTP or LMTP connection) is answered from.
pub trait ReceptionStore: Clone + Send + Sync + 'static {
    /// The user's canonical address if the password is right.
    fn verify_credentials(
        &self,
        username: String,
        password: String,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send + 'static;

    /// Answers one directory lookup of the router.
    fn query(
        &self,
        query: DirectoryQuery,
    ) -> impl Future<Output = Result<DirectoryAnswer, StoreError>> + Send + 'static;

    /// Makes a message durable; `Ok` is the permission to answer 250.
    fn accept(
        &self,
        message: IncomingMessage,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static;
}

impl ReceptionStore for Store {
    fn verify_credentials(
        &self,
        username: String,
        password: String,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send + 'static {
        let store = self.clone();
        async move { store.verify_credentials(&username, &password).await }
    }

    fn query(
        &self,
        query: DirectoryQuery,
    ) -> impl Future<Output = Result<DirectoryAnswer, StoreError>> + Send + 'static {
        let store = self.clone();
        async move { store.query(&query).await }
    }

    fn accept(
        &self,
        message: IncomingMessage,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let store = self.clone();
        async move { store.accept(&message).await }
    }
}
