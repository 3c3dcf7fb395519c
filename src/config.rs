//! The service's one typed configuration: what `callmood serve` reads from a TOML file
//! (`--config`), the environment and its flags, in that order of strength (flags over the
//! environment over the file over the defaults).
//!
//! [`Config`] is that configuration: every field has a named default and a doc comment, and
//! unknown keys are refused. Its sections reuse the runtime settings where those are plain
//! values ([`AsrConfig`], [`AlertConfig`]); the others are written in the units an operator
//! types (seconds, `FIRST-LAST` port ranges) and become a [`ServeConfig`] through
//! [`Config::serve_config`]. Every value remembers where it came from ([`Origin`]), so an
//! error names the file's key, the environment variable or the flag that set it:
//! `callmood.toml: alerts.escalate_angry = 1.7: must be within 0..1`.
//!
//! Layers, weakest first: the defaults; the file ([`Layered::from_file`]); variables
//! `CALLMOOD_SECTION__KEY` for any key ([`Layered::apply_env`]); then the flags and their
//! own variables (`--addr`, `CALLMOOD_ADDR`), laid on by the CLI (`cli::serve`) only where
//! typed or set. [`Layered::validate`] checks the result.
//!
//! Why TOML with serde and the `toml` crate: TOML is what Rust operators already write
//! (Cargo, vector), it has comments and typed values (a number is not a string), and
//! serde's derive gives the typed structs, their defaults and the refusal of unknown keys
//! with no hand-written parser.
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::asr::{AsrConfig, AsrError};
use crate::call::{CallSettings, DEFAULT_MAX_CALL_MS};
use crate::contact::alerts::AlertConfig;
use crate::core::cidr::Cidr;
use crate::server::legs::{LegsConfig, DEFAULT_JOIN_TIMEOUT, DEFAULT_LEG_IDLE_TIMEOUT};
use crate::server::{self, security, ws, ServeConfig};

/// The example configuration at the repository's root: every key at its default, with a
/// comment on each (a test checks both).
pub const EXAMPLE_FILE: &str = "callmood.example.toml";

/// Everything `callmood serve` can be told; see the README's "Configuration" section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The gRPC listener and its limits.
    pub server: ServerSection,
    /// The model files.
    pub models: ModelsSection,
    /// The recogniser pool.
    pub asr: AsrConfig,
    /// RTP and AudioSocket legs.
    pub legs: LegsSection,
    /// WebSocket media (Twilio Media Streams, audio fork, AudioHook).
    pub ws: WsSection,
    /// The Prometheus endpoint.
    pub metrics: MetricsSection,
    /// Tokens, tenants and TLS.
    pub security: SecuritySection,
    /// Alert thresholds, evidence and cool-down of every call.
    pub alerts: AlertConfig,
}

/// `[server]`: the gRPC listener and its limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address the gRPC service listens on. Default [`server::DEFAULT_ADDR`].
    pub addr: SocketAddr,
    /// Calls in flight at most (all transports); more are refused with
    /// `RESOURCE_EXHAUSTED`. Default [`server::DEFAULT_MAX_CALLS`].
    pub max_calls: usize,
    /// On SIGTERM / Ctrl-C, seconds the calls in flight get to finish and send their
    /// summaries. Default [`server::DEFAULT_DRAIN_TIMEOUT`].
    pub drain_timeout_s: u64,
    /// Largest gRPC request message but for `AnalyzeRecording`, bytes (a config, an id,
    /// one chunk of live audio). Default [`server::DEFAULT_MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
    /// Largest `AnalyzeRecording` request (a whole recording), bytes. Default
    /// [`server::DEFAULT_MAX_RECORDING_BYTES`].
    pub max_recording_bytes: usize,
    /// `AnalyzeRecording` calls in flight at most (all tenants together); more are
    /// refused with `RESOURCE_EXHAUSTED` before their recording is read, which bounds the
    /// memory recordings hold. Default [`server::DEFAULT_MAX_RECORDINGS`].
    pub max_recordings: usize,
    /// How far a live call's audio (`StreamCall`, AudioSocket, WebSocket, RTP over UDP) may
    /// run ahead of the wall clock before its stream is held back (UDP: dropped), s.
    /// Default [`server::DEFAULT_MAX_AHEAD`].
    pub max_ahead_s: u64,
    /// A live call with no message for this long is ended, s. Default
    /// [`server::DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout_s: u64,
    /// A new `StreamCall` that sends no config for this long is refused, s. Default
    /// [`server::DEFAULT_CONFIG_TIMEOUT`].
    pub config_timeout_s: u64,
    /// Longest call accepted, s; longer streams are refused, not buffered. Default
    /// [`DEFAULT_MAX_CALL_MS`] (4 h).
    pub max_call_s: u64,
    /// glibc malloc arenas at most: `serve` runs itself again at start with
    /// `MALLOC_ARENA_MAX` set to it (glibc reads it only then); 0 leaves glibc's own limit
    /// (8 per core). The default, [`server::DEFAULT_MALLOC_ARENA_MAX`] (2),
    /// keeps a long-running server's resident memory flat (docs/measurements.md, "Soak");
    /// a `MALLOC_ARENA_MAX` in the environment wins; no effect on other C libraries.
    pub malloc_arena_max: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            addr: server::DEFAULT_ADDR
                .parse()
                .expect("DEFAULT_ADDR is an address"),
            max_calls: server::DEFAULT_MAX_CALLS,
            drain_timeout_s: server::DEFAULT_DRAIN_TIMEOUT.as_secs(),
            max_message_bytes: server::DEFAULT_MAX_MESSAGE_BYTES,
            max_recording_bytes: server::DEFAULT_MAX_RECORDING_BYTES,
            max_recordings: server::DEFAULT_MAX_RECORDINGS,
            max_ahead_s: server::DEFAULT_MAX_AHEAD.as_secs(),
            idle_timeout_s: server::DEFAULT_IDLE_TIMEOUT.as_secs(),
            config_timeout_s: server::DEFAULT_CONFIG_TIMEOUT.as_secs(),
            max_call_s: DEFAULT_MAX_CALL_MS / 1000,
            malloc_arena_max: server::DEFAULT_MALLOC_ARENA_MAX,
        }
    }
}

