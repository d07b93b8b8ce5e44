//! Entries, their hash rule, and the incremental verifier.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Domain separation for the entry hash; a new hash rule gets a new tag.
const HASH_TAG: &[u8] = b"callvault-audit-v1\0";

/// An entry to append, before the chain gives it a position and a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it: a token name, a JWT subject, `system`, or `cli:<user>`.
    pub actor: String,
    /// What was done, e.g. `recording.play`, `key.rotate`.
    pub action: String,
    /// What it was done to, e.g. a recording id or a hold reference.
    pub subject: String,
    /// Why, as the actor gave it.
    pub reason: Option<String>,
    /// Further facts as a JSON object text; hashed exactly as stored.
    pub details: String,
}

impl NewAuditEntry {
    /// An entry with no reason and empty details.
    pub fn new(
        at: DateTime<Utc>,
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
    ) -> Self {
        Self {
            at,
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            reason: None,
            details: "{}".to_owned(),
        }
    }

    /// Sets the reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the details from a JSON value.
    pub fn details(mut self, details: &serde_json::Value) -> Self {
        self.details = details.to_string();
        self
    }
}

/// An entry as stored: its position, content, the hash of the entry before, and its own hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// The content.
    pub entry: NewAuditEntry,
    /// The hash of the entry at `seq - 1`, or [`GENESIS_HASH`] for the first.
    pub prev_hash: [u8; 32],
    /// The hash of this entry: SHA-256 over a tag, `seq`, `prev_hash` and every content field.
    pub hash: [u8; 32],
}

/// The last entry of a chain: what a new entry links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// The last entry's position (0 for an empty chain).
    pub seq: u64,
    /// The last entry's hash ([`GENESIS_HASH`] for an empty chain).
    pub hash: [u8; 32],
}

impl ChainHead {
    /// The head of an empty chain.
    pub const EMPTY: ChainHead = ChainHead {
        seq: 0,
        hash: GENESIS_HASH,
    };
}

impl AuditEntry {
    /// Gives `entry` the next position after `head` and computes its hash.
    pub fn chained(head: ChainHead, entry: NewAuditEntry) -> AuditEntry {
        let seq = head.seq + 1;
        let hash = content_hash(seq, &head.hash, &entry);
        AuditEntry {
            seq,
            entry,
            prev_hash: head.hash,
            hash,
        }
    }

    /// This entry as the head of its chain.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }
}

fn content_hash(seq: u64, prev: &[u8; 32], e: &NewAuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(HASH_TAG);
    h.update(seq.to_be_bytes());
    h.update(prev);
    let at = e.at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let reason = e.reason.as_deref();
    for field in [
        Some(at.as_str()),
        Some(e.actor.as_str()),
        Some(e.action.as_str()),
        Some(e.subject.as_str()),
        reason,
        Some(e.details.as_str()),
    ] {
        match field {
            // a length prefix per field, so that no two different entries hash the same bytes
            Some(s) => {
                h.update([1]);
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            }
            None => h.update([0]),
        }
    }
    h.finalize().into()
}

/// The first place where a chain is not what was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The entry's content or stored hash does not match its hash.
    #[error("audit entry {seq} was altered: its content does not match its hash")]
    Altered {
        /// The altered entry.
        seq: u64,
    },
    /// Entries are missing: positions jump, or an entry links to one that is not there.
    #[error("audit entries are missing before entry {seq} (the entry before it is {after})")]
    Missing {
        /// The first entry after the gap.
        seq: u64,
        /// The last entry before the gap (0 when the gap is at the start).
        after: u64,
    },
    /// The entry links to an entry that comes later in the stored order.
    #[error("audit entry {seq} is out of order: it links to an entry stored after it")]
    OutOfOrder {
        /// The entry found out of place.
        seq: u64,
    },
    /// The newest entries are gone: the chain ends before the entry a checkpoint vouches for.
    #[error(
        "audit entries {from} to {to} are missing: the chain ends at entry {}, but a signed checkpoint covers entry {to}",
        .from - 1
    )]
    Truncated {
        /// The first missing entry (one past the chain's last).
        from: u64,
        /// The checkpoint's entry, the last known to have existed.
        to: u64,
    },
    /// The entry a checkpoint vouches for has another hash: the chain was cut and written again.
    #[error(
        "audit entry {seq} differs from the signed checkpoint: entries up to {seq} were replaced after it was signed"
    )]
    Diverged {
        /// The checkpoint's entry.
        seq: u64,
    },
}

