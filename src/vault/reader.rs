//! Ranged reads of a sealed segment straight from the object store.
//!
//! This module owns fetching: one ranged GET for the header (which also reports the object's size),
//! then only the chunks a plaintext range needs, a bounded batch at a time, so a one-hour recording is
//! never held whole in memory to serve a few seconds of it. It must not write to the store.
//!
//! Decryption runs inline: a batch is at most [`BATCH_CHUNKS`] chunks (1 MiB at the default chunk
//! size, well under a millisecond of AES-GCM), too little to be worth a blocking-pool hop.

use std::ops::Range;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use zeroize::Zeroizing;

use super::VaultError;
use super::container::{HEADER_LEN, Header, Layout, Plaintext, decrypt_span, plaintext};
use super::keys::DataKey;

/// Most chunks fetched and decrypted in one step of a ranged read.
pub const BATCH_CHUNKS: u64 = 64;

/// A sealed segment in the object store, its header read, ready for ranged reads.
#[derive(Debug)]
pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    header_bytes: [u8; HEADER_LEN],
    layout: Layout,
}

impl ObjectReader {
    /// Fetches the header (one ranged GET, which also tells the object's size) and checks it.
    pub async fn open(store: Arc<dyn ObjectStore>, path: Path) -> Result<Self, VaultError> {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(0..HEADER_LEN as u64)),
            ..GetOptions::default()
        };
        let got = store.get_opts(&path, opts).await?;
        let object_len = got.meta.size;
        let head = got.bytes().await?;
        let header = Header::decode(&head)?;
        let mut header_bytes = [0u8; HEADER_LEN];
        header_bytes.copy_from_slice(&head[..HEADER_LEN]);
        let layout = Layout::new(header, object_len)?;
        Ok(Self {
            store,
            path,
            header_bytes,
            layout,
        })
    }

    /// Where everything is in the object: header, plaintext length, chunk count.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The object's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decrypts exactly the plaintext bytes `range`, fetching only the chunks that hold them.
    pub async fn read_range(
        &self,
        key: &DataKey,
        range: Range<u64>,
    ) -> Result<Plaintext, VaultError> {
        let chunks = self.layout.chunks_for(range.clone())?;
        let cipher = key.cipher();
        let want = usize::try_from(range.end - range.start).map_err(|_| VaultError::TooLarge)?;
        let mut out = Zeroizing::new(Vec::with_capacity(want));
        let mut first = chunks.start;
        while first < chunks.end {
            let end = (first + BATCH_CHUNKS).min(chunks.end);
            let span = self.layout.object_range(first..end);
            let sealed = self.store.get_range(&self.path, span.clone()).await?;
            if sealed.len() as u64 != span.end - span.start {
                // The object changed under us (shorter than its size said): treat as cut short.
                return Err(VaultError::Truncated);
            }
            decrypt_span(
                &self.layout,
                &cipher,
                &self.header_bytes,
                first,
                &sealed,
                &range,
                &mut out,
            )?;
            first = end;
        }
        Ok(plaintext(out))
    }

    /// Decrypts the whole segment (fetched in batches; the result holds all of it).
    pub async fn read_all(&self, key: &DataKey) -> Result<Plaintext, VaultError> {
        let len = self.layout.plaintext_len();
        if len == 0 {
            // Nothing to return, but still authenticate the empty final chunk.
            let span = self.layout.object_range(0..1);
            let sealed = self.store.get_range(&self.path, span).await?;
            let mut out = Zeroizing::new(Vec::new());
            decrypt_span(
                &self.layout,
                &key.cipher(),
                &self.header_bytes,
                0,
                &sealed,
                &(0..0),
                &mut out,
            )?;
            return Ok(plaintext(out));
        }
        self.read_range(key, 0..len).await
    }
}
