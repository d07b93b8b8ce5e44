//! Configuration: one TOML tree, parsed and checked before anything binds a port.
//!
//! [`Config::load`] reads the file, applies `--set dotted.key=value` overrides to the TOML tree (so
//! they are validated exactly like the file), deserializes with `deny_unknown_fields`, resolves every
//! relative path and secret name, and runs the cross-field checks. Every failure is a [`ConfigError`]
//! naming the dotted key and the reason; the binary exits 64 on it.
//!
//! Defaults live in one place: the `Default` impls beside each section of [`Config`]. `config/callvault.toml` documents
//! every key with its default, and a test checks that the two agree.
//!
//! Architecture invariant: the config is passed down explicitly, never read from a global; secrets
//! are [`SecretFile`]s until a component reads them into a [`Secret`].

mod load;
mod platforms;
mod secret;
mod siprec;
mod tree;

pub use load::ConfigError;
pub use platforms::{AudioHookConfig, AudioSocketConfig, Cidr, TwilioConfig};
pub use secret::{Secret, SecretFile};
pub use siprec::{SiprecConfig, SiprecTls};
pub use tree::{
    AdminConfig, CatalogConfig, Config, ConsentConfig, KeysConfig, LimitsConfig, LogConfig,
    LogFormat, PciConfig, PolicyConfig, PublicConfig, RecorderConfig, RetentionConfig,
    SecretsConfig, StorageConfig, TlsConfig,
};
pub use tree::{AuditConfig, AuthConfig, ConsoleConfig, ConsoleOidcConfig, OidcConfig};
pub use tree::{ImportConfig, StorageCodec};
