//! `callmood serve`: the gRPC service; `callmood config check`: the configuration it would
//! run with. Both lay the flags and environment over the file ([`crate::config`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::args::{AsrArgs, EmotionArgs};
use crate::config::{CidrList, Config, Layered, Origin, PortRange};
use crate::server;
use crate::server::legs::{DEFAULT_LEG_IDLE_TIMEOUT, DEFAULT_RTP_ADDR, DEFAULT_RTP_PORTS};

/// `serve`'s flags (and `config check`'s, which prints what they make). Every one sets a key
/// of the configuration ([`crate::config::Config`]) over the file's and the defaults.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file (callmood.example.toml lists every key); the environment
    /// and flags override it.
    #[arg(long, env = "CALLMOOD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "CALLMOOD_ADDR", default_value = server::DEFAULT_ADDR)]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub asr: AsrArgs,
    #[command(flatten)]
    pub emotion: EmotionArgs,
    /// Pack waiting utterances of different live calls into one Whisper window (continuous
    /// batching; they share the decoder's context within the window);
    /// --pack-across-calls=false packs each call's utterances alone.
    #[arg(
        long,
        env = "CALLMOOD_PACK_ACROSS_CALLS",
        value_name = "BOOL",
        default_value_t = crate::asr::pool::DEFAULT_PACK_ACROSS_CALLS,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub pack_across_calls: bool,
    /// Calls in flight at most; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "CALLMOOD_MAX_CALLS", default_value_t = server::DEFAULT_MAX_CALLS)]
    pub max_calls: usize,
    /// Address RTP legs (OpenRtpLeg) bind.
    #[arg(long, env = "CALLMOOD_RTP_ADDR", default_value_t = DEFAULT_RTP_ADDR)]
    pub rtp_addr: IpAddr,
    /// Host (IP or DNS name) OpenRtpLeg tells clients to send RTP to, e.g. this replica's
    /// own IP behind a load balancer (default: --rtp-addr unless it is 0.0.0.0 or ::).
    #[arg(long, env = "CALLMOOD_ADVERTISE_ADDR", value_parser = parse_advertise_addr)]
    pub advertise_addr: Option<String>,
    /// UDP ports handed out to RTP legs, FIRST-LAST.
    #[arg(long, env = "CALLMOOD_RTP_PORTS", default_value_t = PortRange(DEFAULT_RTP_PORTS))]
    pub rtp_ports: PortRange,
    /// Networks RTP legs accept datagrams from, CIDR[,CIDR...] (e.g. 10.0.0.0/8,192.0.2.7);
    /// datagrams from elsewhere are dropped and counted. Default: every address.
    #[arg(long, env = "CALLMOOD_RTP_ALLOW", value_name = "CIDR[,CIDR...]")]
    pub rtp_allow: Option<CidrList>,
    /// Seconds without a packet after which an RTP or AudioSocket leg ends.
    #[arg(long, env = "CALLMOOD_LEG_IDLE_TIMEOUT", default_value_t = DEFAULT_LEG_IDLE_TIMEOUT.as_secs())]
    pub leg_idle_timeout: u64,
    /// Accept Asterisk AudioSocket connections on this address (e.g. 0.0.0.0:9093); off by default.
    #[arg(long, env = "CALLMOOD_AUDIOSOCKET_ADDR")]
    pub audiosocket_addr: Option<SocketAddr>,
    /// Serve AudioSocket over TLS with --tls-cert, for a TLS-terminating proxy (stunnel) beside Asterisk; client certificates of --tls-client-ca are then required.
    #[arg(long, env = "CALLMOOD_AUDIOSOCKET_TLS")]
    pub audiosocket_tls: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9100); off by default.
    #[arg(long, env = "CALLMOOD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// On SIGTERM / Ctrl-C, seconds the calls in flight get to finish and send their summaries.
    #[arg(long, env = "CALLMOOD_DRAIN_TIMEOUT", default_value_t = server::DEFAULT_DRAIN_TIMEOUT.as_secs())]
    pub drain_timeout: u64,
    /// Accept WebSocket media (/twilio, /fork, /audiohook) on this address (e.g. 0.0.0.0:8080); off by default.
    #[arg(long, env = "CALLMOOD_WS_ADDR")]
    pub ws_addr: Option<SocketAddr>,
    /// Serve plain ws:// even with --tls-cert (a TLS-terminating proxy in front); otherwise the certificate serves wss://.
    #[arg(long, env = "CALLMOOD_WS_PLAINTEXT")]
    pub ws_plaintext: bool,
    /// Twilio Media Streams: the customParameters key whose value is the call id (default: callSid).
    #[arg(long, env = "CALLMOOD_TWILIO_CALL_ID_PARAM")]
    pub twilio_call_id_param: Option<String>,
    /// AudioHook: an accepted X-API-KEY (repeat, or comma-separated in the env); none refuses AudioHook.
    #[arg(
        long = "audiohook-api-key",
        env = "CALLMOOD_AUDIOHOOK_API_KEYS",
        value_delimiter = ','
    )]
    pub audiohook_api_keys: Vec<String>,
    /// AudioHook: API_KEY:BASE64_SECRET, the integration's client secret; that key's upgrade requests must then be signed with it (repeat, or comma-separated in the env).
    #[arg(long, env = "CALLMOOD_AUDIOHOOK_CLIENT_SECRETS", value_delimiter = ',')]
    pub audiohook_client_secret: Vec<String>,
    /// Twilio: an account's auth token; /twilio streams then need a valid X-Twilio-Signature (repeat, or comma-separated in the env).
    #[arg(long, env = "CALLMOOD_TWILIO_AUTH_TOKENS", value_delimiter = ',')]
    pub twilio_auth_token: Vec<String>,
    /// Twilio: the wss:// origin your <Stream url> names, when a proxy in front changes the Host header (default: wss:// and the Host).
    #[arg(long, env = "CALLMOOD_TWILIO_PUBLIC_URL")]
    pub twilio_public_url: Option<String>,
    /// Audio fork: an accepted USER:PASSWORD (HTTP Basic, as mod_audio_fork and jambonz send it); /fork then needs one (repeat, or comma-separated in the env).
    #[arg(long, env = "CALLMOOD_FORK_BASIC_AUTH", value_delimiter = ',')]
    pub fork_basic_auth: Vec<String>,
    /// Tokens, tenants and TLS (boxed: the flags would make every `Command` large).
    #[command(flatten)]
    pub security: Box<SecurityArgs>,
    /// Where each flag's value came from, by clap id: only flags typed and environment
    /// variables set are here. Filled by [`super::Cli::parse_sourced`]; `None` after a
    /// plain `Cli::parse`, which cannot tell a typed flag from its default.
    #[arg(skip)]
    pub origins: Option<BTreeMap<String, Origin>>,
}

