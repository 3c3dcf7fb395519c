//! `callmood stream`, `loadtest` and `listen`: clients of a running server. The gRPC
//! client is [`crate::client`]; this file parses the flags, reads the audio and prints.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use super::args::{read_recording, ReportFormat, RoleArg};
use crate::client::loadtest::{self, LoadReport, DEFAULT_CALLS, DEFAULT_MAX_DELAY_MS};
use crate::client::stream::{self, DEFAULT_CHUNK_MS, DEFAULT_SERVER};
use crate::core::codec::wav::WavAudio;
use crate::proto::{self, CallEvent, StreamCallRequest};
use crate::report;

#[derive(Args, Debug)]
pub struct StreamArgs {
    #[command(flatten)]
    pub access: AccessArgs,
    /// Recording to play: WAV (its own encoding is sent: LINEAR16, MULAW or ALAW), or
    /// FLAC, MP3, Ogg Vorbis or Opus (sent as LINEAR16 at the file's rate).
    pub file: PathBuf,
    /// Server URL, e.g. http://127.0.0.1:50051.
    #[arg(long, default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Playback speed: 1 is real time, 10 ten times faster (the server lets a live call
    /// run at most `server.max_ahead_s` ahead of real time, and holds it there).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Call id (defaults to the file name, characters other than A-Z a-z 0-9 . _ : @ + = - as `_`).
    #[arg(long)]
    pub call_id: Option<String>,
    /// Chunk length, ms.
    #[arg(long, default_value_t = DEFAULT_CHUNK_MS)]
    pub chunk_ms: u32,
    /// Role of the left (or only) channel.
    #[arg(long, value_enum, default_value_t = RoleArg::Caller)]
    pub left_role: RoleArg,
}

#[derive(Args, Debug)]
pub struct LoadtestArgs {
    #[command(flatten)]
    pub access: AccessArgs,
    /// Recordings to play (WAV in its own encoding: LINEAR16, MULAW or ALAW; FLAC, MP3 and
    /// Ogg as LINEAR16; stereo: caller left, agent right); call k plays file k modulo
    /// their number.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Server URL, e.g. http://127.0.0.1:50051.
    #[arg(long, default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Calls at once. All start together, each at its own place in its recording (the
    /// quietest moment near k/N of the way in, wrapping around), so their utterances do not
    /// end in step.
    #[arg(long, default_value_t = DEFAULT_CALLS)]
    pub calls: usize,
    /// Chunk length, ms: each chunk is sent when its audio would have been spoken.
    #[arg(long, default_value_t = DEFAULT_CHUNK_MS)]
    pub chunk_ms: u32,
    /// Ask for no transcripts (`CallOptions.disable_transcript`): the calls skip the
    /// recogniser, which measures the prosody and voice-emotion path alone.
    #[arg(long)]
    pub no_transcript: bool,
    /// The delay from the end of an utterance's speech to its full result (words, fused
    /// emotion) that 95 % of them must stay within for the server to have kept up, ms.
    #[arg(long, default_value_t = DEFAULT_MAX_DELAY_MS)]
    pub max_delay_ms: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write every utterance's transcript to FILE, a JSON line each, with where it lies in
    /// the call's recording (`tools/loadtest_wer.py` compares calls under load with the
    /// same recording played alone).
    #[arg(long, value_name = "FILE", conflicts_with = "duration")]
    pub transcripts: Option<PathBuf>,
    /// Soak: run calls back to back for this long (e.g. 90s, 20m, 1h), each of the --calls
    /// starting a new call as soon as its call ends, and report per --report-every.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// With --duration: how often to report (calls, utterances, latency, server memory).
    #[arg(long, value_parser = parse_duration, default_value = "5m", requires = "duration")]
    pub report_every: Duration,
    /// With --duration: the server's process id, whose resident memory (VmRSS in
    /// /proc/PID/status) is read at each report; the server must run on this machine.
    #[arg(long, requires = "duration")]
    pub server_pid: Option<u32>,
}

/// A duration as a number with a unit: `ms`, `s`, `m` or `h` (`90s`, `20m`, `1.5h`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let units = [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)];
    let (n, unit) = units
        .iter()
        .find_map(|(u, k)| s.strip_suffix(u).map(|n| (n, *k)))
        .ok_or_else(|| format!("{s:?}: give a unit, e.g. 90s, 20m or 1h"))?;
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: not a number"))?;
    let d = Duration::try_from_secs_f64(n * unit).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be more than zero"));
    }
    Ok(d)
}