/// `[models]`: the model files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsSection {
    /// GGML Whisper model file. Default [`server::DEFAULT_MODEL`].
    pub whisper: PathBuf,
    /// Voice emotion model (trained by `callmood train`). Default
    /// [`crate::emotion::voice::DEFAULT_VOICE_MODEL`].
    pub voice: PathBuf,
    /// Words emotion model (trained by `callmood train-text`). Default
    /// [`crate::emotion::text::DEFAULT_TEXT_MODEL`].
    pub text: PathBuf,
    /// Directory of the words lexicon, negations, boosters and cues. Default
    /// [`crate::emotion::text::DEFAULT_LEXICON_DIR`].
    pub lexicon: PathBuf,
    /// Score emotion at all; false serves without `emotion` scores and cues. Default true.
    pub emotion: bool,
    /// Score the words as well as the voice. Default true.
    pub words: bool,
}

impl Default for ModelsSection {
    fn default() -> Self {
        Self {
            whisper: server::DEFAULT_MODEL.into(),
            voice: crate::emotion::voice::DEFAULT_VOICE_MODEL.into(),
            text: crate::emotion::text::DEFAULT_TEXT_MODEL.into(),
            lexicon: crate::emotion::text::DEFAULT_LEXICON_DIR.into(),
            emotion: true,
            words: true,
        }
    }
}

/// `[legs]`: RTP and AudioSocket legs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LegsSection {
    /// Address RTP legs (`OpenRtpLeg`) bind. Default
    /// [`crate::server::legs::DEFAULT_RTP_ADDR`] (every interface).
    pub rtp_addr: IpAddr,
    /// The host (IP address or DNS name) `OpenRtpLeg` tells clients to send RTP to, e.g.
    /// this replica's own IP behind a load balancer. Default: none, so `rtp_addr` unless
    /// it is a wildcard ([`crate::server::legs::LegsConfig::rtp_host`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_addr: Option<String>,
    /// UDP ports handed out to RTP legs, `FIRST-LAST`. Default
    /// [`crate::server::legs::DEFAULT_RTP_PORTS`].
    pub rtp_ports: PortRange,
    /// Networks RTP legs accept datagrams from, `CIDR[,CIDR...]`; datagrams from elsewhere
    /// are dropped and counted (`LegStats.packets_not_allowed`). Default: empty, every
    /// address.
    #[serde(skip_serializing_if = "CidrList::is_empty")]
    pub rtp_allow: CidrList,
    /// Seconds without a packet after which an RTP or AudioSocket leg ends. Default
    /// [`DEFAULT_LEG_IDLE_TIMEOUT`].
    pub idle_timeout_s: u64,
    /// How long `WatchCall` waits for a call id that has no leg yet, and an AudioSocket
    /// connection for its UUID message, s. Default [`DEFAULT_JOIN_TIMEOUT`].
    pub join_timeout_s: u64,
    /// Accept Asterisk AudioSocket connections on this address. Default: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audiosocket_addr: Option<SocketAddr>,
    /// Serve AudioSocket over TLS with `security.tls_cert` (for a TLS-terminating proxy
    /// such as stunnel beside Asterisk, whose AudioSocket speaks no TLS); client
    /// certificates of `security.tls_client_ca` are then required too. Needs
    /// `audiosocket_addr` and `security.tls_cert`. Default: false (plain TCP).
    pub audiosocket_tls: bool,
}

impl Default for LegsSection {
    fn default() -> Self {
        let legs = LegsConfig::default();
        Self {
            rtp_addr: legs.rtp_addr,
            advertise_addr: legs.advertise_addr,
            rtp_ports: PortRange(legs.rtp_ports),
            rtp_allow: CidrList(legs.rtp_allow),
            idle_timeout_s: DEFAULT_LEG_IDLE_TIMEOUT.as_secs(),
            join_timeout_s: DEFAULT_JOIN_TIMEOUT.as_secs(),
            audiosocket_addr: None,
            audiosocket_tls: false,
        }
    }
}