/// Walks a chain one entry at a time, in stored order, and names the first break.
///
/// Memory does not grow with the chain: after a link break it only looks for the entry the broken link
/// points to, to tell a reordering from a removal.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    head: Option<ChainHead>,
    count: u64,
    first_break: Option<PendingBreak>,
    /// Heads the chain must reach (from signed checkpoints), each with the hash found at its
    /// position.
    checkpoints: Vec<(ChainHead, Option<[u8; 32]>)>,
}

#[derive(Debug)]
struct PendingBreak {
    seq: u64,
    after: u64,
    wanted: [u8; 32],
    resolved: Option<ChainBreak>,
}

impl ChainVerifier {
    /// A verifier at the start of a chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also requires the chain to reach `head` (a checkpoint's, whose signature the caller
    /// checked): [`finish`](Self::finish) then fails with [`ChainBreak::Truncated`] when the chain
    /// ends before `head.seq`, and [`ChainBreak::Diverged`] when the entry there has another hash.
    /// Several checkpoints may be given; the first that fails is named.
    pub fn against(mut self, head: ChainHead) -> Self {
        self.checkpoints.push((head, None));
        self
    }

    /// Checks the next stored entry.
    pub fn push(&mut self, e: &AuditEntry) {
        self.count += 1;
        for (cp, found) in &mut self.checkpoints {
            if e.seq == cp.seq && found.is_none() {
                *found = Some(e.hash);
            }
        }
        let recomputed = content_hash(e.seq, &e.prev_hash, &e.entry);
        if let Some(pending) = &mut self.first_break {
            // the stored hash counts too: an entry whose position was changed no longer matches
            // its content, but still carries the hash its successor links to
            if pending.resolved.is_none()
                && (recomputed == pending.wanted || e.hash == pending.wanted)
            {
                pending.resolved = Some(ChainBreak::OutOfOrder { seq: pending.seq });
            }
            return;
        }
        let head = self.head.unwrap_or(ChainHead::EMPTY);
        let linked = e.prev_hash == head.hash;
        if recomputed != e.hash && linked {
            self.first_break = Some(PendingBreak {
                seq: e.seq,
                after: head.seq,
                wanted: GENESIS_HASH,
                resolved: Some(ChainBreak::Altered { seq: e.seq }),
            });
        } else if !linked || e.seq != head.seq + 1 {
            self.first_break = Some(PendingBreak {
                seq: e.seq,
                after: head.seq,
                wanted: e.prev_hash,
                resolved: None,
            });
        }
        self.head = Some(e.head());
    }

    /// The verdict: the head of an intact chain and its length, or the first break.
    pub fn finish(self) -> Result<(ChainHead, u64), ChainBreak> {
        match self.first_break {
            None => {
                let head = self.head.unwrap_or(ChainHead::EMPTY);
                for (cp, found) in self.checkpoints {
                    if cp.seq > head.seq {
                        return Err(ChainBreak::Truncated {
                            from: head.seq + 1,
                            to: cp.seq,
                        });
                    }
                    let reached = if cp.seq == 0 {
                        cp.hash == GENESIS_HASH
                    } else {
                        found == Some(cp.hash)
                    };
                    if !reached {
                        return Err(ChainBreak::Diverged { seq: cp.seq });
                    }
                }
                Ok((head, self.count))
            }
            Some(PendingBreak {
                resolved: Some(b), ..
            }) => Err(b),
            Some(PendingBreak { seq, after, .. }) => Err(ChainBreak::Missing { seq, after }),
        }
    }
}

