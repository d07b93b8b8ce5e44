//! The keys of the telephony platform adapters, read from their secret files at start-up so a bad
//! secret stops the daemon before it binds a port.

use crate::config::{Config, ConfigError};
use crate::ingest::audiohook::HookAuth;
use crate::ingest::twilio::TwilioAuth;

/// The keys of each enabled platform; `None` for a platform that is off (its routes answer 404).
#[derive(Debug, Default)]
pub struct Platforms {
    /// Twilio's Auth Token (and SharedKey secret).
    pub twilio: Option<TwilioAuth>,
    /// The AudioHook API key and client secret.
    pub audiohook: Option<HookAuth>,
}

impl Platforms {
    /// Reads the secrets of the enabled platforms.
    pub fn load(config: &Config) -> Result<Self, ConfigError> {
        let twilio = if config.twilio.enabled {
            let token = config.twilio.auth_token.read()?;
            let shared = config
                .twilio
                .shared_key
                .as_ref()
                .map(|k| k.read())
                .transpose()?;
            Some(TwilioAuth::new(
                token.expose_trimmed(),
                shared.as_ref().map(|s| s.expose_trimmed()),
            ))
        } else {
            None
        };
        let audiohook = if config.audiohook.enabled {
            let key = config.audiohook.api_key.read()?;
            let secret = config.audiohook.client_secret.read()?;
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            let auth = HookAuth::new(&text(key.expose_trimmed()), &text(secret.expose_trimmed()))
                .map_err(|e| ConfigError::Invalid {
                key: "audiohook.client_secret".to_owned(),
                reason: e.to_string(),
            })?;
            Some(auth)
        } else {
            None
        };
        Ok(Self { twilio, audiohook })
    }
}