/// `[ws]`: WebSocket media.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsSection {
    /// Accept WebSocket media (`/twilio`, `/fork`, `/audiohook`) on this address. Default:
    /// off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
    /// Serve plain `ws://` even when `security.tls_cert` is set (a TLS-terminating proxy
    /// in front); otherwise the certificate serves `wss://`. Default: false.
    pub plaintext: bool,
    /// Largest WebSocket message (and frame), bytes. Default [`ws::DEFAULT_MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
    /// Twilio Media Streams: the `customParameters` key whose value is the call id. Default:
    /// none (the call id is `callSid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_call_id_param: Option<String>,
    /// AudioHook: the accepted `X-API-KEY` values (secrets: never printed). Default: none,
    /// which refuses AudioHook.
    pub audiohook_api_keys: Vec<String>,
    /// AudioHook: client secrets, `"API_KEY:BASE64_SECRET"` each (secrets: never printed).
    /// A key with a secret is accepted (listed in `audiohook_api_keys` or not) only on an
    /// upgrade request signed with it (HTTP message signatures, as Genesys Cloud signs).
    /// Default: none.
    pub audiohook_client_secrets: Vec<String>,
    /// Twilio: the accounts' auth tokens (secrets: never printed). With any, a `/twilio`
    /// stream needs a valid `X-Twilio-Signature`; with none, `/twilio` is open to anyone
    /// who reaches the port. Default: none.
    pub twilio_auth_tokens: Vec<String>,
    /// Twilio: the `wss://` origin the TwiML's `<Stream url>` names (`wss://host[:port]`
    /// and an optional path prefix), when a proxy changes the `Host` callmood sees.
    /// Default: `wss://` and the request's `Host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_public_url: Option<String>,
    /// Audio fork (`mod_audio_fork`, jambonz `listen`): accepted `"user:password"` pairs
    /// (secrets: never printed). With any, a `/fork` socket needs one of them as HTTP Basic
    /// credentials; with none, `/fork` is open. Default: none.
    pub fork_basic_auth: Vec<String>,
}

impl Default for WsSection {
    fn default() -> Self {
        let ws = ws::WsConfig::default();
        Self {
            addr: None,
            plaintext: false,
            max_message_bytes: ws.max_message_bytes,
            twilio_call_id_param: ws.twilio_call_id_param,
            audiohook_api_keys: ws.audiohook_api_keys,
            audiohook_client_secrets: Vec::new(),
            twilio_auth_tokens: ws.twilio_auth_tokens,
            twilio_public_url: ws.twilio_public_url,
            fork_basic_auth: ws.fork_basic_auth,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve Prometheus metrics at `http://ADDR/metrics`. Default: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
}

/// `[security]`: tokens, tenants and TLS. Files are named here; their contents (tokens,
/// keys) are read by the service and never printed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// Require `authorization: Bearer TOKEN` on every RPC: a file of `TOKEN TENANT` lines
    /// (and `cert:NAME TENANT` for client certificates), reloaded on SIGHUP. Default: off (any client may use every call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_tokens: Option<PathBuf>,
    /// With `auth_tokens`: calls in flight per tenant at most. Default: only
    /// `server.max_calls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_max_calls: Option<usize>,
    /// With `auth_tokens`: `AnalyzeRecording` calls in flight per tenant at most (more
    /// are refused before their recording is read). Default: only `server.max_recordings`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_max_recordings: Option<usize>,
    /// With `auth_tokens`: the tenant that owns AudioSocket and WebSocket media calls whose
    /// credential no token file line maps (`cert:`, `twilio:`, `audiohook:`, `fork:`).
    /// Default: none, so no RPC reaches them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_tenant: Option<String>,
    /// Serve gRPC over TLS with this certificate chain (PEM); needs `tls_key`. Default:
    /// plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM); needs `tls_cert`. Default:
    /// clients need none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca: Option<PathBuf>,
    /// Every call's transcripts and words have every number redacted as `[NUMBER]`, secret
    /// or not, and no client can turn redaction off. Default: true (fail closed: on voices
    /// Whisper garbles, the cue and length rules alone left card, code and SSN digits in
    /// 14 of 40 held-out clips; README, "PII redaction"). False keeps ordinary numbers
    /// (order numbers, amounts, times) and redacts only what those rules find; a call may
    /// then still ask for every number with `CallOptions.redact_all_numbers`, or turn
    /// redaction off.
    pub redact_all_numbers: bool,
    /// The payment window, seconds: after a payment cue in either party's words ("and the
    /// security code on the back?"), every number in that utterance and of either party in
    /// this long after it is redacted
    /// (README, "PII redaction"). 0 turns it off; at most 600. Default: 30.
    pub payment_window_s: u32,
}

impl Default for SecuritySection {
    fn default() -> Self {
        Self {
            auth_tokens: None,
            tenant_max_calls: None,
            tenant_max_recordings: None,
            media_tenant: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            redact_all_numbers: true,
            payment_window_s: crate::contact::finish::PAYMENT_WINDOW_MS / 1000,
        }
    }
}

/// A range of UDP ports, written `FIRST-LAST` (or one port) in files, the environment and
/// flags alike.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortRange(pub RangeInclusive<u16>);

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0.start(), self.0.end())
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    /// Parses `FIRST-LAST` (or a single port).
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{p:?} is not a port number 1-65535"))
        };
        let (a, b) = (port(a)?, port(b)?);
        if a > b {
            return Err(format!("{a}-{b}: the first port is above the last"));
        }
        Ok(PortRange(a..=b))
    }
}

/// Values written as one string in files (`#[serde(try_from = "String", into = "String")]`):
/// their `FromStr` and `Display` both ways.
macro_rules! serde_via_string {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
    )*};
}

serde_via_string!(PortRange, CidrList);

/// IP networks, written `CIDR[,CIDR...]` (`10.0.0.0/8,192.0.2.7`) in files, the environment
/// and flags alike; empty is none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CidrList(pub Vec<Cidr>);

impl CidrList {
    /// No network given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for CidrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for CidrList {
    type Err = String;

