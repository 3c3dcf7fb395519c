//! Helpers shared by the integration tests: the real model, real speech clips
//! (tests/fixtures/asr), a server on a loopback port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use callmood::asr::Word;
use callmood::asr::{AsrConfig, AsrPool};
use callmood::call::CallSettings;
use callmood::core::dsp::DspPlan;
use callmood::server::session::Analyzer;
use callmood::server::{serve_on, ServeConfig};

/// The converted Whisper model; fails the test with what to do when absent.
pub fn model_path() -> PathBuf {
    let p = std::env::var_os("CALLMOOD_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ggml-tiny.en.bin"));
    assert!(
        p.is_file(),
        "Whisper model {} is missing: run scripts/setup (or models/fetch.sh) first",
        p.display()
    );
    p
}

/// One shared recogniser pool per test binary (the model loads once).
pub fn pool() -> Arc<AsrPool> {
    static POOL: std::sync::OnceLock<Arc<AsrPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cfg = AsrConfig {
            workers: 1,
            threads_per_worker: 2,
            // Tests check what is transcribed, not how soon: on a busy machine a live
            // call's utterance must not expire in the queue (tests/asr_pool.rs tests that).
            max_queue_wait_s: 600.0,
            ..AsrConfig::default()
        };
        Arc::new(AsrPool::new(&model_path(), cfg).expect("model loads"))
    })
    .clone()
}

/// A real speech clip (tests/fixtures/asr/librivox-ID.wav, 16 kHz) and its transcript.
pub fn librivox(id: &str) -> (PathBuf, String) {
    let name = format!("librivox-{id}.wav");
    let list = std::fs::read_to_string(fixture("transcripts.txt")).expect("transcripts.txt");
    let text = list
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}\t")))
        .expect("transcript line")
        .to_string();
    (fixture(&name), text)
}

/// Writes samples to a 16-bit mono WAV.
pub fn write_wav(path: &Path, rate: u32, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// Telephone audio: the WAV at `input` as 8 kHz G.711 μ-law WAV (via sox).
pub fn to_mulaw_8k(input: &Path, output: &Path) {
    let st = std::process::Command::new("sox")
        .arg(input)
        .args(["-r", "8000", "-e", "u-law", "-b", "8", "-c", "1"])
        .arg(output)
        .status()
        .expect("sox runs (scripts/setup installs it)");
    assert!(st.success(), "sox failed");
}

/// A gRPC client of the service.
pub type Client =
    callmood::proto::call_analyzer_client::CallAnalyzerClient<tonic::transport::Channel>;

/// A client connected to a server on `addr`.
pub async fn client(addr: SocketAddr) -> Client {
    Client::connect(format!("http://{addr}")).await.unwrap()
}

/// Adds a token (or another `authorization` value) to each request.
pub type AddToken =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
/// A gRPC client of the service that sends a token with every request.
pub type TokenClient =
    Client_<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AddToken>>;
type Client_<T> = callmood::proto::call_analyzer_client::CallAnalyzerClient<T>;

/// A client that sends `authorization: Bearer TOKEN` (or nothing, for `None`).
pub async fn token_client(addr: SocketAddr, token: Option<&str>) -> TokenClient {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let header: Option<tonic::metadata::AsciiMetadataValue> =
        token.map(|t| format!("Bearer {t}").parse().unwrap());
    let add: AddToken = Box::new(move |mut req: tonic::Request<()>| {
        if let Some(h) = &header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    });
    callmood::proto::call_analyzer_client::CallAnalyzerClient::with_interceptor(channel, add)
}

/// The `callmood` binary of this build.
pub fn callmood() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_callmood"))
}

