//! Bearer tokens: minted by `callvault tokens create`, stored only as a SHA-256 hash, shown once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The prefix of every callvault token, so secret scanners and people can recognise one.
pub const TOKEN_PREFIX: &str = "cvt_";

/// A fresh token: its id (public, for revocation), its secret (shown once), and the hash to store.
pub fn mint_token() -> (String, Zeroizing<String>, [u8; 32]) {
    let mut id = [0u8; 6];
    let mut secret = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut *secret);
    let token = Zeroizing::new(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(*secret)));
    let hash = token_hash(&token);
    (hex::encode(id), token, hash)
}

/// The stored form of a token: SHA-256 of the whole token text. Tokens carry 256 random bits, so a
/// fast hash is enough; the lookup by hash needs no constant-time comparison.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_to_what_is_stored() {
        let (id1, t1, h1) = mint_token();
        let (id2, t2, h2) = mint_token();
        assert_ne!(id1, id2);
        assert_ne!(*t1, *t2);
        assert!(t1.starts_with(TOKEN_PREFIX) && t1.len() > 40);
        assert_eq!(token_hash(&t1), h1);
        assert_ne!(h1, h2);
    }
}