    /// Comma-separated networks; a wrong one is refused with its value.
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(CidrList)
    }
}

/// Where a value of the configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The named default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag (`--max-calls`).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(v) => write!(f, "env {v}"),
            Origin::Flag(l) => write!(f, "flag {l}"),
        }
    }
}

/// Why a configuration was refused; every variant names the key and where it was set (the
/// file's path, or `env NAME`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML at all; `message` gives the line and column.
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{from}: {key}: unknown key (known: {known})")]
    UnknownKey {
        from: Origin,
        key: String,
        known: String,
    },
    #[error("{from}: {key} = {value}: {message}")]
    WrongType {
        from: Origin,
        key: String,
        value: String,
        message: String,
    },
    /// A value out of range, or keys that do not go together.
    #[error("{place}: {reason}")]
    Invalid { place: String, reason: String },
}

/// Prefix of the variables that set any key: `CALLMOOD_SECTION__KEY` (a double underscore
/// between section and key, e.g. `CALLMOOD_ALERTS__ESCALATE_ANGRY=0.6`).
pub const ENV_PREFIX: &str = "CALLMOOD_";

/// A [`Config`] and where each of its keys (`section.key`) was set; keys not in the map
/// have their default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layered {
    pub config: Config,
    pub origins: BTreeMap<String, Origin>,
}

impl Layered {
    /// The defaults with the file's keys laid over them. An unknown section or key, or a
    /// value of the wrong type, is refused with the key named.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// The defaults, then `path`'s keys when there is one, then the
    /// `CALLMOOD_SECTION__KEY` variables among `vars` ([`Layered::apply_env`]).
    pub fn from_file_and_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut l = match path {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        l.apply_env(vars)?;
        Ok(l)
    }

    /// As [`Layered::from_file`], on the file's text; errors name `path`.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.into(),
                    message: one_line(&e.to_string()),
                })?;
        let mut l = Self::default();
        l.lay(table, &Origin::File(path.into()))?;
        Ok(l)
    }

    /// Lays the `CALLMOOD_SECTION__KEY=VALUE` variables among `vars` over the configuration.
    /// VALUE is read as TOML (`0.6`, `true`, `["a", "b"]`), else as a string
    /// (`127.0.0.1:50051`, `/etc/callmood/tokens`). An unknown section or key is refused
    /// with the variable named; variables without the double underscore are left to the
    /// flags' own (`CALLMOOD_ADDR`).
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, raw) in vars {
            let Some((section, key)) = name
                .strip_prefix(ENV_PREFIX)
                .and_then(|rest| rest.split_once("__"))
            else {
                continue;
            };
            let (section, key) = (section.to_lowercase(), key.to_lowercase());
            let one = |v: toml::Value| {
                let mut keys = toml::Table::new();
                keys.insert(key.clone(), v);
                let mut t = toml::Table::new();
                t.insert(section.clone(), keys.into());
                t
            };
            let origin = Origin::Env(name.clone());
            let typed = format!("v = {raw}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"));
            let typed_error = match typed {
                Some(v) => match self.lay(one(v), &origin) {
                    Ok(()) => continue,
                    Err(e @ ConfigError::UnknownKey { .. }) => return Err(e),
                    Err(e) => Some(e),
                },
                None => None,
            };
            // Not TOML, or not of the key's type: the text itself (`media_tenant=123`).
            if let Err(e) = self.lay(one(raw.into()), &origin) {
                return Err(typed_error.unwrap_or(e));
            }
        }
        Ok(())
    }

    /// Lays `table`'s sections and keys over the configuration, each key checked alone so
    /// that an unknown key or a wrong type is pinned to it.
    fn lay(&mut self, table: toml::Table, from: &Origin) -> Result<(), ConfigError> {
        let mut merged = to_table(&self.config);
        let sections = keys_of::<Config>();
        let mut set_here = Vec::new();
        for (section, value) in table {
            if !sections.contains(&section.as_str()) {
                return Err(ConfigError::UnknownKey {
                    from: from.clone(),
                    key: section,
                    known: sections.join(", "),
                });
            }
            let toml::Value::Table(keys) = value else {
                return Err(ConfigError::WrongType {
                    from: from.clone(),
                    key: section.clone(),
                    value: value.to_string(),
                    message: format!("must be a [{section}] table"),
                });
            };
            let known = section_keys(&section);
            for (key, value) in keys {
                let name = format!("{section}.{key}");
                if !known.contains(&key.as_str()) {
                    return Err(ConfigError::UnknownKey {
                        from: from.clone(),
                        key: name,
                        known: known.join(", "),
                    });
                }
                let mut alone = to_table(&self.config);
                set(&mut alone, &section, &key, value.clone());
                if let Err(e) = Config::deserialize(toml::Value::Table(alone)) {
                    let mut message = one_line(e.message());
                    if SECRET_KEYS.contains(&name.as_str()) {
                        // serde's message quotes the value: keep only what was expected.
                        message = match message.split_once(", expected ") {
                            Some((_, expected)) => format!("wrong type, expected {expected}"),
                            None => "wrong value".into(),
                        };
                    }
                    return Err(ConfigError::WrongType {
                        from: from.clone(),
                        value: shown(&name, &value),
                        key: name,
                        message,
                    });
                }
                set(&mut merged, &section, &key, value);
                set_here.push(name);
            }
        }
        // Every key deserialized alone, so together they do too.
        self.config =
            Config::deserialize(toml::Value::Table(merged)).map_err(|e| ConfigError::Invalid {
                place: from.to_string(),
                reason: one_line(e.message()),
            })?;
        for name in set_here {
            self.origins.insert(name, from.clone());
        }
        Ok(())
    }

    /// Records that `key` (`section.key`) was set from `origin`.
    pub fn set_origin(&mut self, key: &str, origin: Origin) {
        self.origins.insert(key.to_string(), origin);
    }

    /// Where `key` came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// Checks every range and the keys that need each other; the error names the key, its
    /// value and where it was set.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.config
            .check()
            .map_err(|(key, reason)| ConfigError::Invalid {
                place: self.place(&key),
                reason,
            })
    }

    /// `callmood.toml: alerts.escalate_angry = 1.7`, `--max-calls 0 (server.max_calls)` or
    /// `CALLMOOD_ADDR=… (server.addr)`.
    fn place(&self, key: &str) -> String {
        let value = self.value_text(key);
        match self.origin(key) {
            Origin::Default => format!("{key} = {value} (default)"),
            Origin::File(p) => format!("{}: {key} = {value}", p.display()),
            Origin::Env(v) => format!("{v}={} ({key})", unquoted(&value)),
            Origin::Flag(l) => format!("{l} {} ({key})", unquoted(&value)),
        }
    }

    /// The value of `key` as TOML, secrets hidden; `(not set)` for an absent option.
    pub fn value_text(&self, key: &str) -> String {
        let (section, name) = key.split_once('.').unwrap_or((key, ""));
        match to_table(&self.config)
            .get(section)
            .and_then(|s| s.get(name))
        {
            Some(v) => shown(key, v),
            None => "(not set)".into(),
        }
    }

    /// The effective configuration as TOML, each key with where it came from; secrets are
    /// shown as `"<hidden>"`, options not set as comments.
    pub fn render(&self) -> String {
        let table = to_table(&self.config);
        let mut out = String::new();
        for section in keys_of::<Config>() {
            out.push_str(&format!("[{section}]\n"));
            let values = table.get(*section).and_then(|v| v.as_table());
            for name in section_keys(section) {
                let key = format!("{section}.{name}");
                let line = match values.and_then(|t| t.get(*name)) {
                    Some(v) => format!("{name} = {}", shown(&key, v)),
                    None => format!("# {name} (not set)"),
                };
                out.push_str(&format!("{line:<44} # {}\n", self.origin(&key)));
            }
            out.push('\n');
        }
        out
    }
}

