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
use super::container::framed::{
    FRAMED_HEADER_LEN, FramedHeader, FramedLayout, TRAILER_TAIL, open_chunks, version_of,
};
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
    /// Format version 2 (compressed chunks): its full header bytes and layout.
    framed: Option<(Vec<u8>, FramedLayout)>,
}

impl ObjectReader {
    /// Fetches the header (one ranged GET, which also tells the object's size) and checks it; for a
    /// version 2 container, also its trailer (one or two GETs of the object's end).
    pub async fn open(store: Arc<dyn ObjectStore>, path: Path) -> Result<Self, VaultError> {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(0..FRAMED_HEADER_LEN as u64)),
            ..GetOptions::default()
        };
        let got = store.get_opts(&path, opts).await?;
        let object_len = got.meta.size;
        let head = got.bytes().await?;
        let mut header_bytes = [0u8; HEADER_LEN];
        if version_of(&head)? == super::container::framed::FORMAT_VERSION_FRAMED {
            let header = FramedHeader::decode(&head)?;
            header_bytes.copy_from_slice(&head[..HEADER_LEN]);
            let tail_start = object_len
                .checked_sub(TRAILER_TAIL as u64)
                .ok_or(VaultError::Truncated)?;
            let tail = store.get_range(&path, tail_start..object_len).await?;
            let trailer_len = FramedLayout::trailer_len(&tail)?;
            let start = object_len
                .checked_sub(trailer_len)
                .filter(|s| *s >= FRAMED_HEADER_LEN as u64)
                .ok_or(VaultError::Truncated)?;
            let trailer = store.get_range(&path, start..object_len).await?;
            let framed = FramedLayout::new(header.clone(), object_len, &trailer)?;
            // a version 2 object has no fixed layout: this one (of an empty version 1 segment) only
            // carries the header, and reads go through `framed`
            let layout = Layout::new(
                header.base().clone(),
                (HEADER_LEN + super::container::TAG_LEN) as u64,
            )?;
            return Ok(Self {
                store,
                path,
                header_bytes,
                layout,
                framed: Some((head[..FRAMED_HEADER_LEN].to_vec(), framed)),
            });
        }
        let header = Header::decode(&head)?;
        header_bytes.copy_from_slice(&head[..HEADER_LEN]);
        let layout = Layout::new(header, object_len)?;
        Ok(Self {
            store,
            path,
            header_bytes,
            layout,
            framed: None,
        })
    }

    /// Where everything is in a version 1 object: header, plaintext length, chunk count. For a
    /// version 2 object only its header is meaningful: see [`framed`](Self::framed).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The header fields every version has.
    pub fn header(&self) -> &Header {
        self.layout.header()
    }

    /// The layout of a version 2 (compressed) object.
    pub fn framed(&self) -> Option<&FramedLayout> {
        self.framed.as_ref().map(|(_, l)| l)
    }

    /// Length of the segment's audio as played, in bytes: the plaintext of a version 1 object, the
    /// decoded audio of a version 2 one.
    pub fn audio_len(&self) -> u64 {
        match &self.framed {
            Some((_, l)) => l.decoded_len(),
            None => self.layout.plaintext_len(),
        }
    }

    /// Decrypts the chunks `chunks` of a version 2 object (fetched in one ranged GET): each
    /// chunk's plaintext, in order.
    pub async fn read_chunks(
        &self,
        key: &DataKey,
        chunks: Range<u64>,
    ) -> Result<Vec<Plaintext>, VaultError> {
        let Some((header, layout)) = &self.framed else {
            return Err(VaultError::BadHeader {
                reason: "not a version 2 container",
            });
        };
        if chunks.start > chunks.end || chunks.end > layout.chunk_count() {
            return Err(VaultError::Range {
                start: chunks.start,
                end: chunks.end,
                len: layout.chunk_count(),
            });
        }
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let span = layout.object_range(chunks.clone());
        let sealed = self.store.get_range(&self.path, span.clone()).await?;
        if sealed.len() as u64 != span.end - span.start {
            return Err(VaultError::Truncated);
        }
        open_chunks(layout, &key.cipher(), header, chunks.start, &sealed)
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
        if self.framed.is_some() {
            return Err(VaultError::BadHeader {
                reason: "a version 2 container is read by chunks",
            });
        }
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
