//! Sealing: the chunk nonce, one sealed chunk, and the streaming [`SegmentWriter`].

use std::fmt;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::{HEADER_LEN, Header, NONCE_PREFIX_LEN, TAG_LEN};
use crate::vault::VaultError;
use crate::vault::keys::DataKey;

/// The nonce of chunk `counter`.
pub(crate) fn chunk_nonce(prefix: &[u8; NONCE_PREFIX_LEN], counter: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Seals `plain` as chunk `counter` and appends ciphertext and tag to `out`.
pub(crate) fn seal_chunk(
    cipher: &Aes256Gcm,
    header: &[u8],
    prefix: &[u8; NONCE_PREFIX_LEN],
    counter: u32,
    last: bool,
    plain: &[u8],
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.extend_from_slice(plain);
    let nonce = chunk_nonce(prefix, counter, last);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), header, &mut out[start..])
        .expect("aes-gcm cannot fail on a chunk of at most 1 mib");
    out.extend_from_slice(&tag);
}

/// Seals a segment as its audio arrives: the header first ([`header_bytes`](Self::header_bytes)),
/// then each chunk as soon as it is full ([`append`](Self::append)), then the final chunk
/// ([`seal`](Self::seal)). Appending the returned bytes in order to a file yields a valid spool
/// file at every step, and the complete container after `seal`.
///
/// At most one chunk of plaintext is buffered, in memory wiped on drop.
pub struct SegmentWriter {
    header: Header,
    header_bytes: [u8; HEADER_LEN],
    cipher: Aes256Gcm,
    buf: Zeroizing<Vec<u8>>,
    next: u32,
    appended: u64,
}

impl fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("header", &self.header)
            .field("chunks_sealed", &self.next)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl SegmentWriter {
    /// A writer for a segment with this header, sealing under `key`.
    pub fn new(header: Header, key: &DataKey) -> Self {
        let chunk = header.chunk_size as usize;
        Self {
            header_bytes: header.encode(),
            header,
            cipher: key.cipher(),
            buf: Zeroizing::new(Vec::with_capacity(chunk)),
            next: 0,
            appended: 0,
        }
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The header's bytes: the first thing to write.
    pub fn header_bytes(&self) -> &[u8; HEADER_LEN] {
        &self.header_bytes
    }

    /// Plaintext bytes appended so far.
    pub fn plaintext_len(&self) -> u64 {
        self.appended
    }

    /// Number of non-final chunks sealed so far.
    pub fn chunks_sealed(&self) -> u32 {
        self.next
    }

    /// Adds audio; returns the sealed chunks that became full (possibly none), ready to append
    /// after what was returned before. Fails, changing nothing, if the segment would outgrow the
    /// chunk counter.
    pub fn append(&mut self, data: &[u8]) -> Result<Vec<u8>, VaultError> {
        let full = (self.buf.len() + data.len()) / self.header.chunk_size as usize;
        let mut out = Vec::with_capacity(full * (self.header.chunk_size as usize + TAG_LEN));
        self.append_to(data, &mut out)?;
        Ok(out)
    }

    /// Like [`append`](Self::append), but appends the sealed chunks to `out`, so a caller can reuse
    /// one buffer for the spool writes.
    pub fn append_to(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), VaultError> {
        let cs = self.header.chunk_size as usize;
        let full = (self.buf.len() + data.len()) / cs;
        // The last counter value is kept for the final chunk.
        if u64::from(self.next) + full as u64 >= u64::from(u32::MAX) {
            return Err(VaultError::TooLarge);
        }
        out.reserve(full * (cs + TAG_LEN));
        let mut rest = data;
        while !rest.is_empty() {
            if self.buf.is_empty() && rest.len() >= cs {
                // A whole chunk in the input: seal it from there, without buffering a copy.
                let (chunk, tail) = rest.split_at(cs);
                self.seal_full(chunk, out);
                rest = tail;
                continue;
            }
            let take = (cs - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == cs {
                let buf = std::mem::take(&mut self.buf);
                self.seal_full(&buf, out);
                self.buf = buf;
                self.buf.clear();
            }
        }
        self.appended += data.len() as u64;
        Ok(())
    }

    fn seal_full(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        seal_chunk(
            &self.cipher,
            &self.header_bytes,
            &self.header.nonce_prefix,
            self.next,
            false,
            chunk,
            out,
        );
        self.next += 1;
    }

    /// Seals what is buffered as the final chunk (empty if nothing is) and returns its bytes.
    pub fn seal(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len() + TAG_LEN);
        seal_chunk(
            &self.cipher,
            &self.header_bytes,
            &self.header.nonce_prefix,
            self.next,
            true,
            &self.buf,
            &mut out,
        );
        out
    }
}