#[derive(Args, Debug)]
pub struct ListenArgs {
    #[command(flatten)]
    pub access: AccessArgs,
    /// Server URL, e.g. http://127.0.0.1:50051.
    #[arg(long, default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Input device: its name as --list-devices prints it, or a unique part of it
    /// (default: the system's default input).
    #[arg(long)]
    pub device: Option<String>,
    /// Role of the person at the microphone.
    #[arg(long, value_enum, default_value_t = RoleArg::Caller)]
    pub role: RoleArg,
    /// Call id.
    #[arg(long, default_value = "mic")]
    pub call_id: String,
    /// Print the input devices (name, default configuration) and exit.
    #[arg(long)]
    pub list_devices: bool,
}

/// How the clients reach a secured server.
#[derive(Args, Debug)]
pub struct AccessArgs {
    /// Trust the server's TLS certificate signed by this CA (PEM); use an https:// URL.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Token sent as `authorization: Bearer TOKEN` (the server's --auth-tokens).
    #[arg(long, env = "CALLMOOD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Client certificate (PEM) for a server with --tls-client-ca; with a `cert:NAME`
    /// line for it in the server's token file it also names the tenant, without a token.
    #[arg(long, value_name = "PEM", requires = "tls_client_key")]
    pub tls_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,
}

impl AccessArgs {
    pub(super) fn access(&self) -> stream::Access {
        stream::Access {
            tls_ca: self.tls_ca.clone(),
            token: self.token.clone(),
            client_cert: self
                .tls_client_cert
                .clone()
                .zip(self.tls_client_key.clone()),
        }
    }
}

/// Checks `--chunk-ms`.
fn check_chunk_ms(chunk_ms: u32) -> anyhow::Result<()> {
    if chunk_ms == 0 || chunk_ms > 1000 {
        bail!("--chunk-ms must be within 1..=1000, got {chunk_ms}");
    }
    Ok(())
}

/// Prints an event as a JSON line, at once.
fn print_event(ev: CallEvent) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    report::write_jsonl(&mut out, &ev)?;
    out.flush()
}

pub(super) fn stream(a: StreamArgs) -> anyhow::Result<()> {
    if !(a.speed > 0.0 && a.speed.is_finite()) {
        bail!("--speed must be a positive number, got {}", a.speed);
    }
    check_chunk_ms(a.chunk_ms)?;
    let wav = read_recording(&a.file)?;
    let call_id = a.call_id.clone().unwrap_or_else(|| {
        crate::server::security::call_id_from(&crate::replay::call_id_of(&a.file))
    });
    super::runtime()?.block_on(stream_file(a, wav, call_id))
}

async fn stream_file(a: StreamArgs, wav: WavAudio, call_id: String) -> anyhow::Result<()> {
    let wire = stream::WireChannels::of(&wav, a.left_role.proto());
    let audio = stream::call_audio(
        &wire.bytes,
        wire.bytes_per_frame,
        wav.sample_rate,
        a.chunk_ms,
        0,
    );
    let mut client = stream::connect(&a.server, &a.access.access()).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<StreamCallRequest>(16);
    tx.send(stream::config_request(call_id.clone(), wire.configs, None))
        .await
        .ok();
    let period = Duration::from_secs_f64(a.chunk_ms as f64 / 1000.0 / a.speed);
    tokio::spawn(stream::send_paced(
        tx,
        audio,
        tokio::time::Instant::now(),
        period,
    ));
    Ok(stream::run_call(&mut client, &call_id, rx, print_event).await?)
}