/// `serve`'s security flags.
#[derive(Args, Debug)]
pub struct SecurityArgs {
    /// Require `authorization: Bearer TOKEN` on every RPC; FILE has `TOKEN TENANT` lines (and `cert:NAME TENANT` for client certificates; # comments), reloaded on SIGHUP.
    #[arg(long, env = "CALLMOOD_AUTH_TOKENS", value_name = "FILE")]
    pub auth_tokens: Option<std::path::PathBuf>,
    /// With --auth-tokens: calls in flight per tenant at most.
    #[arg(long, env = "CALLMOOD_TENANT_MAX_CALLS")]
    pub tenant_max_calls: Option<usize>,
    /// With --auth-tokens: the tenant that owns calls coming over AudioSocket and WebSocket media whose credential the token file does not map (no tenant, so no RPC reaches them, if unset).
    #[arg(long, env = "CALLMOOD_MEDIA_TENANT")]
    pub media_tenant: Option<String>,
    /// Serve gRPC over TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "CALLMOOD_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "CALLMOOD_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Require client certificates signed by this CA (PEM); needs --tls-cert.
    #[arg(long, env = "CALLMOOD_TLS_CLIENT_CA", value_name = "PEM")]
    pub tls_client_ca: Option<std::path::PathBuf>,
}

