//! The daemon's notary: signs the chain head at an interval, on request and at shutdown, writes
//! each checkpoint to the log (one line, which journald keeps outside the database) and stores it
//! in the catalog.
//!
//! This is the one part of [`audit`](super) that does I/O; it reads the head through the
//! [`Catalog`] and never appends to the chain (a checkpoint is not an audit entry, or each would
//! move the head it vouches for).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::Checkpoint;
use crate::catalog::{Catalog, CatalogError};
use crate::domain::Clock;
use crate::export::BundleSigner;

/// Why a checkpoint is taken; named in its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The configured interval passed.
    Interval,
    /// The daemon is stopping.
    Shutdown,
    /// Someone asked (`GET /v1/audit/head`, `callvault audit checkpoint`).
    Request,
    /// An export bundle is being written, which carries it.
    Export,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Interval => "interval",
            Trigger::Shutdown => "shutdown",
            Trigger::Request => "request",
            Trigger::Export => "export",
        }
    }
}

/// Signs, logs and stores checkpoints. A cheap `Clone` of handles.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    catalog: Arc<dyn Catalog>,
    signer: Arc<BundleSigner>,
    clock: Arc<dyn Clock>,
}

impl Checkpointer {
    /// A checkpointer over `catalog`, signing with `signer` (the bundle signing key).
    pub fn new(
        catalog: Arc<dyn Catalog>,
        signer: Arc<BundleSigner>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            catalog,
            signer,
            clock,
        }
    }

    /// A checkpoint of the chain head as it is now.
    ///
    /// When the newest stored checkpoint already covers this head, that one is returned, and
    /// nothing is signed or stored (the interval does not fill the table while nothing happens);
    /// except at [`Trigger::Shutdown`], which always signs, logs and stores. A new checkpoint is
    /// logged before it is stored, so the copy outside the database exists even when the
    /// catalog write fails (and the error is returned).
    pub async fn checkpoint(&self, trigger: Trigger) -> Result<Checkpoint, CatalogError> {
        let head = self.catalog.audit_head().await?;
        let latest = self
            .catalog
            .latest_checkpoint()
            .await?
            .filter(|l| l.public_key == self.signer.public_key().to_bytes());
        if let Some(latest) = &latest {
            if latest.seq > head.seq {
                // entries this daemon signed are gone: say so at once, not only at the next verify
                error!(
                    missing_from = head.seq + 1,
                    missing_to = latest.seq,
                    "the audit chain ends before its newest stored checkpoint: entries were removed"
                );
            } else if trigger != Trigger::Shutdown && latest.head() == head {
                return Ok(latest.clone());
            }
        }
        let cp = Checkpoint::sign(head, self.clock.now(), &self.signer);
        info!(
            seq = cp.seq,
            hash = %hex::encode(cp.hash),
            trigger = trigger.as_str(),
            checkpoint = %cp.to_document(),
            "audit checkpoint"
        );
        self.catalog.store_checkpoint(&cp).await?;
        Ok(cp)
    }

    /// Takes a checkpoint every `interval` (the first at once) until `shutdown`. The final
    /// checkpoint is the caller's to take, once everything that appends to the chain has stopped.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.checkpoint(Trigger::Interval).await {
                error!(error = %e, "cannot store the audit checkpoint; it is in the log line above, if signed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;
    use crate::audit::NewAuditEntry;
    use crate::catalog::SqliteCatalog;
    use crate::config::Secret;
    use crate::domain::ManualClock;

    #[tokio::test]
    async fn a_checkpoint_is_signed_only_when_the_head_moved_except_at_shutdown() {
        let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open_in_memory().expect("catalog"));
        let seed = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        let signer = Arc::new(
            BundleSigner::from_secret(&Secret::new(seed.into_bytes())).expect("a valid seed"),
        );
        let clock = ManualClock::new(
            chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("valid time"),
        );
        let cps = Checkpointer::new(
            Arc::clone(&catalog),
            Arc::clone(&signer),
            Arc::new(clock.clone()),
        );
        let first = cps.checkpoint(Trigger::Interval).await.expect("checkpoint");
        assert_eq!(first.seq, 0);
        let e = catalog
            .append_audit(NewAuditEntry::new(
                clock.now(),
                "alice",
                "token.create",
                "t1",
            ))
            .await
            .expect("append");
        clock.advance(chrono::Duration::seconds(60));
        let second = cps.checkpoint(Trigger::Request).await.expect("checkpoint");
        assert_eq!(second.head(), e.head());
        assert_eq!(second.verify(&signer.public_key()), Ok(()));
        clock.advance(chrono::Duration::seconds(60));
        assert_eq!(
            cps.checkpoint(Trigger::Interval).await.expect("checkpoint"),
            second,
            "nothing new is signed while the head stands still"
        );
        // a stored checkpoint ahead of the chain (entries removed) is reported, and a new one of
        // the shorter head is signed and stored beside it; the furthest stays the latest
        let ahead = Checkpoint::sign(
            crate::audit::ChainHead {
                seq: 5,
                hash: [5; 32],
            },
            clock.now(),
            &signer,
        );
        catalog.store_checkpoint(&ahead).await.expect("store");
        let shorter = cps.checkpoint(Trigger::Interval).await.expect("checkpoint");
        assert_eq!(shorter.head(), e.head());
        assert_eq!(
            catalog.latest_checkpoint().await.expect("read"),
            Some(ahead)
        );
        let last = cps.checkpoint(Trigger::Shutdown).await.expect("checkpoint");
        assert_eq!(last.head(), e.head());
        assert!(last.at > second.at, "shutdown signs again");
        assert_eq!(last.verify(&signer.public_key()), Ok(()));
    }
}
