//! `callmood serve`: the gRPC service.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use anyhow::bail;
use clap::Args;

use super::args::{AsrArgs, EmotionArgs};
use crate::call::CallSettings;
use crate::server::legs::{LegsConfig, DEFAULT_LEG_IDLE_TIMEOUT, DEFAULT_RTP_PORTS};
use crate::server::{self, ServeConfig};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CALLMOOD_ADDR", default_value = server::DEFAULT_ADDR)]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub asr: AsrArgs,
    #[command(flatten)]
    pub emotion: EmotionArgs,
    /// Calls in flight at most; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CALLS)]
    pub max_calls: usize,
    /// Address RTP legs (OpenRtpLeg) bind.
    #[arg(long, env = "CALLMOOD_RTP_ADDR", default_value_t = LegsConfig::default().rtp_addr)]
    pub rtp_addr: IpAddr,
    /// UDP ports handed out to RTP legs, FIRST-LAST.
    #[arg(long, env = "CALLMOOD_RTP_PORTS", default_value_t = PortRange(DEFAULT_RTP_PORTS), value_parser = parse_port_range)]
    pub rtp_ports: PortRange,
    /// Seconds without a packet after which an RTP or AudioSocket leg ends.
    #[arg(long, default_value_t = DEFAULT_LEG_IDLE_TIMEOUT.as_secs())]
    pub leg_idle_timeout: u64,
    /// Accept Asterisk AudioSocket connections on this address (e.g. 0.0.0.0:9093); off by default.
    #[arg(long, env = "CALLMOOD_AUDIOSOCKET_ADDR")]
    pub audiosocket_addr: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9100); off by default.
    #[arg(long, env = "CALLMOOD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// On SIGTERM / Ctrl-C, seconds the calls in flight get to finish and send their summaries.
    #[arg(long, env = "CALLMOOD_DRAIN_TIMEOUT", default_value_t = server::DEFAULT_DRAIN_TIMEOUT.as_secs())]
    pub drain_timeout: u64,
    /// Accept WebSocket media (/twilio, /fork, /audiohook) on this address (e.g. 0.0.0.0:8080); off by default.
    #[arg(long, env = "CALLMOOD_WS_ADDR")]
    pub ws_addr: Option<SocketAddr>,
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
    /// Tokens, tenants and TLS (boxed: the flags would make every `Command` large).
    #[command(flatten)]
    pub security: Box<SecurityArgs>,
}

/// `serve`'s security flags.
#[derive(Args, Debug)]
pub struct SecurityArgs {
    /// Require `authorization: Bearer TOKEN` on every RPC; FILE has `TOKEN TENANT` lines (# comments), reloaded on SIGHUP.
    #[arg(long, env = "CALLMOOD_AUTH_TOKENS", value_name = "FILE")]
    pub auth_tokens: Option<std::path::PathBuf>,
    /// With --auth-tokens: calls in flight per tenant at most.
    #[arg(long, env = "CALLMOOD_TENANT_MAX_CALLS", requires = "auth_tokens")]
    pub tenant_max_calls: Option<usize>,
    /// With --auth-tokens: the tenant that owns calls coming over AudioSocket and WebSocket media (no tenant, so no RPC reaches them, if unset).
    #[arg(long, env = "CALLMOOD_MEDIA_TENANT", requires = "auth_tokens")]
    pub media_tenant: Option<String>,
    /// Serve gRPC over TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(
        long,
        env = "CALLMOOD_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        env = "CALLMOOD_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// Require client certificates signed by this CA (PEM); needs --tls-cert.
    #[arg(
        long,
        env = "CALLMOOD_TLS_CLIENT_CA",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<std::path::PathBuf>,
}

/// A range of UDP ports as `--rtp-ports` takes and shows it: `FIRST-LAST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRange(pub RangeInclusive<u16>);

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0.start(), self.0.end())
    }
}

/// Parses `FIRST-LAST` (or a single port).
fn parse_port_range(s: &str) -> Result<PortRange, String> {
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

/// Runs the service until it is stopped.
pub(super) fn serve(a: ServeArgs) -> anyhow::Result<()> {
    if a.max_calls == 0 {
        bail!("--max-calls must be at least 1");
    }
    if a.leg_idle_timeout == 0 {
        bail!("--leg-idle-timeout must be at least 1 s");
    }
    let sec = *a.security;
    if sec.tenant_max_calls == Some(0) {
        bail!("--tenant-max-calls must be at least 1");
    }
    if let Some(path) = &sec.auth_tokens {
        // Refused before the models load; the service reads the file again as it starts.
        crate::server::security::Tokens::read(path)?;
    }
    let tls = match (sec.tls_cert, sec.tls_key) {
        (Some(cert), Some(key)) => {
            let files = server::security::TlsFiles {
                cert,
                key,
                client_ca: sec.tls_client_ca,
            };
            // Refused before the models load when a file cannot be read.
            files.server_config()?;
            Some(files)
        }
        _ => None,
    };
    let cfg = ServeConfig {
        addr: a.addr,
        model: a.asr.require_model()?.to_path_buf(),
        emotion_model: a.emotion.path(),
        words_model: a.emotion.words_paths(),
        asr: a.asr.config()?,
        max_calls: a.max_calls,
        max_message_bytes: server::DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout: server::DEFAULT_IDLE_TIMEOUT,
        config_timeout: server::DEFAULT_CONFIG_TIMEOUT,
        call: CallSettings::default(),
        legs: LegsConfig {
            rtp_addr: a.rtp_addr,
            rtp_ports: a.rtp_ports.0,
            idle_timeout: std::time::Duration::from_secs(a.leg_idle_timeout),
            ..LegsConfig::default()
        },
        audiosocket_addr: a.audiosocket_addr,
        metrics_addr: a.metrics_addr,
        drain_timeout: std::time::Duration::from_secs(a.drain_timeout),
        ws_addr: a.ws_addr,
        ws: server::ws::WsConfig {
            twilio_call_id_param: a.twilio_call_id_param,
            audiohook_api_keys: a.audiohook_api_keys,
            ..server::ws::WsConfig::default()
        },
        security: server::security::SecurityConfig {
            auth_tokens: sec.auth_tokens,
            tenant_max_calls: sec.tenant_max_calls,
            media_tenant: sec.media_tenant,
            tls,
        },
    };
    super::runtime()?.block_on(server::serve(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_and_print_alike() {
        let default = PortRange(DEFAULT_RTP_PORTS);
        assert_eq!(parse_port_range(&default.to_string()), Ok(default));
        assert_eq!(parse_port_range("5004"), Ok(PortRange(5004..=5004)));
        assert_eq!(parse_port_range(" 10-20"), Ok(PortRange(10..=20)));
        assert!(parse_port_range("0-10").is_err());
        assert!(parse_port_range("20-10").is_err());
        assert!(parse_port_range("70000").is_err());
    }
}