pub(super) fn loadtest(a: LoadtestArgs) -> anyhow::Result<()> {
    if a.calls == 0 {
        bail!("--calls must be at least 1");
    }
    check_chunk_ms(a.chunk_ms)?;
    let wavs: Vec<WavAudio> = a
        .files
        .iter()
        .map(|f| read_recording(f))
        .collect::<anyhow::Result<_>>()?;
    let options = proto::CallOptions {
        disable_transcript: a.no_transcript,
        ..Default::default()
    };
    let prefix = format!("loadtest-{}", std::process::id());
    let calls = loadtest::plan(&wavs, a.calls, a.chunk_ms, options, &prefix);
    if let Some(duration) = a.duration {
        return soak(&a, calls, duration);
    }
    eprintln!(
        "callmood: {} calls at once to {}, {:.0} s of audio each at most",
        a.calls,
        a.server,
        calls.iter().map(|c| c.audio.duration_ms).max().unwrap_or(0) as f64 / 1000.0
    );
    let places: Vec<loadtest::Place> = calls.iter().map(loadtest::PlannedCall::place).collect();
    let results = super::runtime()?
        .block_on(loadtest::run(
            &a.server,
            &a.access.access(),
            calls,
            a.chunk_ms,
        ))
        .context("a load-test call panicked")?;
    if let Some(path) = &a.transcripts {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write --transcripts {}", path.display()))?,
        );
        for (k, (place, result)) in places.iter().zip(&results).enumerate() {
            for line in loadtest::transcript_lines(k, *place, result) {
                writeln!(f, "{}", serde_json::to_string(&line)?)?;
            }
        }
        f.flush()?;
    }
    let report = LoadReport::of(&results);
    let max_delay = f64::from(a.max_delay_ms);
    let mut out = std::io::stdout().lock();
    match a.format {
        ReportFormat::Text => report.write_text(&mut out, max_delay)?,
        ReportFormat::Json => {
            let mut v = serde_json::to_value(&report)?;
            v["max_delay_ms"] = max_delay.into();
            v["kept_up"] = report.kept_up(max_delay).into();
            writeln!(out, "{v}")?
        }
    }
    Ok(())
}

/// `loadtest --duration`: the calls back to back, a row per interval as it ends (on
/// stderr with text output), then the table and the memory's slope.
fn soak(
    a: &LoadtestArgs,
    calls: Vec<loadtest::PlannedCall>,
    duration: Duration,
) -> anyhow::Result<()> {
    let status = a
        .server_pid
        .map(|pid| PathBuf::from(format!("/proc/{pid}/status")));
    if let Some(p) = &status {
        let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        if loadtest::vm_rss_kib(&s).is_none() {
            bail!("{} has no VmRSS line", p.display());
        }
    }
    let rss = || {
        let s = std::fs::read_to_string(status.as_ref()?).ok()?;
        loadtest::vm_rss_kib(&s)
    };
    eprintln!(
        "callmood: soak of {:.0} s, {} calls at once to {} back to back, a report every {:.0} s",
        duration.as_secs_f64(),
        a.calls,
        a.server,
        a.report_every.as_secs_f64()
    );
    let text = a.format == ReportFormat::Text;
    if text {
        loadtest::Interval::write_header(&mut std::io::stderr())?;
    }
    let on_interval = |i: &loadtest::Interval| {
        if text {
            let _ = i.write_row(&mut std::io::stderr());
        }
    };
    let report = super::runtime()?.block_on(loadtest::soak(
        &a.server,
        &a.access.access(),
        calls,
        a.chunk_ms,
        loadtest::SoakSchedule {
            duration,
            every: a.report_every,
        },
        rss,
        on_interval,
    ));
    let mut out = std::io::stdout().lock();
    match a.format {
        ReportFormat::Text => report.write_text(&mut out)?,
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string(&report)?)?,
    }
    Ok(())
}

#[cfg(not(feature = "listen"))]
pub(super) fn listen(_: ListenArgs) -> anyhow::Result<()> {
    bail!(
        "this callmood was built without the `listen` feature (microphone capture); \
         build it with default features to use `listen`"
    )
}

#[cfg(feature = "listen")]
pub(super) fn listen(a: ListenArgs) -> anyhow::Result<()> {
    use crate::client::listen::{host_name, list_inputs, ChunkAdapter, Microphone};
    if a.list_devices {
        let inputs = list_inputs()?;
        let mut out = std::io::stdout().lock();
        if inputs.is_empty() {
            writeln!(out, "no audio input devices (cpal host {})", host_name())?;
        }
        for i in inputs {
            let config = i
                .default_config
                .unwrap_or_else(|e| format!("unusable: {e}"));
            let default = if i.is_default { "\tdefault" } else { "" };
            writeln!(out, "{}\t{config}{default}", i.name)?;
        }
        return Ok(());
    }
    // The device first: without one there is nothing to connect for.
    let mic = Microphone::open(a.device.as_deref())?;
    let adapter = ChunkAdapter::new(mic.rate_hz(), mic.channels())?;
    super::runtime()?.block_on(listen_call(a, mic, adapter))
}

