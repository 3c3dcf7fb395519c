//! The `callmood` command line. Errors reach the user as one line and a
//! non-zero exit; `anyhow` lives only here and in `main`.
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::asr::{AsrConfig, AsrPool};
use crate::call::CallSettings;
use crate::codec::{self, wav::WavAudio};
use crate::dsp::{self, DspPlan, FrameAnalyzer};
use crate::proto::{
    self, call_analyzer_client::CallAnalyzerClient, stream_call_request, StreamCallRequest,
};
use crate::report;
use crate::server::{self, ServeConfig};
use crate::session::{self, Analyzer, AsrBackpressure, SessionOptions};

/// Live emotion and prosody analysis of phone calls.
#[derive(Parser, Debug)]
#[command(name = "callmood", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gRPC service (callmood.v1.CallAnalyzer, health, reflection).
    Serve(ServeArgs),
    /// Analyse WAV recordings locally; one JSON event per line on stdout.
    Analyze(AnalyzeArgs),
    /// Print the DSP frame track (CSV, one row per 10 ms) of a WAV file.
    Features(FeaturesArgs),
    /// Play a WAV file into a server's StreamCall and print the events.
    Stream(StreamArgs),
    /// Transcribe a WAV file with the bare recogniser (no endpointing, no
    /// packing): the yardstick `analyze` is compared with.
    Transcribe(TranscribeArgs),
    /// Model management.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Train the words emotion model on GoEmotions (models/text/README.md).
    TrainText(crate::emotion::text_cli::TrainTextArgs),
    /// Measure the words emotion model on labelled sentences.
    EvalText(crate::emotion::text_cli::EvalTextArgs),
}

#[derive(Args, Debug, Clone)]
pub struct AsrArgs {
    /// GGML Whisper model file.
    #[arg(long, env = "CALLMOOD_MODEL", default_value = server::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Recogniser worker threads (each shares the one loaded model).
    #[arg(long, default_value_t = AsrConfig::default().workers)]
    pub workers: usize,
    /// CPU threads each recogniser worker uses.
    #[arg(long, default_value_t = AsrConfig::default().threads_per_worker)]
    pub threads: usize,
    /// Utterances queued for the recogniser at most.
    #[arg(long, default_value_t = AsrConfig::default().queue_capacity)]
    pub queue: usize,
}

impl AsrArgs {
    fn config(&self) -> anyhow::Result<AsrConfig> {
        if self.workers == 0 {
            bail!("--workers must be at least 1");
        }
        if self.threads == 0 {
            bail!("--threads must be at least 1");
        }
        if self.queue == 0 {
            bail!("--queue must be at least 1");
        }
        Ok(AsrConfig {
            workers: self.workers,
            threads_per_worker: self.threads,
            queue_capacity: self.queue,
            ..AsrConfig::default()
        })
    }

    /// The model path, or the one-line error that says how to get the model.
    fn require_model(&self) -> anyhow::Result<&Path> {
        if !self.model.is_file() {
            bail!(
                "model file {} not found: run models/fetch.sh to fetch and convert it, or pass --model",
                self.model.display()
            );
        }
        Ok(&self.model)
    }