/// Checks `--advertise-addr` (an IP address or a DNS name).
fn parse_advertise_addr(s: &str) -> Result<String, String> {
    crate::server::legs::check_advertise_addr(s)?;
    Ok(s.to_string())
}

/// Caps glibc's malloc arenas at `n` (`server.malloc_arena_max`; 0 leaves glibc's own
/// limit). glibc reads `MALLOC_ARENA_MAX` only when the process starts, so the process
/// runs itself again (`exec`: the same pid, arguments and environment) with the variable
/// set; a `MALLOC_ARENA_MAX` already in the environment is left as it is, which also ends
/// the recursion. Returns only when nothing was to be done or the exec failed (said on
/// stderr: the server then runs with glibc's default arenas).
fn cap_malloc_arenas(n: usize) {
    if n == 0 || !cfg!(target_env = "gnu") || std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = match std::env::current_exe() {
            Ok(exe) => std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("MALLOC_ARENA_MAX", n.to_string())
                .exec()
                .to_string(),
            Err(e) => e.to_string(),
        };
        eprintln!(
            "callmood: cannot run again with MALLOC_ARENA_MAX={n} ({err}); glibc's default malloc arenas apply"
        );
    }
}

/// Runs the service until it is stopped.
pub(super) fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let layered = a.layered()?;
    check_files(&layered.config, false)?;
    cap_malloc_arenas(layered.config.server.malloc_arena_max);
    if let Some(path) = &a.config {
        eprintln!(
            "callmood: configuration from {} (`callmood config check` shows it)",
            path.display()
        );
    }
    super::runtime()?.block_on(server::serve(layered.config.serve_config()))
}

/// `callmood config check`: the configuration `serve` would run with, validated and
/// printed with where each value came from.
pub(super) fn check(a: ServeArgs) -> anyhow::Result<()> {
    let layered = a.layered()?;
    check_files(&layered.config, true)?;
    print!("{}", layered.render());
    eprintln!("callmood: configuration OK");
    Ok(())
}

/// Refuses, before any model loads, files the service would fail on: the Whisper model,
/// the token file and the TLS PEM files (and, with `all`, the emotion models too). Token
/// and key contents are never printed.
fn check_files(c: &Config, all: bool) -> anyhow::Result<()> {
    let m = &c.models;
    if !m.whisper.is_file() {
        bail!(
            "model file {} not found: run models/fetch.sh to fetch and convert it, or pass --model (models.whisper)",
            m.whisper.display()
        );
    }
    if all && m.emotion {
        let mut need = vec![("models.voice", &m.voice, true)];
        if m.words {
            need.push(("models.text", &m.text, true));
            need.push(("models.lexicon", &m.lexicon, false));
        }
        for (key, path, file) in need {
            if (file && !path.is_file()) || (!file && !path.is_dir()) {
                bail!("{key} = {}: not found", path.display());
            }
        }
    }
    if let Some(path) = &c.security.auth_tokens {
        // Refused before the models load; the service reads the file again as it starts.
        crate::server::security::Tokens::read(path)?;
    }
    let security = c.serve_config().security;
    if let Some(tls) = &security.tls {
        tls.server_config()?;
        // Parses the PEM files too (tonic's settings only read them).
        crate::server::tls::ws_accept(&security)?;
        crate::server::tls::audiosocket_accept(&security)?;
    }
    Ok(())
}