impl fmt::Display for ChainHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, hex::encode(self.hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let t0 = DateTime::from_timestamp(1_790_000_000, 0).expect("valid time");
        let mut head = ChainHead::EMPTY;
        (0..n)
            .map(|i| {
                let e = NewAuditEntry::new(
                    t0 + chrono::Duration::seconds(i as i64),
                    "alice",
                    "recording.play",
                    format!("rec-{i}"),
                )
                .reason("complaint C-1");
                let e = AuditEntry::chained(head, e);
                head = e.head();
                e
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry]) -> Result<(ChainHead, u64), ChainBreak> {
        let mut v = ChainVerifier::new();
        entries.iter().for_each(|e| v.push(e));
        v.finish()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify(&c), Ok((c[4].head(), 5)));
        assert_eq!(verify(&[]), Ok((ChainHead::EMPTY, 0)));
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut c = chain(5);
        c[2].entry.reason = Some("nothing to see".into());
        assert_eq!(verify(&c), Err(ChainBreak::Altered { seq: 3 }));
        let mut c = chain(5);
        c[3].entry.reason = None;
        assert_eq!(verify(&c), Err(ChainBreak::Altered { seq: 4 }));
    }

    #[test]
    fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
        let mut c = chain(5);
        c[1].entry.actor = "mallory".into();
        c[1].hash = content_hash(c[1].seq, &c[1].prev_hash, &c[1].entry);
        assert_eq!(verify(&c), Err(ChainBreak::Missing { seq: 3, after: 2 }));
    }

    #[test]
    fn a_deleted_entry_is_named() {
        let mut c = chain(5);
        c.remove(2);
        assert_eq!(verify(&c), Err(ChainBreak::Missing { seq: 4, after: 2 }));
        let mut c = chain(5);
        c.remove(0);
        assert_eq!(verify(&c), Err(ChainBreak::Missing { seq: 2, after: 0 }));
    }

    #[test]
    fn a_checkpoint_catches_the_newest_entries_cut_off() {
        let c = chain(6);
        let cp = c[5].head();
        let verify_against = |entries: &[AuditEntry], cp: ChainHead| {
            let mut v = ChainVerifier::new().against(cp);
            entries.iter().for_each(|e| v.push(e));
            v.finish()
        };
        assert_eq!(verify_against(&c, cp), Ok((cp, 6)));
        // a checkpoint of an earlier head passes too: the chain grew since
        assert_eq!(verify_against(&c, c[2].head()), Ok((cp, 6)));
        assert_eq!(
            verify_against(&[], ChainHead::EMPTY),
            Ok((ChainHead::EMPTY, 0))
        );
        // the last three deleted: intact on its own, caught against the checkpoint
        assert_eq!(verify(&c[..3]), Ok((c[2].head(), 3)));
        assert_eq!(
            verify_against(&c[..3], cp),
            Err(ChainBreak::Truncated { from: 4, to: 6 })
        );
        assert_eq!(
            ChainBreak::Truncated { from: 4, to: 6 }.to_string(),
            "audit entries 4 to 6 are missing: the chain ends at entry 3, but a signed checkpoint covers entry 6"
        );
        assert_eq!(
            verify_against(&[], cp),
            Err(ChainBreak::Truncated { from: 1, to: 6 })
        );
        // cut and written again past the checkpoint: the entry at its position has another hash
        let mut rewritten = c[..3].to_vec();
        let mut head = rewritten[2].head();
        for i in 0..4 {
            let e = AuditEntry::chained(
                head,
                NewAuditEntry::new(rewritten[2].entry.at, "mallory", "noop", format!("x{i}")),
            );
            head = e.head();
            rewritten.push(e);
        }
        assert_eq!(
            verify_against(&rewritten, cp),
            Err(ChainBreak::Diverged { seq: 6 })
        );
        // a break inside the chain is still named first
        let mut broken = c.clone();
        broken.remove(1);
        assert_eq!(
            verify_against(&broken, cp),
            Err(ChainBreak::Missing { seq: 3, after: 1 })
        );
    }

    #[test]
    fn a_reordered_entry_is_named() {
        let mut c = chain(5);
        c.swap(1, 3);
        assert_eq!(verify(&c), Err(ChainBreak::OutOfOrder { seq: 4 }));
        // positions renumbered as a database would after swapping two rows' seq
        let mut c = chain(5);
        c.swap(1, 2);
        c[1].seq = 2;
        c[2].seq = 3;
        assert_eq!(verify(&c), Err(ChainBreak::OutOfOrder { seq: 2 }));
    }
}
