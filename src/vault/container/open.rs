//! Decrypting: single chunks, spans of chunks, and whole or ranged containers held in memory.
//!
//! Owns the [`Plaintext`] type, the only way decrypted audio leaves the vault.

use std::fmt;
use std::ops::{Deref, Range};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::Zeroizing;

use super::writer::chunk_nonce;
use super::{HEADER_LEN, Header, Layout, NONCE_PREFIX_LEN, TAG_LEN};
use crate::vault::VaultError;
use crate::vault::keys::DataKey;

/// Decrypted audio. Wiped on drop; `Debug` shows only its length.
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// The bytes, still in a buffer wiped on drop.
    pub fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl Deref for Plaintext {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext([redacted], {} bytes)", self.0.len())
    }
}

/// Opens `sealed` as chunk `counter` into `out` (cleared first). On failure `out` is left empty.
pub(crate) fn open_chunk(
    cipher: &Aes256Gcm,
    header: &[u8],
    prefix: &[u8; NONCE_PREFIX_LEN],
    counter: u32,
    last: bool,
    sealed: &[u8],
    out: &mut Zeroizing<Vec<u8>>,
) -> bool {
    out.clear();
    let Some(split) = sealed.len().checked_sub(TAG_LEN) else {
        return false;
    };
    let (ct, tag) = sealed.split_at(split);
    out.extend_from_slice(ct);
    let nonce = chunk_nonce(prefix, counter, last);
    let ok = cipher
        .decrypt_in_place_detached(Nonce::from_slice(&nonce), header, out, Tag::from_slice(tag))
        .is_ok();
    if !ok {
        // The buffer held ciphertext only (aes-gcm checks the tag before decrypting), but clear it
        // anyway so no caller reads it as plaintext.
        out.clear();
    }
    ok
}

/// Decrypts chunks `first..` from `sealed` (their concatenated object bytes) and appends to `out`
/// the part of their plaintext inside `want`.
pub(crate) fn decrypt_span(
    layout: &Layout,
    cipher: &Aes256Gcm,
    header: &[u8],
    first: u64,
    sealed: &[u8],
    want: &Range<u64>,
    out: &mut Zeroizing<Vec<u8>>,
) -> Result<(), VaultError> {
    let cs = u64::from(layout.header.chunk_size);
    let stride = usize::try_from(layout.header.sealed_chunk_len())
        .expect("a sealed chunk of at most 1 mib fits in usize");
    let prefix = &layout.header.nonce_prefix;
    let mut scratch = Zeroizing::new(Vec::with_capacity(stride));
    for (n, piece) in sealed.chunks(stride).enumerate() {
        let index = first + n as u64;
        let counter = u32::try_from(index).map_err(|_| VaultError::TooLarge)?;
        let last = layout.is_final(index);
        if !open_chunk(cipher, header, prefix, counter, last, piece, &mut scratch) {
            // A final chunk that opens as a non-final one means the real final chunk is gone.
            if last && open_chunk(cipher, header, prefix, counter, false, piece, &mut scratch) {
                return Err(VaultError::Truncated);
            }
            return Err(VaultError::Authentication { chunk: counter });
        }
        let base = index * cs;
        let from = want.start.max(base) - base;
        let to = want.end.min(base + scratch.len() as u64).max(base) - base;
        if from < to {
            out.extend_from_slice(&scratch[from as usize..to as usize]);
        }
    }
    Ok(())
}

/// Decrypts a whole container held in memory, authenticating every chunk (the final one too, so a
/// container cut short fails with [`VaultError::Truncated`] or [`VaultError::Authentication`]).
pub fn open(bytes: &[u8], key: &DataKey) -> Result<(Header, Plaintext), VaultError> {
    let header = Header::decode(bytes)?;
    let layout = Layout::new(header.clone(), bytes.len() as u64)?;
    let len = layout.plaintext_len();
    let plain = decrypt_chunks(bytes, &layout, key, 0..layout.chunk_count(), 0..len)?;
    Ok((header, plain))
}

/// Decrypts exactly the plaintext bytes `range` of a container held in memory, authenticating only
/// the chunks that hold them (none for an empty range). A range that ends before the final chunk
/// cannot notice that chunks after it were cut off; reading the end of the segment does.
pub fn open_range(bytes: &[u8], key: &DataKey, range: Range<u64>) -> Result<Plaintext, VaultError> {
    let header = Header::decode(bytes)?;
    let layout = Layout::new(header, bytes.len() as u64)?;
    let chunks = layout.chunks_for(range.clone())?;
    decrypt_chunks(bytes, &layout, key, chunks, range)
}

fn decrypt_chunks(
    bytes: &[u8],
    layout: &Layout,
    key: &DataKey,
    chunks: Range<u64>,
    range: Range<u64>,
) -> Result<Plaintext, VaultError> {
    let span = layout.object_range(chunks.clone());
    let sealed = &bytes[span.start as usize..span.end as usize];
    let mut out = Zeroizing::new(Vec::with_capacity((range.end - range.start) as usize));
    decrypt_span(
        layout,
        &key.cipher(),
        &bytes[..HEADER_LEN],
        chunks.start,
        sealed,
        &range,
        &mut out,
    )?;
    Ok(Plaintext(out))
}

/// Wraps a buffer of decrypted bytes.
pub(crate) fn plaintext(bytes: Zeroizing<Vec<u8>>) -> Plaintext {
    Plaintext(bytes)
}