/// Keys whose values are secrets: shown as `"<hidden>"` wherever a value is printed.
pub const SECRET_KEYS: &[&str] = &[
    "ws.audiohook_api_keys",
    "ws.audiohook_client_secrets",
    "ws.twilio_auth_tokens",
    "ws.fork_basic_auth",
];

/// `value` as TOML, or `"<hidden>"` (each element, for a list) if `key` is a secret.
fn shown(key: &str, value: &toml::Value) -> String {
    if !SECRET_KEYS.contains(&key) {
        return value.to_string();
    }
    match value {
        toml::Value::Array(a) => {
            toml::Value::Array(a.iter().map(|_| "<hidden>".into()).collect()).to_string()
        }
        _ => "\"<hidden>\"".into(),
    }
}

/// A TOML string without its quotes, as it was typed in a flag or the environment.
fn unquoted(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// An error message of the `toml` crate on one line, without the quoted line of the file
/// (which may hold a secret): `TOML parse error at line 3, column 7: invalid string`.
fn one_line(m: &str) -> String {
    let quoted = |l: &str| {
        let l = l
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        l.starts_with('|')
    };
    m.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty() && !quoted(l))
        .collect::<Vec<_>>()
        .join(": ")
}

/// `v` as a TOML table; the configuration's floats are all `f32`, written as their
/// shortest `f32` form (`0.2`, not `0.20000000298023224`).
fn to_table<T: Serialize>(v: &T) -> toml::Table {
    fn short(v: &mut toml::Value) {
        match v {
            toml::Value::Float(f) => {
                if let Ok(g) = (*f as f32).to_string().parse::<f64>() {
                    *f = g;
                }
            }
            toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| short(v)),
            toml::Value::Array(a) => a.iter_mut().for_each(short),
            _ => {}
        }
    }
    // Only a path that is not UTF-8 (from a flag) has no TOML form: then nothing is shown
    // rather than a panic (files and variables are text, so the layering never meets one).
    let mut t = toml::Table::try_from(v).unwrap_or_default();
    t.iter_mut().for_each(|(_, v)| short(v));
    t
}

/// Sets `section.key` of a configuration table.
fn set(t: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    if let Some(s) = t
        .entry(section.to_string())
        .or_insert_with(|| toml::Table::new().into())
        .as_table_mut()
    {
        s.insert(key.to_string(), value);
    }
}

/// The process's environment variables whose name and value are UTF-8 (the others can
/// name no key).
pub fn env_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// The keys of one section, in declaration order.
pub fn section_keys(section: &str) -> &'static [&'static str] {
    match section {
        "server" => keys_of::<ServerSection>(),
        "models" => keys_of::<ModelsSection>(),
        "asr" => keys_of::<AsrConfig>(),
        "legs" => keys_of::<LegsSection>(),
        "ws" => keys_of::<WsSection>(),
        "metrics" => keys_of::<MetricsSection>(),
        "security" => keys_of::<SecuritySection>(),
        "alerts" => keys_of::<AlertConfig>(),
        _ => &[],
    }
}

