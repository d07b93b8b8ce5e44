//! callvault: a call-recording controller and vault for contact centres.
//!
//! It runs beside a telephony platform, takes each call's audio as it happens, keeps what the law
//! allows (pausing for card payments, destroying on refused consent), encrypts it, stores it in object
//! storage, deletes it on time unless a complaint hold keeps it, and lets supervisors find and export
//! a caller's recordings, with every access in a tamper-evident audit chain. The rules are in
//! `DESIGN.md` section 2 (shipped beside the repository as `shared/DESIGN.md`).
//!
//! # Bird's-eye view
//!
//! Data flows one way: **ingest → recorder → vault → catalog**, with **retention** and **api**
//! reading and acting on the catalog and vault.
//!
//! ```text
//! telephony ──► ingest ──events+frames──► recorder ──sealed chunks──► vault ──► object store
//!                                          recorder ──rows──► catalog (SQLite / PostgreSQL)
//! supervisors ──► api ──► catalog + vault (decrypt, render)      retention ──► catalog + vault
//! ```
//!
//! # Code map
//!
//! - [`domain`]: pure rules with no I/O: ids ([`domain::RecordingId`], [`domain::CallId`],
//!   [`domain::KeyId`]), codecs, roles, policies, what keypad tones cost capture
//!   ([`domain::dtmf::key_windows`]), calendar [`domain::Period`]s and the [`domain::Clock`],
//!   and caller numbers normalised to E.164 ([`domain::CallerNumber`], masked for supervisors); the
//!   call's lifecycle ([`domain::lifecycle::Lifecycle`]: consent, pauses, the windows in which
//!   nothing may be kept) and its two clocks ([`domain::timeline::Timeline`]: where each piece of
//!   audio sits in the recording, the interval in which it could have been spoken, gaps told from
//!   stalls, and the look-back buffer itself; no other code computes a frame's time), and the
//!   recording status machine ([`domain::status`]: one transition function per status change, the
//!   expiry, and the refusal rules; no other code assigns a status or computes an expiry).
//! - [`vault`]: the only code that touches `aes-gcm` and `object_store`: the `CVA1` container
//!   ([`vault::SegmentWriter`], [`vault::open`], [`vault::ObjectReader`]), the [`vault::Keyring`] of
//!   key-encryption keys and the wrapping of per-segment [`vault::DataKey`]s, object layout
//!   ([`vault::object_path`]), crash recovery of spool files ([`vault::recover_partial`]), the
//!   object store itself ([`vault::open_store`]), and sealed short fields: a caller's number and its
//!   keyed lookup tag ([`vault::CallerKeys`]).
//! - [`catalog`]: metadata behind the [`catalog::Catalog`] trait: recordings, segments and their
//!   wrapped keys, ledgers, holds, audit entries and their signed checkpoints, seen event ids, API
//!   tokens, subject access requests; narrow writes ([`catalog::StatusChange`] compare-and-set,
//!   [`catalog::CallDetailsUpdate`], restriction) so concurrent writers never undo each other.
//!   [`catalog::SqliteCatalog`]
//!   is the embedded default (its writes group-committed), [`catalog::PostgresCatalog`] the one several nodes share (advisory
//!   locks keep one audit chain and one sweeping node); both run the same conformance suite.
//! - [`audit`]: the hash chain: [`audit::AuditEntry::chained`] is the only place an entry's hash is
//!   computed, and [`audit::ChainVerifier`] names the first altered, missing or reordered entry, or
//!   the range cut off the end when checked [`against`](audit::ChainVerifier::against) a signed
//!   [`audit::Checkpoint`] of the head; the [`audit::Checkpointer`] signs the head at an interval,
//!   on request and at shutdown, logs it (one line, at any level) and stores it.
//! - [`ingest`]: wire formats into [`domain::CallEvent`]s and audio: the native event JSON
//!   ([`ingest::native`]), Standard Webhooks signatures ([`ingest::webhook`]), the native media
//!   socket protocol ([`ingest::media::MediaSession`]), and the platforms: Twilio signatures, status
//!   callbacks and Media Streams with their two-track interleaver ([`ingest::twilio`],
//!   [`ingest::twilio::stream::StreamSession`]), Genesys AudioHook v2 with its message signature
//!   ([`ingest::audiohook::HookSession`], [`ingest::audiohook::HookAuth`]), Asterisk AudioSocket
//!   framing ([`ingest::audiosocket`]), and SIPREC ([`ingest::siprec`]: SIP messages, multipart
//!   bodies, SDP offer/answer, RFC 7865 metadata, RTP and telephone events, and the
//!   [`ingest::siprec::mixer::Mixer`] that places two RTP streams by their timestamps); one
//!   [`ingest::IngestError`] with stable codes.
//! - [`audio`]: codecs ([`audio::g711`]), keypad-tone (DTMF) detection on each channel of a live
//!   stream ([`audio::dtmf::DtmfDetector`]: Goertzel, Q.24-style tests, digits redacted), WAV
//!   headers ([`audio::wav`]), pause sounds
//!   ([`audio::tone`]), and playback rendering ([`audio::render::Timeline`]): a recording's segments
//!   and rendered gaps as one WAV, streamed by byte range without holding it in memory, laid out
//!   once for playback and export alike ([`audio::playback::layout`]).
//! - [`config`]: the TOML tree ([`config::Config::load`]), `--set` overrides, and
//!   [`config::SecretFile`]s read into [`config::Secret`]s.
//! - [`server`]: [`server::Daemon`]: start-up checks ([`server::preflight`], shared with
//!   `check-config`), listeners (rustls), readiness, shutdown, systemd notification, and the
//!   AudioSocket TCP listener (peers outside `audiosocket.allow` refused), the SIPREC recording
//!   server (SIP over UDP, TCP and TLS, an RTP port pool, one task per session feeding the
//!   recorder); connection limits on
//!   every listener ([`server::limits`]); the live keyring reload ([`server::reload_keyring`], on
//!   SIGHUP and from the admin listener's `/keyring` routes); secrets made by
//!   [`server::create_secrets`] (`callvault init`, and dev's `secrets.create_missing`).
//! - [`api`]: HTTP routes, authentication ([`api::auth`]: bearer tokens and OIDC JWTs,
//!   [`api::oidc`]; [`api::auth::Sessions`] closes a listen or media socket within seconds of its
//!   credential's revocation or expiry), caller search, exports and SARs, live listen, the audit log
//!   and its signed head, the Twilio and AudioHook
//!   sockets and callbacks (the platforms' keys in [`api::Platforms`]), and [`api::ApiError`], the
//!   one place where errors become status codes and `application/problem+json`. The web console
//!   under `/console/` (`api/console/`, issue 15) is server-rendered HTML over those same handlers:
//!   each page builds the API's [`api::auth::Caller`] from an in-memory browser session (a token,
//!   or OIDC code flow with PKCE) and calls the API's handler, so it can never show or do more than
//!   the API allows; its waveform comes from [`audio::peaks`].
//! - [`export`]: subject-access bundles: [`export::plan`] picks the recordings,
//!   [`export::write_bundle`] streams the signed ZIP ([`export::BundleSigner`], Ed25519), and
//!   [`export::verify_bundle`] checks one offline (`callvault export`, `callvault verify`).
//! - [`telemetry`]: log lines (colour only on a terminal) and the Prometheus recorder. [`cli`]: the
//!   command line, whose audit actor is the person logged in (login uid, or `SUDO_USER` under
//!   sudo), never `$USER` (`init`, `keys rewrap / retire` against a running daemon, and `fsck` in
//!   `cli/init.rs`, `cli/keys.rs` and `cli/fsck.rs`).
//! - [`recorder`]: one task per live call (look-back buffer, PCI pause, consent, a keypad-tone
//!   detector over every piece while it is held, live listeners fed committed audio only:
//!   [`recorder::ListenFeed`]), fed by each socket's [`recorder::MediaSink`] (arrival stamped at
//!   the read, paused audio dropped there, signalled keys, the rest handed over in batches),
//!   taking back after a restart the calls left live ([`recorder::Recorder::adopt`]), over
//!   [`recorder::persist`], which turns committed audio into synced spool chunks, uploaded segments
//!   and catalog rows, holds a bounded backlog in memory (and ledgers what it drops) while the
//!   spool cannot be written ([`recorder::persist::SpoolHealth`], read by `/readyz`), and recovers
//!   the spool after a crash.
//! - [`simulate`]: a scripted telephony platform ([`simulate::simulate`]) that posts signed events
//!   and streams a call's audio, for demos and end-to-end tests (`callvault simulate`); the load
//!   generator ([`simulate::load::loadgen`]: thousands of calls written by a few tasks from banked
//!   frames, with the server sampled from `/proc`) and its bare-receive baseline
//!   ([`simulate::load::baseline`]).
//! - [`import`]: finished recordings brought in after the call (`POST /v1/imports`, `callvault
//!   import`): [`import::Importer`] decodes a file with `symphonia` on a blocking thread, resamples
//!   to the policy's rate, seals it into segments under fresh data keys and catalogues it whole in
//!   one transaction ([`catalog::Catalog::insert_import`]); the rules are
//!   [`domain::import`]'s; manifests of old recorders' exports in [`import::manifest`].
//! - [`retention`]: [`retention::Retention`] destroys audio through one journal of pending
//!   deletions, whatever the cause (expiry, erasure, refusal, excision): objects, then keys, then the
//!   caller's number and tag, then a receipt in the ledger and the audit chain; it refuses a
//!   refusal past a hold ([`retention::RefusalStart`]), restricts on request; [`retention::worker`] sweeps on an interval
//!   and on demand (`/retention` on the admin listener); [`retention::holds`] places and releases
//!   complaint holds for the API and `complaint.*` events alike; [`retention::plan`] plans and
//!   applies policy changes.
//! - [`completeness`]: every call accounted for: the roster of calls the platform reported
//!   ([`catalog::CallRow`], noted by the event and protocol adapters, call-detail imports
//!   ([`completeness::import`]) and, for every recording, the catalog itself), the
//!   [`completeness::Reconciler`] that judges each call by [`domain::completeness::assess`] until
//!   it settles and then writes its final state once with a ledger and an audit entry, its
//!   [`completeness::worker`] (metrics, daily summary), and the [`completeness::report`].
//!
//! # Architecture invariants
//!
//! - Protocol types never leave `ingest`; status codes and JSON DTOs never leave [`api`].
//! - [`domain`] does no I/O; time comes from a [`domain::Clock`], so tests use a manual one.
//! - Plaintext audio is never written to disk: only sealed `CVA1` chunks are. A container's header
//!   is the associated data of every chunk, so truncation, reordering and swapping fail.
//! - A data key exists only wrapped, in the catalog, never beside its audio: deleting the catalog row
//!   crypto-shreds the segment, also in object-store backups.
//! - A keypad digit's value never reaches a log line, a ledger or a `Debug` output:
//!   [`audio::dtmf::Digit`] prints `[redacted]`, and the rule ([`domain::dtmf`]) never sees it.
//! - A secret never reaches a log line or a `Debug` output: [`config::Secret`], [`vault::DataKey`]
//!   and [`vault::Keyring`] print `[redacted]`, and key material is zeroized on drop.
//! - Configuration is parsed and checked before any port is bound; a configuration or keyring that
//!   must be fixed exits 64, and systemd does not restart on it.
//! - The daemon does not start when the catalog references a key-encryption key the keyring lacks.
//! - Every state change and access is an audit entry; entries are only appended. The head is
//!   signed into checkpoints kept outside the database too (the log, export bundles), so cutting
//!   off the newest entries is caught; an export is audited once its file is complete.
//! - A socket lives no longer than its credential: revocation (seen in the catalog, whoever wrote
//!   it) or expiry closes it within seconds, audited.
//! - A recording under an active hold is never deleted: the catalog refuses to begin its deletion
//!   (an excision of card data aside), also when the caller refuses.
//! - When audio is destroyed, the caller's sealed number and lookup tag go with it, in the same
//!   transaction as the receipt: a tombstone holds no personal data.
//! - A status is changed only by a [`domain::status`] transition, stored compare-and-set on the
//!   status it started from; a restriction is written only by its own write.
//! - A caller's number is stored only sealed and searched only by its keyed tag; it never reaches a
//!   log line or an audit entry, and only the compliance role sees it whole.
//! - Live listeners hear only committed audio: nothing dropped on arrival, nothing inside the
//!   look-back window of a pause.
//! - Audio is judged by both of its clocks: it is kept only if the interval from its earliest
//!   possible speaking time to its arrival touches no pause, and committed only a look-back window
//!   after it arrived. The end of a call never cuts audio that arrived before its stream closed.

pub mod api;
pub mod audio;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod completeness;
pub mod config;
pub mod domain;
pub mod export;
pub mod import;
pub mod ingest;
pub mod recorder;
pub mod retention;
pub mod server;
pub mod simulate;
pub mod telemetry;
pub mod vault;