#[cfg(feature = "listen")]
async fn listen_call(
    a: ListenArgs,
    mic: crate::client::listen::Microphone,
    adapter: crate::client::listen::ChunkAdapter,
) -> anyhow::Result<()> {
    use crate::client::listen::{pump, PumpEnd, CAPTURE_QUEUE};
    use std::sync::Arc;
    let mut client = stream::connect(&a.server, &a.access.access()).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let channel = proto::ChannelConfig {
        channel_id: 0,
        role: a.role.proto() as i32,
        encoding: proto::Encoding::Linear16 as i32,
        sample_rate_hz: crate::SAMPLE_RATE,
        ..Default::default()
    };
    tx.send(stream::config_request(
        a.call_id.clone(),
        vec![channel],
        None,
    ))
    .await
    .ok();
    let (cap_tx, cap_rx) = tokio::sync::mpsc::channel(CAPTURE_QUEUE);
    // The cpal stream stays on this thread; dropping it stops the capture.
    let capture = mic.start(cap_tx)?;
    let interrupted = Arc::new(tokio::sync::Notify::new());
    let first = interrupted.clone();
    let stop = async move {
        let _ = tokio::signal::ctrl_c().await;
        first.notify_one();
    };
    let pumping = tokio::spawn(pump(cap_rx, adapter, 0, tx, stop));
    eprintln!(
        "callmood: listening on {}; Ctrl-C ends the call",
        mic.describe()
    );
    // The first Ctrl-C half-closes the call and the summary follows; a second one quits.
    let printed = tokio::select! {
        r = stream::run_call(&mut client, &a.call_id, rx, print_event) => r.map_err(anyhow::Error::from),
        () = async {
            interrupted.notified().await;
            let _ = tokio::signal::ctrl_c().await;
        } => Err(anyhow::anyhow!("interrupted again: quit before the call summary")),
    };
    drop(capture);
    let report = pumping.await.context("the audio pump failed")?;
    if report.lost_samples > 0 {
        let frames = report.lost_samples as f64 / f64::from(mic.channels());
        eprintln!(
            "callmood: {:.2} s of audio could not be sent in time and went as silence",
            frames / f64::from(mic.rate_hz())
        );
    }
    printed?;
    if let PumpEnd::DeviceGone(message) = report.end {
        bail!("the input device went away: {message}");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct AsteriskAriArgs {
    /// Asterisk's HTTP server, e.g. http://pbx:8088 (plain HTTP; `/ari` is added).
    #[arg(long, env = "CALLMOOD_ARI_URL")]
    pub url: String,
    /// ARI user (ari.conf).
    #[arg(long, env = "CALLMOOD_ARI_USER")]
    pub user: String,
    /// ARI password.
    #[arg(long, env = "CALLMOOD_ARI_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Stasis application name: the dialplan sends calls to Stasis(APP).
    #[arg(long, default_value = crate::client::ari::DEFAULT_APP)]
    pub app: String,
    /// Send each party over AudioSocket to callmood's listener (`serve
    /// --audiosocket-addr`) as Asterisk reaches it, HOST:PORT.
    #[arg(
        long,
        required_unless_present = "rtp_server",
        conflicts_with = "rtp_server"
    )]
    pub external_host: Option<String>,
    /// Send each party over RTP instead: legs are opened (roles named) on this callmood
    /// gRPC server, e.g. http://callmood:50051.
    #[arg(long)]
    pub rtp_server: Option<String>,
    /// With --rtp-server: callmood's RTP address (`serve --rtp-addr`) as Asterisk
    /// reaches it; the port of each leg comes from OpenRtpLeg. Default: the address
    /// OpenRtpLeg names (the replica's `serve --advertise-addr`; behind a load balancer
    /// each leg's RTP goes straight to the replica that holds it).
    #[arg(long, requires = "rtp_server")]
    pub rtp_host: Option<String>,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// Runs the ARI application until Ctrl-C (calls still attached are torn down).
pub fn asterisk_ari(a: AsteriskAriArgs) -> anyhow::Result<()> {
    use crate::client::ari::Target;
    let target = match (a.external_host, a.rtp_server, a.rtp_host) {
        (Some(external_host), _, _) => Target::AudioSocket { external_host },
        (None, Some(server), rtp_host) => Target::Rtp {
            server,
            access: a.access.access(),
            rtp_host,
        },
        _ => bail!(
            "give --external-host HOST:PORT (AudioSocket) or --rtp-server URL [--rtp-host HOST]"
        ),
    };
    let cfg = crate::client::ari::AriConfig {
        url: a.url,
        user: a.user,
        password: a.password,
        app: a.app,
        target,
    };
    super::runtime()?.block_on(crate::client::ari::run(cfg, async {
        let _ = tokio::signal::ctrl_c().await;
    }))?;
    Ok(())
}
