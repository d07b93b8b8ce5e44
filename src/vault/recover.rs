//! Crash recovery of a spool `.part` file into a complete container.
//!
//! This module owns the rule: keep every whole chunk that authenticates, re-seal the last of them as
//! the final chunk, and say how much was lost. It must not touch files (the caller reads the `.part`,
//! uploads the result and writes the ledger entry) and must not return plaintext.

use zeroize::Zeroizing;

use super::VaultError;
use super::container::{HEADER_LEN, Header, Layout, nonce_prefix, open, open_chunk, seal_chunk};
use super::keys::DataKey;

/// A spool file made whole again.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The complete container: header, kept chunks, final chunk.
    pub bytes: Vec<u8>,
    /// Its header.
    pub header: Header,
    /// Plaintext bytes the container now holds.
    pub plaintext_len: u64,
    /// Plaintext bytes whose ciphertext reached the spool but could not be kept: whole chunks after
    /// the first that failed to authenticate, plus the torn tail (as many plaintext bytes as its
    /// ciphertext bytes, at most one chunk). Audio still in memory at the crash is not counted.
    pub lost_bytes: u64,
    /// Whether the file already ended with a valid final chunk and was returned unchanged.
    pub already_sealed: bool,
}

/// Recovers a spool `.part` file: the header, whole non-final chunks, and perhaps a torn chunk.
///
/// Keeps the leading chunks that authenticate, re-seals the last of them as the final chunk
/// (decrypted, then encrypted again with the last-chunk flag set: a nonce never used before), and
/// drops the rest. With no whole chunk the result is the header and an empty final chunk. A file that
/// already ends with a valid final chunk is returned as is.
///
/// Fails if the header is unreadable, or with [`VaultError::Authentication`] if the first whole
/// chunk does not authenticate (the wrong data key, or a damaged header).
pub fn recover_partial(bytes: &[u8], key: &DataKey) -> Result<Recovered, VaultError> {
    let header = Header::decode(bytes)?;
    if let Ok((_, plain)) = open(bytes, key) {
        return Ok(Recovered {
            bytes: bytes.to_vec(),
            header,
            plaintext_len: plain.len() as u64,
            lost_bytes: 0,
            already_sealed: true,
        });
    }
    let header_bytes = &bytes[..HEADER_LEN];
    let body = &bytes[HEADER_LEN..];
    let cs = u64::from(header.chunk_size());
    let stride = usize::try_from(header.sealed_chunk_len())
        .expect("a sealed chunk of at most 1 mib fits in usize");
    let whole = body.len() / stride;
    let torn = (body.len() % stride) as u64;
    let cipher = key.cipher();
    let prefix = nonce_prefix(&header);

    let mut current = Zeroizing::new(Vec::with_capacity(stride));
    let mut last_good = Zeroizing::new(Vec::with_capacity(stride));
    let mut kept: usize = 0;
    for (i, piece) in body.chunks_exact(stride).enumerate() {
        let counter = u32::try_from(i).map_err(|_| VaultError::TooLarge)?;
        if !open_chunk(
            &cipher,
            header_bytes,
            prefix,
            counter,
            false,
            piece,
            &mut current,
        ) {
            if i == 0 {
                return Err(VaultError::Authentication { chunk: 0 });
            }
            break;
        }
        std::mem::swap(&mut current, &mut last_good);
        kept = i + 1;
    }
    let lost_bytes = (whole - kept) as u64 * cs + torn.min(cs);

    let mut out = Vec::with_capacity(HEADER_LEN + kept.max(1) * stride);
    out.extend_from_slice(header_bytes);
    let final_index = kept.saturating_sub(1);
    out.extend_from_slice(&body[..final_index * stride]);
    let final_counter = u32::try_from(final_index).map_err(|_| VaultError::TooLarge)?;
    // With no chunk kept `last_good` is empty: the result is the header and an empty final chunk.
    seal_chunk(
        &cipher,
        header_bytes,
        prefix,
        final_counter,
        true,
        &last_good,
        &mut out,
    );
    let plaintext_len = Layout::new(header.clone(), out.len() as u64)?.plaintext_len();
    Ok(Recovered {
        bytes: out,
        header,
        plaintext_len,
        lost_bytes,
        already_sealed: false,
    })
}
