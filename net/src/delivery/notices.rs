//! Carries out the queue's durable writes: recipient state changes, and with them
//! the notice the queue asked for — built by core from the original message, its one
//! recipient (the original sender) routed by core's router and placed like any
//! accepted recipient — committed in one transaction, so that a failure is never
//! recorded without its notice nor a notice sent without its failure.

use crate::clock;
use crate::queue_id;
use crate::routing;
use crate::store::{IncomingMessage, Store, StoreError};
use sluice_core::node::{self, NoticePlaced, NoticeSettings, NoticeStart, PlacementPolicy};
use sluice_core::notice::NoticeRequest;
use sluice_core::queue::{QueuedMessage, RecipientChange};
use sluice_core::router::RouterConfig;

/// How notices are written and placed.
#[derive(Debug)]
pub struct NoticeWriter {
    /// Who reports, and how much of the original goes back (`[queue]` section).
    pub settings: NoticeSettings,
    pub router: RouterConfig,
    pub placement: PlacementPolicy,
}

impl NoticeWriter {
    /// Writes `changes` of `queue_id` and, when asked, the notice, in one transaction;
    /// with `remove` (the queue's last decision about the message) the message is
    /// deleted instead of its changes being written. The notice's queue record when
    /// it has recipients for the queue (an external sender, or one on another
    /// backend); `None` when there is no notice or it went straight into a local
    /// mailbox.
    pub async fn persist(
        &self,
        store: &Store,
        queue_id: &str,
        changes: &[RecipientChange],
        request: Option<NoticeRequest>,
        remove: bool,
    ) -> Result<Option<QueuedMessage>, StoreError> {
        let notice = match request {
            Some(request) => self.build(store, queue_id, &request).await?,
            None => None,
        };
        if remove {
            store.finish_queued(queue_id, notice.as_ref()).await?;
        } else {
            store
                .persist_queue(queue_id, changes, notice.as_ref())
                .await?;
        }
        Ok(notice.and_then(|message| node::queued_part(&message)))
    }

    /// The notice as an accepted message, or `None` when its recipient is refused
    /// for good (the sender's local address no longer exists): a notice that cannot
    /// be delivered is dropped, never answered with another notice.
    async fn build(
        &self,
        store: &Store,
        queue_id: &str,
        request: &NoticeRequest,
    ) -> Result<Option<IncomingMessage>, StoreError> {
        let original = store.queued_message(queue_id).await?;
        let notice_id = queue_id::next();
        let now_ms = clock::unix_millis();
        let start = node::start_notice(request, &original.data, &self.settings, notice_id, now_ms)
            .map_err(|error| StoreError::Invalid {
                what: "delivery notice",
                reason: error.to_string(),
            })?;
        let pending = match start {
            NoticeStart::Route(pending) => pending,
            NoticeStart::NotAnAddress { recipient } => {
                tracing::warn!(%recipient, "a notice's recipient is not an address; dropped");
                return Ok(None);
            }
        };
        let recipient = pending.check.recipient.to_string();
        let route = routing::route(store.clone(), self.router.clone(), pending.check.clone()).await;
        match pending.place(&route, &self.placement) {
            NoticePlaced::Message(message) => Ok(Some(message)),
            NoticePlaced::Dropped(refusal) => {
                tracing::warn!(%recipient, ?refusal, "a notice's recipient is refused; notice dropped");
                Ok(None)
            }
            NoticePlaced::NotNow(reason) => Err(StoreError::Invalid {
                what: "notice recipient",
                reason: format!("cannot be routed now: {reason:?}"),
            }),
        }
    }
}
