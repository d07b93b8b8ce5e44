//! The vault: the only code that touches `aes-gcm` and `object_store`.