/// Runs and returns (success, stdout, stderr).
pub fn run(cmd: &mut std::process::Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How far a call's audio may run ahead of the wall clock in these servers: the tests
/// stream recordings as fast as they can, so pacing is off (tests/security.rs tests it).
pub const MAX_AHEAD: std::time::Duration = std::time::Duration::from_secs(3600);

/// Starts a server on a loopback port; it stops when the returned sender drops.
pub async fn start_server(
    max_calls: usize,
    with_asr: bool,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (addr, _, stop) = start_telephony_server(max_calls, with_asr).await;
    (addr, stop)
}

/// Starts a server on loopback with an AudioSocket listener too (its address
/// is the second value); RTP legs get ports from 41000-41999 on 127.0.0.1 and
/// end after 3 s without packets.
pub async fn start_telephony_server(
    max_calls: usize,
    with_asr: bool,
) -> (SocketAddr, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    start_server_with(max_calls, with_asr.then(pool)).await
}

/// As [`start_telephony_server`], with the recogniser pool `asr` (or none).
pub async fn start_server_with(
    max_calls: usize,
    asr: Option<Arc<AsrPool>>,
) -> (SocketAddr, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let s = start_servers(max_calls, asr, None).await;
    (s.grpc, s.audiosocket, s.stop)
}

/// The addresses of a test server's listeners.
pub struct Servers {
    pub grpc: SocketAddr,
    pub audiosocket: SocketAddr,
    /// The WebSocket media listener, when asked for.
    pub ws: Option<SocketAddr>,
    /// Stops the server when dropped.
    pub stop: tokio::sync::oneshot::Sender<()>,
}

/// As [`start_server_with`], with a WebSocket media listener too when `ws` is given.
pub async fn start_servers(
    max_calls: usize,
    asr: Option<Arc<AsrPool>>,
    ws: Option<callmood::server::ws::WsConfig>,
) -> Servers {
    start_servers_allowing(max_calls, asr, ws, Vec::new()).await
}

/// As [`start_servers`], with RTP legs taking datagrams only from the networks `rtp_allow`
/// (empty: from everyone).
pub async fn start_servers_allowing(
    max_calls: usize,
    asr: Option<Arc<AsrPool>>,
    ws: Option<callmood::server::ws::WsConfig>,
    rtp_allow: Vec<callmood::core::cidr::Cidr>,
) -> Servers {
    start_servers_secured(max_calls, asr, ws, rtp_allow, Default::default()).await
}

/// As [`start_servers_allowing`], with these security settings.
pub async fn start_servers_secured(
    max_calls: usize,
    asr: Option<Arc<AsrPool>>,
    ws: Option<callmood::server::ws::WsConfig>,
    rtp_allow: Vec<callmood::core::cidr::Cidr>,
    security: callmood::server::security::SecurityConfig,
) -> Servers {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let audiosocket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let audiosocket_addr = audiosocket.local_addr().unwrap();
    let audiosocket = Some(audiosocket);
    let websocket = match ws {
        Some(_) => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
        None => None,
    };
    let ws_addr = websocket.as_ref().map(|l| l.local_addr().unwrap());
    let analyzer = Analyzer {
        plan: DspPlan::new(),
        asr,
        voice: Some(voice_model()),
        words: Some(std::sync::Arc::new(
            callmood::emotion::Words::load(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("models/emotion-text.json"),
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("models/text"),
            )
            .expect("shipped words model"),
        )),
        metrics: Default::default(),
    };
    let cfg = ServeConfig {
        addr,
        model: PathBuf::new(),
        emotion_model: None,
        words_model: None,
        asr: AsrConfig::default(),
        max_calls,
        max_message_bytes: callmood::server::DEFAULT_MAX_MESSAGE_BYTES,
        max_recording_bytes: callmood::server::DEFAULT_MAX_RECORDING_BYTES,
        max_recordings: callmood::server::DEFAULT_MAX_RECORDINGS,
        max_ahead: MAX_AHEAD,
        idle_timeout: std::time::Duration::from_secs(2),
        config_timeout: callmood::server::DEFAULT_CONFIG_TIMEOUT,
        call: CallSettings::default(),
        alerts: Default::default(),
        legs: callmood::server::legs::LegsConfig {
            rtp_addr: [127, 0, 0, 1].into(),
            advertise_addr: None,
            rtp_ports: 41000..=41999,
            rtp_allow,
            idle_timeout: std::time::Duration::from_secs(3),
            join_timeout: callmood::server::legs::DEFAULT_JOIN_TIMEOUT,
        },
        audiosocket_addr: None,
        metrics_addr: None,
        drain_timeout: std::time::Duration::from_secs(5),
        ws_addr,
        ws: ws.unwrap_or_default(),
        security,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve_on(listener, audiosocket, websocket, analyzer, &cfg, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Servers {
        grpc: addr,
        audiosocket: audiosocket_addr,
        ws: ws_addr,
        stop: tx,
    }
}

/// Normalised word error rate.
pub fn wer(reference: &str, hypothesis: &str) -> f32 {
    callmood::asr::wer::word_error_rate(reference, hypothesis)
}

/// A file fetched by `models/fetch.sh` under `models/cache/`; panics when missing.
pub fn cache_file(rel: &str) -> PathBuf {
    let path = repo().join("models/cache").join(rel);
    assert!(
        path.exists(),
        "{} not found: run models/fetch.sh",
        path.display()
    );
    path
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/fixtures/asr/`.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/asr").join(name)
}

/// A 16 kHz mono 16-bit WAV as f32 samples in [-1, 1).
pub fn load_wav(path: &Path) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).expect("readable WAV fixture");
    let spec = r.spec();
    assert_eq!(
        spec.sample_rate,
        callmood::SAMPLE_RATE,
        "{}",
        path.display()
    );
    assert_eq!(spec.channels, 1, "{}", path.display());
    assert_eq!(spec.bits_per_sample, 16, "{}", path.display());
    r.samples::<i16>()
        .map(|s| s.expect("valid sample") as f32 / 32768.0)
        .collect()
}

/// A fixture clip with its reference transcript.
pub struct Clip {
    pub name: String,
    pub audio: Vec<f32>,
    pub reference: String,
}

impl Clip {
    pub fn duration_ms(&self) -> u32 {
        (self.audio.len() as u64 * 1000 / callmood::SAMPLE_RATE as u64) as u32
    }
}

/// All clips listed in `tests/fixtures/asr/transcripts.txt`.
pub fn clips() -> Vec<Clip> {
    let list = std::fs::read_to_string(fixture("transcripts.txt")).expect("transcripts.txt");
    list.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, reference) = l.split_once('\t').expect("file<TAB>transcript");
            Clip {
                name: name.to_string(),
                audio: load_wav(&fixture(name)),
                reference: reference.to_string(),
            }
        })
        .collect()
}

pub fn text(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Word times are ordered, inside the clip (with `slack_ms` for Whisper's rounding) and
/// confidences are probabilities.
pub fn assert_sane_words(words: &[Word], duration_ms: u32, slack_ms: u32, what: &str) {
    let mut last_start = 0;
    for w in words {
        assert!(
            w.start_ms <= w.end_ms,
            "{what}: {w:?} ends before it starts"
        );
        assert!(
            w.end_ms <= duration_ms + slack_ms,
            "{what}: {w:?} ends after the clip ({duration_ms} ms)"
        );
        assert!(w.start_ms >= last_start, "{what}: {w:?} out of order");
        last_start = w.start_ms;
        assert!(
            w.confidence > 0.0 && w.confidence <= 1.0,
            "{what}: {w:?} confidence"
        );
    }
}

/// Deterministic white noise (xorshift32), amplitude `amp`.
pub fn white_noise(n: usize, amp: f32, seed: u32) -> Vec<f32> {
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

/// The shipped voice emotion model (committed in models/).
pub fn voice_model() -> std::sync::Arc<callmood::emotion::voice::VoiceModel> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/emotion-voice.json");
    std::sync::Arc::new(callmood::emotion::voice::VoiceModel::load(&path).expect("shipped model"))
}

/// Collects all events of a call, or the status that ended it.
pub async fn collect(
    mut s: tonic::Streaming<callmood::proto::CallEvent>,
) -> Result<Vec<callmood::proto::CallEvent>, tonic::Status> {
    let mut out = Vec::new();
    while let Some(ev) = s.message().await? {
        out.push(ev);
    }
    Ok(out)
}

pub fn utterances(events: &[callmood::proto::CallEvent]) -> Vec<&callmood::proto::Utterance> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(callmood::proto::call_event::Event::Utterance(u)) => Some(u),
            _ => None,
        })
        .collect()
}

pub fn transcript(events: &[callmood::proto::CallEvent]) -> String {
    let mut us = utterances(events);
    us.sort_by_key(|u| (u.start_ms, u.channel_id));
    us.iter()
        .map(|u| u.transcript.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Real speech clips (librivox fixtures) joined into one 16 kHz "call" with
/// `gap_ms` of silence after each: the samples, each clip's span (ms) and the
/// reference transcript.
pub fn speech_call(ids: &[&str], gap_ms: u32) -> (Vec<f32>, Vec<(u32, u32)>, String) {
    let mut call = Vec::new();
    let mut spans = Vec::new();
    let mut reference = Vec::new();
    for id in ids {
        let (path, text) = librivox(id);
        let start = call.len() as u32 / 16;
        call.extend_from_slice(&load_wav(&path));
        spans.push((start, call.len() as u32 / 16));
        call.extend(std::iter::repeat_n(0.0, gap_ms as usize * 16));
        reference.push(text);
    }
    (call, spans, reference.join(" "))
}

/// 16 kHz samples as 8 kHz G.711 μ-law bytes, resampled by sox as a phone
/// line would be.
pub fn mulaw_8k_bytes(samples: &[f32]) -> Vec<u8> {
    pcm_8k(samples)
        .iter()
        .map(|&s| callmood::core::codec::g711::ulaw_encode(s))
        .collect()
}

/// 16 kHz samples as 8 kHz 16-bit samples (sox).
pub fn pcm_8k(samples: &[f32]) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let (wav16, wav8) = (dir.path().join("16.wav"), dir.path().join("8.wav"));
    write_wav(&wav16, 16_000, samples);
    let st = std::process::Command::new("sox")
        .arg(&wav16)
        .args(["-r", "8000", "-e", "signed", "-b", "16", "-c", "1"])
        .arg(&wav8)
        .status()
        .expect("sox runs (scripts/setup installs it)");
    assert!(st.success(), "sox failed");
    let mut r = hound::WavReader::open(&wav8).unwrap();
    r.samples::<i16>().map(|s| s.unwrap()).collect()
}

/// Writes interleaved stereo 16 kHz samples (left, right, ...) as a 16-bit WAV.
pub fn write_stereo_wav(path: &Path, interleaved: &[f32]) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in interleaved {
        w.write_sample((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// An `OpenRtpLeg` request for a μ-law caller leg of call `call_id`.
pub fn mulaw_caller_leg(call_id: &str) -> callmood::proto::OpenRtpLegRequest {
    callmood::proto::OpenRtpLegRequest {
        call_id: call_id.into(),
        role: callmood::proto::Role::Caller as i32,
        encoding: callmood::proto::Encoding::Mulaw as i32,
        ..Default::default()
    }
}

/// Watches a call (`WatchCall`) and collects its events until the summary.
pub fn watch(
    addr: SocketAddr,
    call_id: &str,
) -> tokio::task::JoinHandle<Vec<callmood::proto::CallEvent>> {
    let call_id = call_id.to_string();
    tokio::spawn(async move {
        let s = client(addr)
            .await
            .watch_call(callmood::proto::WatchCallRequest { call_id })
            .await
            .unwrap()
            .into_inner();
        collect(s).await.unwrap()
    })
}

/// The call's summary, which must be its last event.
pub fn summary(events: &[callmood::proto::CallEvent]) -> &callmood::proto::CallSummary {
    match &events.last().expect("events").event {
        Some(callmood::proto::call_event::Event::Summary(s)) => s,
        other => panic!("the last event must be the summary, got {other:?}"),
    }
}

/// The statistics of one leg in a summary.
pub fn leg(s: &callmood::proto::CallSummary, channel_id: u32) -> &callmood::proto::LegStats {
    s.legs
        .iter()
        .find(|l| l.channel_id == channel_id)
        .expect("leg stats")
}

/// The call's key presses.
pub fn dtmf_events(events: &[callmood::proto::CallEvent]) -> Vec<&callmood::proto::Dtmf> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(callmood::proto::call_event::Event::Dtmf(d)) => Some(d),
            _ => None,
        })
        .collect()
}

/// The first leg of a call that must have come through unharmed: its first utterance
/// starts within 400 ms of `speech_start_ms`, where its speech does.
pub fn healthy_leg(
    events: &[callmood::proto::CallEvent],
    speech_start_ms: u32,
) -> &callmood::proto::LegStats {
    let us = utterances(events);
    assert!(
        !us.is_empty() && us[0].start_ms.abs_diff(speech_start_ms) < 400,
        "{us:?}"
    );
    leg(summary(events), 0)
}