impl ServeArgs {
    /// The configuration: defaults, then `--config`'s file, then `CALLMOOD_SECTION__KEY`
    /// variables, then the flags and their own variables (clap gives a flag's variable only
    /// where the flag was not typed); checked.
    pub fn layered(&self) -> anyhow::Result<Layered> {
        // `CALLMOOD_SECTION__KEY` for any key; the flags' own variables come with the flags.
        let mut l = Layered::from_file_and_env(self.config.as_deref(), crate::config::env_vars())?;
        let Some(o) = &self.origins else {
            bail!("serve's flags were parsed without their sources: use Cli::parse_sourced");
        };
        let (asr, em, sec) = (&self.asr, &self.emotion, &*self.security);
        // Each flag's clap id (its field's name) onto its key; only flags and variables
        // actually given count, so a file's value is not undone by a flag's default.
        macro_rules! overlay {
            ($($id:literal => $sec:ident . $key:ident = $val:expr;)*) => {$(
                if let Some(origin) = o.get($id) {
                    l.config.$sec.$key = $val;
                    l.set_origin(concat!(stringify!($sec), ".", stringify!($key)), origin.clone());
                }
            )*};
        }
        overlay! {
            "addr" => server.addr = self.addr;
            "max_calls" => server.max_calls = self.max_calls;
            "drain_timeout" => server.drain_timeout_s = self.drain_timeout;
            "model" => models.whisper = asr.model.clone();
            "emotion_model" => models.voice = em.emotion_model.clone();
            "text_model" => models.text = em.text_model.clone();
            "lexicon" => models.lexicon = em.lexicon.clone();
            "no_emotion" => models.emotion = !em.no_emotion;
            "no_words" => models.words = !em.no_words;
            "workers" => asr.workers = asr.workers;
            "threads" => asr.threads_per_worker = asr.threads;
            "queue" => asr.queue_capacity = asr.queue;
            "max_queue_wait" => asr.max_queue_wait_s = asr.max_queue_wait;
            "gap_s" => asr.gap_s = asr.gap_s;
            "pack_across_calls" => asr.pack_across_calls = self.pack_across_calls;
            "rtp_addr" => legs.rtp_addr = self.rtp_addr;
            "advertise_addr" => legs.advertise_addr = self.advertise_addr.clone();
            "rtp_ports" => legs.rtp_ports = self.rtp_ports.clone();
            "rtp_allow" => legs.rtp_allow = self.rtp_allow.clone().unwrap_or_default();
            "leg_idle_timeout" => legs.idle_timeout_s = self.leg_idle_timeout;
            "audiosocket_addr" => legs.audiosocket_addr = self.audiosocket_addr;
            "audiosocket_tls" => legs.audiosocket_tls = self.audiosocket_tls;
            "metrics_addr" => metrics.addr = self.metrics_addr;
            "ws_addr" => ws.addr = self.ws_addr;
            "ws_plaintext" => ws.plaintext = self.ws_plaintext;
            "twilio_call_id_param" => ws.twilio_call_id_param = self.twilio_call_id_param.clone();
            "audiohook_api_keys" => ws.audiohook_api_keys = self.audiohook_api_keys.clone();
            "audiohook_client_secret" => ws.audiohook_client_secrets = self.audiohook_client_secret.clone();
            "twilio_auth_token" => ws.twilio_auth_tokens = self.twilio_auth_token.clone();
            "twilio_public_url" => ws.twilio_public_url = self.twilio_public_url.clone();
            "fork_basic_auth" => ws.fork_basic_auth = self.fork_basic_auth.clone();
            "auth_tokens" => security.auth_tokens = sec.auth_tokens.clone();
            "tenant_max_calls" => security.tenant_max_calls = sec.tenant_max_calls;
            "media_tenant" => security.media_tenant = sec.media_tenant.clone();
            "tls_cert" => security.tls_cert = sec.tls_cert.clone();
            "tls_key" => security.tls_key = sec.tls_key.clone();
            "tls_client_ca" => security.tls_client_ca = sec.tls_client_ca.clone();
        }
        l.validate()?;
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::CommandFactory;

    /// A value each of serve's flags accepts (together with the others).
    fn sample(long: &str) -> &'static str {
        match long {
            "addr" => "127.0.0.1:1",
            "audiosocket-addr" => "127.0.0.1:2",
            "metrics-addr" => "127.0.0.1:3",
            "ws-addr" => "127.0.0.1:4",
            "rtp-addr" => "127.0.0.1",
            "advertise-addr" => "10.0.0.9",
            "rtp-ports" => "5000-5001",
            "rtp-allow" => "127.0.0.0/8,::1",
            "workers" | "threads" | "queue" | "max-calls" | "tenant-max-calls" => "2",
            "max-queue-wait" | "leg-idle-timeout" | "drain-timeout" | "gap-s" => "5",
            "model" | "emotion-model" | "text-model" | "lexicon" | "auth-tokens" | "tls-cert"
            | "tls-key" | "tls-client-ca" => "some/file",
            "twilio-call-id-param" | "audiohook-api-key" | "media-tenant" => "x",
            "audiohook-client-secret" => "k:c2VjcmV0",
            "twilio-auth-token" => "t",
            "twilio-public-url" => "wss://callmood.example.com",
            "fork-basic-auth" => "fs:pw",
            "pack-across-calls" => "false",
            other => panic!("--{other}: a new serve flag: map it onto a key in ServeArgs::layered and give it a sample here"),
        }
    }