/// Every key, `section.key`, in the order of the file.
pub fn all_keys() -> Vec<String> {
    keys_of::<Config>()
        .iter()
        .flat_map(|s| section_keys(s).iter().map(move |k| format!("{s}.{k}")))
        .collect()
}

/// The field names serde's derive gives a struct, in declaration order: asked of the
/// derived `Deserialize` itself, so no list is kept by hand.
fn keys_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields(Option<&'static [&'static str]>);
    impl<'de> serde::Deserializer<'de> for &mut Fields {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(serde::de::Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut f = Fields(None);
    let _ = T::deserialize(&mut f);
    f.0.unwrap_or(&[])
}

impl Config {
    /// Every range and every pair of keys that need each other: the first key wrong and why.
    pub fn check(&self) -> Result<(), (String, String)> {
        let at_least_1 = |key: &str, v: u64| {
            if v == 0 {
                Err((key.to_string(), "must be at least 1".to_string()))
            } else {
                Ok(())
            }
        };
        let s = &self.server;
        at_least_1("server.max_calls", s.max_calls as u64)?;
        at_least_1("server.max_message_bytes", s.max_message_bytes as u64)?;
        at_least_1("server.max_recording_bytes", s.max_recording_bytes as u64)?;
        at_least_1("server.max_recordings", s.max_recordings as u64)?;
        at_least_1("server.max_ahead_s", s.max_ahead_s)?;
        at_least_1("server.idle_timeout_s", s.idle_timeout_s)?;
        at_least_1("server.config_timeout_s", s.config_timeout_s)?;
        at_least_1("server.max_call_s", s.max_call_s)?;
        if let Err(AsrError::InvalidConfig(m)) = self.asr.validate() {
            // AsrConfig's messages start with the field's name.
            let (field, reason) = m.split_once(' ').unwrap_or((&m, ""));
            return Err((format!("asr.{field}"), reason.to_string()));
        }
        if let Some(host) = &self.legs.advertise_addr {
            crate::server::legs::check_advertise_addr(host)
                .map_err(|reason| ("legs.advertise_addr".to_string(), reason))?;
        }
        at_least_1("legs.idle_timeout_s", self.legs.idle_timeout_s)?;
        at_least_1("legs.join_timeout_s", self.legs.join_timeout_s)?;
        at_least_1("ws.max_message_bytes", self.ws.max_message_bytes as u64)?;
        ws::audiohook::ClientSecrets::parse(&self.ws.audiohook_client_secrets)
            .map_err(|reason| ("ws.audiohook_client_secrets".to_string(), reason))?;
        if self
            .ws
            .twilio_auth_tokens
            .iter()
            .any(|t| t.trim().is_empty())
        {
            return Err((
                "ws.twilio_auth_tokens".to_string(),
                "an auth token is empty".to_string(),
            ));
        }
        for (i, pair) in self.ws.fork_basic_auth.iter().enumerate() {
            if pair.split_once(':').is_none_or(|(user, _)| user.is_empty()) {
                return Err((
                    "ws.fork_basic_auth".to_string(),
                    format!("entry {}: not USER:PASSWORD", i + 1),
                ));
            }
        }
        if let Some(url) = &self.ws.twilio_public_url {
            ws::twilio_signature::check_public_url(url)
                .map_err(|reason| ("ws.twilio_public_url".to_string(), reason))?;
            if self.ws.twilio_auth_tokens.is_empty() {
                return Err((
                    "ws.twilio_public_url".to_string(),
                    "needs ws.twilio_auth_tokens".to_string(),
                ));
            }
        }
        let sec = &self.security;
        let needs = |key: &str, other: &str| {
            Err((format!("security.{key}"), format!("needs security.{other}")))
        };
        if sec.auth_tokens.is_none() {
            if sec.tenant_max_calls.is_some() {
                return needs("tenant_max_calls", "auth_tokens");
            }
            if sec.tenant_max_recordings.is_some() {
                return needs("tenant_max_recordings", "auth_tokens");
            }
            if sec.media_tenant.is_some() {
                return needs("media_tenant", "auth_tokens");
            }
        }
        if let Some(t) = &sec.media_tenant {
            use crate::server::security::{valid_tenant_name, TENANT_NAME_RULE};
            if !valid_tenant_name(t) {
                return Err((
                    "security.media_tenant".to_string(),
                    TENANT_NAME_RULE.to_string(),
                ));
            }
        }
        if let Some(n) = sec.tenant_max_calls {
            at_least_1("security.tenant_max_calls", n as u64)?;
        }
        if let Some(n) = sec.tenant_max_recordings {
            at_least_1("security.tenant_max_recordings", n as u64)?;
        }
        if sec.payment_window_s > 600 {
            return Err((
                "security.payment_window_s".to_string(),
                "must be at most 600 (0 turns the window off)".to_string(),
            ));
        }
        match (&sec.tls_cert, &sec.tls_key) {
            (Some(_), None) => return needs("tls_cert", "tls_key"),
            (None, Some(_)) => return needs("tls_key", "tls_cert"),
            _ => {}
        }
        if sec.tls_client_ca.is_some() && sec.tls_cert.is_none() {
            return needs("tls_client_ca", "tls_cert");
        }
        if self.legs.audiosocket_tls {
            let other = if sec.tls_cert.is_none() {
                "security.tls_cert"
            } else if self.legs.audiosocket_addr.is_none() {
                "legs.audiosocket_addr"
            } else {
                ""
            };
            if !other.is_empty() {
                return Err(("legs.audiosocket_tls".into(), format!("needs {other}")));
            }
        }
        self.alerts
            .validate()
            .map_err(|(field, reason)| (format!("alerts.{field}"), reason))
    }

    /// The service's runtime settings (after [`Config::check`]).
    pub fn serve_config(&self) -> ServeConfig {
        let m = &self.models;
        let sec = &self.security;
        ServeConfig {
            addr: self.server.addr,
            model: m.whisper.clone(),
            emotion_model: m.emotion.then(|| m.voice.clone()),
            words_model: (m.emotion && m.words).then(|| (m.text.clone(), m.lexicon.clone())),
            asr: self.asr.clone(),
            max_calls: self.server.max_calls,
            max_message_bytes: self.server.max_message_bytes,
            max_recording_bytes: self.server.max_recording_bytes,
            max_recordings: self.server.max_recordings,
            max_ahead: Duration::from_secs(self.server.max_ahead_s),
            idle_timeout: Duration::from_secs(self.server.idle_timeout_s),
            config_timeout: Duration::from_secs(self.server.config_timeout_s),
            call: CallSettings {
                max_call_ms: self.server.max_call_s.saturating_mul(1000),
                ..CallSettings::default()
            },
            alerts: self.alerts.clone(),
            legs: LegsConfig {
                rtp_addr: self.legs.rtp_addr,
                advertise_addr: self.legs.advertise_addr.clone(),
                rtp_ports: self.legs.rtp_ports.0.clone(),
                rtp_allow: self.legs.rtp_allow.0.clone(),
                idle_timeout: Duration::from_secs(self.legs.idle_timeout_s),
                join_timeout: Duration::from_secs(self.legs.join_timeout_s),
            },
            audiosocket_addr: self.legs.audiosocket_addr,
            metrics_addr: self.metrics.addr,
            drain_timeout: Duration::from_secs(self.server.drain_timeout_s),
            ws_addr: self.ws.addr,
            ws: ws::WsConfig {
                max_message_bytes: self.ws.max_message_bytes,
                twilio_call_id_param: self.ws.twilio_call_id_param.clone(),
                audiohook_api_keys: self.ws.audiohook_api_keys.clone(),
                audiohook_client_secrets: ws::audiohook::ClientSecrets::parse(
                    &self.ws.audiohook_client_secrets,
                )
                .expect("checked by Config::check"),
                twilio_auth_tokens: self.ws.twilio_auth_tokens.clone(),
                twilio_public_url: self.ws.twilio_public_url.clone(),
                fork_basic_auth: self.ws.fork_basic_auth.clone(),
                ..ws::WsConfig::default()
            },
            security: security::SecurityConfig {
                auth_tokens: sec.auth_tokens.clone(),
                tenant_max_calls: sec.tenant_max_calls,
                tenant_max_recordings: sec.tenant_max_recordings,
                media_tenant: sec.media_tenant.clone(),
                redact_all_numbers: sec.redact_all_numbers,
                payment_window_ms: Some(sec.payment_window_s * 1000),
                tls: match (&sec.tls_cert, &sec.tls_key) {
                    (Some(cert), Some(key)) => Some(security::TlsFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                        client_ca: sec.tls_client_ca.clone(),
                    }),
                    _ => None,
                },
                ws_plaintext: self.ws.plaintext,
                audiosocket_tls: self.legs.audiosocket_tls,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::legs::DEFAULT_RTP_PORTS;

    #[test]
    fn port_ranges_parse_and_print_alike() {
        let default = PortRange(DEFAULT_RTP_PORTS);
        assert_eq!(default.to_string().parse(), Ok(default));
        assert_eq!("5004".parse(), Ok(PortRange(5004..=5004)));
        assert_eq!(" 10-20".parse(), Ok(PortRange(10..=20)));
        assert!("0-10".parse::<PortRange>().is_err());
        assert!("20-10".parse::<PortRange>().is_err());
        assert!("70000".parse::<PortRange>().is_err());
    }

    fn parse(toml: &str) -> Result<Layered, ConfigError> {
        let l = Layered::from_toml(toml, Path::new("callmood.toml"))?;
        l.validate()?;
        Ok(l)
    }

    #[test]
    fn the_defaults_are_valid_and_every_section_has_keys() {
        Config::default().check().unwrap();
        for s in keys_of::<Config>() {
            assert!(!section_keys(s).is_empty(), "{s}");
        }
        assert_eq!(all_keys().len(), 71);
    }

    #[test]
    fn a_file_becomes_the_services_settings() {
        let l = parse(
            "[server]\nmax_call_s = 60\nidle_timeout_s = 5\n\
             [legs]\nrtp_ports = \"5000-5009\"\njoin_timeout_s = 3\n\
             [alerts]\nescalate_angry = 0.7\nescalate_frustration = 1\n\
             [models]\nwords = false\n\
             [security]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
        )
        .unwrap();
        let s = l.config.serve_config();
        assert_eq!(s.call.max_call_ms, 60_000);
        assert_eq!(s.idle_timeout, Duration::from_secs(5));
        assert_eq!(s.legs.rtp_ports, 5000..=5009);
        assert_eq!(s.legs.join_timeout, Duration::from_secs(3));
        assert_eq!(s.alerts.escalate_angry, 0.7);
        // An integer where a number is asked is taken.
        assert_eq!(s.alerts.escalate_frustration, Some(1.0));
        assert!(s.emotion_model.is_some() && s.words_model.is_none());
        let tls = s.security.tls.as_ref().unwrap();
        assert_eq!((&tls.cert, &tls.key), (&"c.pem".into(), &"k.pem".into()));
        // With a certificate, WebSocket media is wss:// unless told otherwise; AudioSocket
        // stays plain unless told otherwise (Asterisk's speaks no TLS).
        assert!(!s.security.ws_plaintext && !s.security.audiosocket_tls);
        assert_eq!(
            l.origin("legs.rtp_ports"),
            Origin::File("callmood.toml".into())
        );
        assert_eq!(l.origin("legs.rtp_addr"), Origin::Default);
    }

    #[test]
    fn errors_name_the_key_its_value_and_the_file() {
        let e = |toml: &str| parse(toml).unwrap_err().to_string();
        assert_eq!(
            e("[alerts]\nescalate_angry = 1.7\n"),
            "callmood.toml: alerts.escalate_angry = 1.7: must be within 0..1"
        );
        assert_eq!(
            e("[alerts]\nanxious_arousal = -2\n"),
            "callmood.toml: alerts.anxious_arousal = -2.0: must be within -1..1"
        );
        assert_eq!(
            e("[asr]\ngap_s = 9\n"),
            "callmood.toml: asr.gap_s = 9.0: must be in 0..=5"
        );
        assert_eq!(
            e("[security]\ntls_key = \"k.pem\"\n"),
            "callmood.toml: security.tls_key = \"k.pem\": needs security.tls_cert"
        );
        assert_eq!(
            e("[security]\nauth_tokens = \"t\"\nmedia_tenant = \"pbx one\"\n"),
            "callmood.toml: security.media_tenant = \"pbx one\": \
             tenant name: at most 64 of A-Z a-z 0-9 . _ - expected"
        );
        assert_eq!(
            e("[legs]\naudiosocket_tls = true\n"),
            "callmood.toml: legs.audiosocket_tls = true: needs security.tls_cert"
        );
        assert_eq!(
            e("[legs]\naudiosocket_tls = true\n\
               [security]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n"),
            "callmood.toml: legs.audiosocket_tls = true: needs legs.audiosocket_addr"
        );
        assert!(
            e("[server]\naddr = 5\n").starts_with("callmood.toml: server.addr = 5: invalid type")
        );
        assert!(e("[server\n").starts_with("callmood.toml: TOML parse error at line 1"));
        assert!(e("[ws]\nmax_message_bytes = 0\n")
            .contains("ws.max_message_bytes = 0: must be at least 1"));
    }

    #[test]
    fn any_key_can_be_set_from_the_environment() {
        let mut l = parse("[alerts]\nescalate_angry = 0.6\n").unwrap();
        let var = |k: &str, v: &str| (k.to_string(), v.to_string());
        l.apply_env([
            var("CALLMOOD_ALERTS__ESCALATE_ANGRY", "0.7"),
            var("CALLMOOD_SERVER__ADDR", "127.0.0.1:7"),
            var("CALLMOOD_SECURITY__MEDIA_TENANT", "123"),
            var("CALLMOOD_WS__AUDIOHOOK_API_KEYS", "[\"k1\", \"k2\"]"),
            var("CALLMOOD_ADDR", "ignored: a flag's variable"),
            var("HOME", "/root"),
        ])
        .unwrap();
        assert_eq!(l.config.alerts.escalate_angry, 0.7);
        assert_eq!(l.config.server.addr, "127.0.0.1:7".parse().unwrap());
        assert_eq!(l.config.security.media_tenant.as_deref(), Some("123"));
        assert_eq!(l.config.ws.audiohook_api_keys, ["k1", "k2"]);
        assert_eq!(
            l.origin("alerts.escalate_angry"),
            Origin::Env("CALLMOOD_ALERTS__ESCALATE_ANGRY".into())
        );
        assert_eq!(l.origin("alerts.cooldown_ms"), Origin::Default);
        let e = |k: &str, v: &str| l.clone().apply_env([var(k, v)]).unwrap_err().to_string();
        assert!(e("CALLMOOD_ALERTS__ESCALAT_ANGRY", "1")
            .starts_with("env CALLMOOD_ALERTS__ESCALAT_ANGRY: alerts.escalat_angry: unknown key"));
        assert_eq!(
            e("CALLMOOD_SERVER__MAX_CALLS", "many"),
            "env CALLMOOD_SERVER__MAX_CALLS: server.max_calls = \"many\": invalid type: string \"many\", expected usize"
        );
    }

    #[test]
    fn the_rendered_configuration_reads_back_and_hides_secrets() {
        let mut l = parse("[ws]\naudiohook_api_keys = [\"k1-secret\"]\n").unwrap();
        l.set_origin("server.max_calls", Origin::Flag("--max-calls".into()));
        let text = l.render();
        assert!(!text.contains("k1-secret"), "{text}");
        assert!(
            text.contains("audiohook_api_keys = [\"<hidden>\"]"),
            "{text}"
        );
        assert!(text.contains("# flag --max-calls"), "{text}");
        // Without the secret, what is printed is a configuration file that gives the same.
        let plain = parse("[alerts]\ncooldown_ms = 5\n").unwrap();
        let back = Layered::from_toml(&plain.render(), Path::new("x")).unwrap();
        assert_eq!(back.config, plain.config);
    }
}
