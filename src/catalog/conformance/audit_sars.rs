//! Conformance: signed audit checkpoints, and closing a subject access request with a reason.

use std::sync::Arc;

use base64::Engine;

use super::t;
use crate::audit::{ChainHead, Checkpoint, NewAuditEntry};
use crate::catalog::{Catalog, SarRow};
use crate::config::Secret;
use crate::export::BundleSigner;

fn signer() -> BundleSigner {
    let seed = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    BundleSigner::from_secret(&Secret::new(seed.into_bytes())).expect("a valid seed")
}

pub(crate) async fn checkpoints_are_kept_and_the_furthest_is_latest(c: Arc<dyn Catalog>) {
    assert_eq!(c.latest_checkpoint().await.expect("read"), None);
    let signer = signer();
    let mut heads = Vec::new();
    for i in 0..3 {
        let e = c
            .append_audit(NewAuditEntry::new(
                t(i),
                "alice",
                "token.create",
                format!("t{i}"),
            ))
            .await
            .expect("append");
        heads.push(e.head());
    }
    let second = Checkpoint::sign(heads[1], t(10), &signer);
    let third = Checkpoint::sign(heads[2], t(20), &signer);
    c.store_checkpoint(&third).await.expect("store");
    // a checkpoint of an earlier head stored later (another node's, or a slow one) is not latest
    c.store_checkpoint(&second).await.expect("store");
    let latest = c.latest_checkpoint().await.expect("read").expect("stored");
    assert_eq!(
        latest, third,
        "read back bit for bit, time to the microsecond"
    );
    assert_eq!(latest.verify(&signer.public_key()), Ok(()));
    // the same head signed again later: the newest of equals
    let again = Checkpoint::sign(heads[2], t(30), &signer);
    c.store_checkpoint(&again).await.expect("store");
    assert_eq!(c.latest_checkpoint().await.expect("read"), Some(again));
    // an empty chain can be checkpointed too
    let empty = Checkpoint::sign(ChainHead::EMPTY, t(40), &signer);
    c.store_checkpoint(&empty).await.expect("store");
    assert_eq!(
        c.latest_checkpoint().await.expect("read").map(|cp| cp.seq),
        Some(3)
    );
}

pub(crate) async fn sars_close_once_with_who_and_why(c: Arc<dyn Catalog>) {
    let sar = SarRow {
        reference: "SAR-9".into(),
        received_at: t(0),
        due_at: t(30 * 86_400),
        caller_tag: Some([4; 32]),
        actor: "cli:alice".into(),
        reason: "subject access request".into(),
        closed_at: None,
        closed_by: None,
        close_reason: None,
    };
    assert_eq!(c.record_sar(&sar).await.expect("record"), sar);
    assert!(
        c.close_sar_by("SAR-9", t(100), "cli:bob", "answered by post")
            .await
            .expect("close")
    );
    assert!(
        !c.close_sar_by("SAR-9", t(200), "cli:eve", "again")
            .await
            .expect("close"),
        "the first closing is kept"
    );
    assert!(!c.close_sar("SAR-9", t(300)).await.expect("close"));
    assert!(
        !c.close_sar_by("SAR-none", t(100), "cli:bob", "x")
            .await
            .expect("close")
    );
    let closed = c.sar("SAR-9").await.expect("read").expect("stored");
    assert_eq!(
        (
            closed.closed_at,
            closed.closed_by.as_deref(),
            closed.close_reason.as_deref()
        ),
        (Some(t(100)), Some("cli:bob"), Some("answered by post"))
    );
    assert!(c.open_sars(10).await.expect("list").is_empty());
}