    #[test]
    fn every_serve_flag_sets_a_key_of_the_configuration() {
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").unwrap();
        let mut argv = vec!["callmood".to_string(), "serve".to_string()];
        let mut longs = Vec::new();
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "config") {
                continue;
            }
            argv.push(format!("--{long}"));
            if arg.get_action().takes_values() {
                argv.push(sample(long).to_string());
            }
            longs.push(long);
        }
        let Command::Serve(a) = Cli::try_parse_sourced(&argv).unwrap().command else {
            panic!("serve parsed as another command")
        };
        let l = a.layered().unwrap();
        for long in longs {
            let flag = Origin::Flag(format!("--{long}"));
            assert!(
                l.origins.values().any(|o| *o == flag),
                "--{long} sets no key"
            );
        }
        assert_eq!(l.config.server.addr, "127.0.0.1:1".parse().unwrap());
        assert_eq!(l.config.legs.rtp_ports, PortRange(5000..=5001));
        assert!(!l.config.models.emotion && !l.config.models.words);
        assert_eq!(l.config.security.tls_client_ca, Some("some/file".into()));
    }

    #[test]
    fn a_plain_parse_is_refused_rather_than_ignoring_the_flags() {
        use clap::Parser;
        let Command::Serve(a) = Cli::try_parse_from(["callmood", "serve", "--max-calls", "3"])
            .unwrap()
            .command
        else {
            panic!("serve parsed as another command")
        };
        assert!(a
            .layered()
            .unwrap_err()
            .to_string()
            .contains("parse_sourced"));
    }

    #[test]
    fn the_flags_defaults_are_the_configurations() {
        let Command::Serve(mut a) = Cli::try_parse_sourced(["callmood", "serve"])
            .unwrap()
            .command
        else {
            panic!("serve parsed as another command")
        };
        // Lay every flag's value over the defaults as if typed, except those the test's
        // own environment set: each must equal the configuration's default.
        let origins = a.origins.get_or_insert_with(Default::default);
        let from_env: Vec<String> = origins.keys().cloned().collect();
        let cmd = Cli::command();
        for arg in cmd.find_subcommand("serve").unwrap().get_arguments() {
            let id = arg.get_id().to_string();
            if !from_env.contains(&id) {
                origins.insert(id, Origin::Flag("--default".into()));
            }
        }
        let l = a.layered().unwrap();
        let defaults = Layered::default();
        let mut compared = 0;
        for (key, origin) in &l.origins {
            if *origin == Origin::Flag("--default".into()) {
                assert_eq!(l.value_text(key), defaults.value_text(key), "{key}");
                compared += 1;
            }
        }
        assert!(
            compared >= 20 || !from_env.is_empty(),
            "{compared} keys compared"
        );
    }
}