    fn load(&self) -> anyhow::Result<AsrPool> {
        AsrPool::new(self.require_model()?, self.config()?)
            .map_err(|e| anyhow::anyhow!("cannot load the model {}: {e}", self.model.display()))
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CALLMOOD_ADDR", default_value = server::DEFAULT_ADDR)]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub asr: AsrArgs,
    /// Calls in flight at most; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CALLS)]
    pub max_calls: usize,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Caller,
    Agent,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// WAV files (PCM 8/16/24/32-bit, float, μ-law or A-law; mono or stereo).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub asr: AsrArgs,
    /// Skip transcription: prosody only, no model needed.
    #[arg(long)]
    pub no_transcript: bool,
    /// Role of the left (or only) channel of each file.
    #[arg(long, value_enum, default_value = "caller")]
    pub left_role: RoleArg,
}

#[derive(Args, Debug)]
pub struct FeaturesArgs {
    /// A WAV file; stereo files are analysed on the left channel unless --channel says otherwise.
    pub file: PathBuf,
    /// Print the frame track: time_s, f0_hz (0 when unvoiced), energy_db, ...
    #[arg(long)]
    pub frames: bool,
    /// Channel of a multi-channel file (0 = left).
    #[arg(long, default_value_t = 0)]
    pub channel: usize,
}

#[derive(Args, Debug)]
pub struct StreamArgs {
    /// WAV file to play (its own encoding is sent: LINEAR16, MULAW or ALAW).
    pub file: PathBuf,
    /// Server URL, e.g. http://127.0.0.1:50051.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Playback speed: 1 is real time, 10 ten times faster.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Call id (defaults to the file name).
    #[arg(long)]
    pub call_id: Option<String>,
    /// Chunk length, ms.
    #[arg(long, default_value_t = 20)]
    pub chunk_ms: u32,
    /// Role of the left (or only) channel.
    #[arg(long, value_enum, default_value = "caller")]
    pub left_role: RoleArg,
}

#[derive(Args, Debug)]
pub struct TranscribeArgs {
    /// A WAV file (first channel).
    pub file: PathBuf,
    #[command(flatten)]
    pub asr: AsrArgs,
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Convert a CTranslate2 Whisper model (float16) to a GGML file for whisper.cpp.
    Convert {
        /// Directory with model.bin, config.json and vocabulary.txt.
        #[arg(long)]
        ct2: PathBuf,
        /// mel_filters.npz from the openai-whisper sources.
        #[arg(long)]
        mel_filters: PathBuf,
        /// gpt2.tiktoken from the openai-whisper sources.
        #[arg(long)]
        tiktoken: PathBuf,
        /// Output GGML file.
        #[arg(long)]
        out: PathBuf,
    },
}

impl RoleArg {
    fn proto(self) -> proto::Role {
        match self {
            RoleArg::Caller => proto::Role::Caller,
            RoleArg::Agent => proto::Role::Agent,
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(a) => serve(a),
        Command::Analyze(a) => analyze(a),
        Command::Features(a) => features(a),
        Command::Stream(a) => stream(a),
        Command::Transcribe(a) => transcribe(a),
        Command::TrainText(a) => crate::emotion::text_cli::train_text(a),
        Command::EvalText(a) => crate::emotion::text_cli::eval_text(a),
        Command::Model(ModelCommand::Convert {
            ct2,
            mel_filters,
            tiktoken,
            out,
        }) => {
            let report =
                crate::asr::convert::convert_ct2_to_ggml(&crate::asr::convert::ConvertPaths {
                    ct2_dir: ct2,
                    mel_filters,
                    tiktoken,
                    out: out.clone(),
                })
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("callmood: wrote {} ({report:?})", out.display());
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    if a.max_calls == 0 {
        bail!("--max-calls must be at least 1");
    }
    let cfg = ServeConfig {
        addr: a.addr,
        model: a.asr.require_model()?.to_path_buf(),
        asr: a.asr.config()?,
        max_calls: a.max_calls,
        max_message_bytes: server::DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout: server::DEFAULT_IDLE_TIMEOUT,
        call: CallSettings::default(),
    };
    runtime()?.block_on(server::serve(cfg))
}

fn read_wav(path: &Path) -> anyhow::Result<WavAudio> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    codec::wav::parse_wav(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// True when the error is a write to a closed stdout.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn call_id_for(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "call".into())
}

fn analyze(a: AnalyzeArgs) -> anyhow::Result<()> {
    // Check every file before loading the model, so a typo fails fast.
    for f in &a.files {
        if !f.is_file() {
            bail!("{}: no such file", f.display());
        }
    }
    let asr = if a.no_transcript {
        None
    } else {
        Some(Arc::new(a.asr.load()?))
    };
    let rt = runtime()?;
    let analyzer = Analyzer {
        plan: DspPlan::new(),
        asr,
    };
    let stdout = std::io::stdout();
    let mut failed = 0;
    for path in &a.files {
        let result = read_wav(path).and_then(|wav| {
            rt.block_on(analyze_one(
                &analyzer,
                wav,
                call_id_for(path),
                a.left_role.proto(),
                &stdout,
            ))
        });
        if let Err(e) = result {
            if is_broken_pipe(&e) {
                // The reader (e.g. `head`) has had enough: stop quietly.
                return Ok(());
            }
            eprintln!("callmood: {}: {e:#}", path.display());
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} files failed", a.files.len());
    }
    Ok(())
}

/// Analyses one decoded recording, writing JSON lines as events arrive.
pub async fn analyze_one(
    analyzer: &Analyzer,
    wav: WavAudio,
    call_id: String,
    left_role: proto::Role,
    stdout: &std::io::Stdout,
) -> anyhow::Result<()> {
    let specs = session::recording_channels(wav.samples.len(), wav.sample_rate, left_role);
    let opts = SessionOptions {
        settings: CallSettings::default(),
        backpressure: AsrBackpressure::Wait,
        disable_transcript: analyzer.asr.is_none(),
        disable_prosody_events: false,
    };
    let (handle, mut events) = analyzer
        .start_call(call_id, &specs, opts)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tokio::spawn(session::feed_recording(
        handle,
        wav.samples,
        wav.sample_rate,
    ));
    while let Some(ev) = events.recv().await {
        let ev = ev.map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut out = stdout.lock();
        report::write_jsonl(&mut out, &ev)?;
        out.flush()?;
    }
    Ok(())
}

/// One channel of a WAV file, resampled to 16 kHz.
fn read_channel_16k(path: &Path, channel: usize) -> anyhow::Result<Vec<f32>> {
    let wav = read_wav(path)?;
    let Some(samples) = wav.samples.get(channel) else {
        bail!(
            "--channel {channel} but {} has {} channel(s)",
            path.display(),
            wav.samples.len()
        );
    };
    let mut resampler = crate::resample::Resampler::new(wav.sample_rate)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut audio = Vec::new();
    resampler.process_into(samples, &mut audio);
    resampler.flush_into(&mut audio);
    Ok(audio)
}

fn transcribe(a: TranscribeArgs) -> anyhow::Result<()> {
    let audio = read_channel_16k(&a.file, 0)?;
    let model = crate::asr::WhisperModel::load(a.asr.require_model()?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let words = crate::asr::Transcriber::new(model, a.asr.threads)
        .and_then(|mut t| t.transcribe(&audio))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let text: Vec<&str> = words.iter().map(|w| w.text.trim()).collect();
    println!("{}", text.join(" "));
    Ok(())
}

fn features(a: FeaturesArgs) -> anyhow::Result<()> {
    let audio = read_channel_16k(&a.file, a.channel)?;
    let frames = FrameAnalyzer::analyze(DspPlan::new(), &audio);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !a.frames {
        eprintln!("callmood: printing the frame track (use --frames to silence this note)");
    }
    dsp::frames_to_csv(&frames, &mut out)?;
    out.flush()?;
    Ok(())
}

fn stream(a: StreamArgs) -> anyhow::Result<()> {
    if !(a.speed > 0.0 && a.speed.is_finite()) {
        bail!("--speed must be a positive number, got {}", a.speed);
    }
    if a.chunk_ms == 0 || a.chunk_ms > 1000 {
        bail!("--chunk-ms must be within 1..=1000, got {}", a.chunk_ms);
    }
    let wav = read_wav(&a.file)?;
    let call_id = a.call_id.clone().unwrap_or_else(|| call_id_for(&a.file));
    runtime()?.block_on(stream_file(a, wav, call_id))
}

/// Encodes one channel's samples in the wire encoding.
fn encode(samples: &[f32], encoding: proto::Encoding, out: &mut Vec<u8>) {
    for s in samples {
        let v = (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        match encoding {
            proto::Encoding::Mulaw => out.push(codec::g711::ulaw_encode(v)),
            proto::Encoding::Alaw => out.push(codec::g711::alaw_encode(v)),
            _ => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

async fn stream_file(a: StreamArgs, wav: WavAudio, call_id: String) -> anyhow::Result<()> {
    let encoding = match wav.encoding {
        codec::wav::WavEncoding::Mulaw => proto::Encoding::Mulaw,
        codec::wav::WavEncoding::Alaw => proto::Encoding::Alaw,
        _ => proto::Encoding::Linear16,
    };
    let specs =
        session::recording_channels(wav.samples.len(), wav.sample_rate, a.left_role.proto());
    let channels = specs
        .iter()
        .map(|s| proto::ChannelConfig {
            channel_id: s.id,
            role: s.role as i32,
            encoding: encoding as i32,
            sample_rate_hz: wav.sample_rate,
        })
        .collect();
    let mut client = CallAnalyzerClient::connect(a.server.clone())
        .await
        .with_context(|| format!("cannot connect to {}", a.server))?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let config = StreamCallRequest {
        request: Some(stream_call_request::Request::Config(proto::CallConfig {
            call_id,
            channels,
            language: "en".into(),
            options: None,
        })),
    };
    tx.send(config).await.ok();
    let chunk = (wav.sample_rate as usize * a.chunk_ms as usize / 1000).max(1);
    let period = Duration::from_secs_f64(a.chunk_ms as f64 / 1000.0 / a.speed);
    let samples = wav.samples;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let len = samples.iter().map(Vec::len).max().unwrap_or(0);
        let mut pos = 0;
        while pos < len {
            tick.tick().await;
            for (i, ch) in samples.iter().enumerate() {
                let lo = pos.min(ch.len());
                let hi = (pos + chunk).min(ch.len());
                let mut data = Vec::with_capacity((hi - lo) * 2);
                encode(&ch[lo..hi], encoding, &mut data);
                let msg = StreamCallRequest {
                    request: Some(stream_call_request::Request::Audio(proto::AudioChunk {
                        channel_id: i as u32,
                        data,
                    })),
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
            pos += chunk;
        }
    });
    let mut events = client
        .stream_call(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| anyhow::anyhow!("server refused the call: {}: {}", s.code(), s.message()))?
        .into_inner();
    let stdout = std::io::stdout();
    while let Some(ev) = events
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("call failed: {}: {}", s.code(), s.message()))?
    {
        let mut out = stdout.lock();
        report::write_jsonl(&mut out, &ev)?;
        out.flush()?;
    }
    Ok(())
}
