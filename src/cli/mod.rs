//! The `callmood` command line. Errors reach the user as one line and a
//! non-zero exit; `anyhow` lives only here and in `main`.
pub mod text;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::asr::{AsrConfig, AsrPool};
use crate::call::CallSettings;
use crate::core::codec::{self, wav::WavAudio};
use crate::core::dsp::{self, DspPlan, FrameAnalyzer};
use crate::emotion::voice::DEFAULT_VOICE_MODEL;
use crate::proto::{
    self, call_analyzer_client::CallAnalyzerClient, stream_call_request, StreamCallRequest,
};
use crate::report;
use crate::server::session::{self, Analyzer};
use crate::server::{self, ServeConfig};
use crate::train::voice::TrainConfig;

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
    /// Analyse WAV recordings locally, in parallel: one JSON event per line on stdout,
    /// or per-call files, a CSV and an HTML report in --out DIR.
    Analyze(AnalyzeArgs),
    /// Print the DSP frame track (CSV, one row per 10 ms) of a WAV file.
    Features(FeaturesArgs),
    /// Play a WAV file into a server's StreamCall and print the events.
    Stream(StreamArgs),
    /// Many live calls at once against a running server, each at real-time pace: how long
    /// after the end of each utterance its events arrive (p50/p95), and whether it kept up.
    Loadtest(LoadtestArgs),
    /// Stream a microphone into a server's StreamCall and print the events; Ctrl-C ends
    /// the call (the summary still arrives).
    Listen(ListenArgs),
    /// Transcribe a WAV file with the bare recogniser (no endpointing, no
    /// packing): the yardstick `analyze` is compared with.
    Transcribe(TranscribeArgs),
    /// Model management.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Train the words emotion model on GoEmotions (models/text/README.md).
    TrainText(crate::cli::text::TrainTextArgs),
    /// Measure the words emotion model on labelled sentences.
    EvalText(crate::cli::text::EvalTextArgs),
    /// Train the voice emotion model on a labelled corpus (manifest.csv + audio), with
    /// speaker-grouped cross-validation, clean and through a simulated phone line.
    Train(TrainArgs),
    /// Score a labelled corpus with the voice emotion model, through the service's own
    /// path: UAR, per-class recall, confusion, per-gender UAR, calibration.
    Eval(EvalArgs),
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Corpus directory with manifest.csv (file,speaker,gender,emotion; WAV or FLAC).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Model file to write (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Cross-validation folds (speakers sorted by gender then id, dealt round robin).
    #[arg(long, default_value_t = TrainConfig::default().folds)]
    pub folds: usize,
    /// Shuffled orders of each speaker's clips seen with the running baseline.
    #[arg(long, default_value_t = TrainConfig::default().permutations)]
    pub permutations: usize,
    /// Calm-first orders of each speaker's clips seen with the running baseline (neutral
    /// clips first, then the rest), as in a call that starts calm.
    #[arg(long, default_value_t = TrainConfig::default().calm_first)]
    pub calm_first: usize,
    /// Sets of excerpts of every clip to train on as well, in each condition: each clip
    /// cut to a random 40–70 % of its speech, so that a speaker's baseline holds other
    /// words than the utterance scored. Training only: the cross-validation scores whole
    /// clips. Needs the audio (not with --features).
    #[arg(long, default_value_t = 0)]
    pub crops: usize,
    /// Orders each held-out speaker is scored in by the cross-validation (the first gives
    /// the figures; all of them show how much the order alone moves them).
    #[arg(long, default_value_t = TrainConfig::default().eval_orders)]
    pub eval_orders: usize,
    /// L2 penalty of the classifier.
    #[arg(long, default_value_t = TrainConfig::default().fit.l2)]
    pub l2: f32,
    /// Weight of the population prior in the speaker baseline, utterances.
    #[arg(long, default_value_t = TrainConfig::default().prior_weight)]
    pub prior_weight: f32,
    /// Seed of the shuffled orders (the simulated line's noise is seeded by each clip's
    /// place in the manifest, so the features do not depend on it).
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Also write every utterance's raw voice features as CSV (for inspection, or for
    /// `--features`).
    #[arg(long)]
    pub dump_features: Option<PathBuf>,
    /// Train on the features a `--dump-features` of this corpus (or of a larger one holding
    /// it) wrote, instead of extracting them again: the same results without the
    /// extraction (about 40 s of the 3 minutes with tiny.en on 2 cores), for trying
    /// settings. Refused if the dump's encoder weights differ from --encoder's.
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// Whisper GGML model whose encoder gives the learned voice features (tiny or
    /// tiny.en); the model file records it and its fingerprint.
    #[arg(long, default_value = DEFAULT_ENCODER)]
    pub encoder: PathBuf,
}

/// The encoder weights `callmood train` uses by default: the recogniser's own model.
pub const DEFAULT_ENCODER: &str = "models/ggml-tiny.en.bin";

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Corpus directory with manifest.csv (file,speaker,gender,emotion; WAV or FLAC).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Voice emotion model.
    #[arg(long, env = "CALLMOOD_EMOTION_MODEL", default_value = DEFAULT_VOICE_MODEL)]
    pub model: PathBuf,
    /// Hear the clips through the simulated phone line (8 kHz μ-law, band-limited, noise).
    #[arg(long, conflicts_with = "room")]
    pub telephony: bool,
    /// Hear the clips through a simulated other microphone and room (level, tilt,
    /// low-pass, reverberation, noise; drawn per clip).
    #[arg(long)]
    pub room: bool,
    /// Seed of the running protocol's clip order (and of the line noise).
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// How a report is printed.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// Readable text.
    Text,
    /// One JSON object.
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct EmotionArgs {
    /// Voice emotion model (trained by `callmood train`).
    #[arg(long, env = "CALLMOOD_EMOTION_MODEL", default_value = DEFAULT_VOICE_MODEL)]
    pub emotion_model: PathBuf,
    /// Words model (trained by `callmood train-text`).
    #[arg(long, env = "CALLMOOD_TEXT_MODEL", default_value = crate::emotion::text::DEFAULT_TEXT_MODEL)]
    pub text_model: PathBuf,
    /// Directory of the words lexicon, negations, boosters and cues.
    #[arg(long, env = "CALLMOOD_LEXICON", default_value = crate::emotion::text::DEFAULT_LEXICON_DIR)]
    pub lexicon: PathBuf,
    /// Run without the emotion model: no `emotion` scores and no cues.
    #[arg(long)]
    pub no_emotion: bool,
    /// Score the voice alone, not the words.
    #[arg(long)]
    pub no_words: bool,
}

impl EmotionArgs {
    /// The model path, unless emotion is switched off.
    fn path(&self) -> Option<PathBuf> {
        (!self.no_emotion).then(|| self.emotion_model.clone())
    }

    /// The words model and lexicon, unless switched off.
    fn words_paths(&self) -> Option<(PathBuf, PathBuf)> {
        (!self.no_emotion && !self.no_words)
            .then(|| (self.text_model.clone(), self.lexicon.clone()))
    }

    /// Loads the words side, unless switched off.
    fn load_words(&self) -> anyhow::Result<Option<Arc<crate::emotion::Words>>> {
        match self.words_paths() {
            None => Ok(None),
            Some((m, l)) => Ok(Some(Arc::new(
                crate::emotion::Words::load(&m, &l).map_err(|e| {
                    anyhow::anyhow!("{e} (use --no-words to score the voice alone)")
                })?,
            ))),
        }
    }

    /// Loads the model, unless emotion is switched off.
    fn load(&self) -> anyhow::Result<Option<Arc<crate::emotion::voice::VoiceModel>>> {
        match self.path() {
            None => Ok(None),
            Some(p) => Ok(Some(Arc::new(
                crate::emotion::voice::VoiceModel::load(&p).map_err(|e| {
                    anyhow::anyhow!("{e} (train one with `callmood train`, or use --no-emotion)")
                })?,
            ))),
        }
    }
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
    /// Seconds a live call's utterance may wait for the recogniser: one that waited longer
    /// is sent without words (counted in the summary's transcripts_dropped), so results
    /// stay timely when the recogniser is behind. Recordings always wait.
    #[arg(long, default_value_t = AsrConfig::default().max_queue_wait_s)]
    pub max_queue_wait: f32,
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
        if !(self.max_queue_wait > 0.0 && self.max_queue_wait.is_finite()) {
            bail!(
                "--max-queue-wait must be a positive number of seconds, got {}",
                self.max_queue_wait
            );
        }
        Ok(AsrConfig {
            workers: self.workers,
            threads_per_worker: self.threads,
            queue_capacity: self.queue,
            max_queue_wait_s: self.max_queue_wait,
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
    #[command(flatten)]
    pub emotion: EmotionArgs,
    /// Calls in flight at most; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CALLS)]
    pub max_calls: usize,
    /// Address RTP legs (OpenRtpLeg) bind.
    #[arg(long, env = "CALLMOOD_RTP_ADDR", default_value = "0.0.0.0")]
    pub rtp_addr: std::net::IpAddr,
    /// UDP ports handed out to RTP legs, FIRST-LAST.
    #[arg(long, env = "CALLMOOD_RTP_PORTS", default_value = "40000-40999", value_parser = parse_port_range)]
    pub rtp_ports: std::ops::RangeInclusive<u16>,
    /// Seconds without a packet after which an RTP or AudioSocket leg ends.
    #[arg(long, default_value_t = crate::server::legs::DEFAULT_LEG_IDLE_TIMEOUT.as_secs())]
    pub leg_idle_timeout: u64,
    /// Accept Asterisk AudioSocket connections on this address (e.g. 0.0.0.0:9093); off by default.
    #[arg(long, env = "CALLMOOD_AUDIOSOCKET_ADDR")]
    pub audiosocket_addr: Option<SocketAddr>,
}

/// Parses `FIRST-LAST` (or a single port).
fn parse_port_range(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
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
    Ok(a..=b)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Caller,
    Agent,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// WAV files (PCM 8/16/24/32-bit, float, μ-law or A-law; mono or stereo), or
    /// directories, searched recursively for *.wav.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Files analysed at once (they share the recogniser pool).
    #[arg(long, short = 'j', default_value_t = default_jobs())]
    pub jobs: usize,
    /// Write the results to this directory instead of stdout: calls/<name>.jsonl per
    /// file, calls.csv and report.html. A second run with the same directory skips
    /// the files already finished.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Say on stderr what became of each file.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    #[command(flatten)]
    pub asr: AsrArgs,
    #[command(flatten)]
    pub emotion: EmotionArgs,
    /// Skip transcription: prosody only, no model needed.
    #[arg(long)]
    pub no_transcript: bool,
    /// Keep card numbers, codes, expiry dates, SSNs, phone numbers and e-mail
    /// addresses in transcripts (they are redacted by default).
    #[arg(long)]
    pub no_redaction: bool,
    /// Role of the left (or only) channel of each file.
    #[arg(long, value_enum, default_value = "caller")]
    pub left_role: RoleArg,
}

/// The machine's available parallelism (1 when unknown).
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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
pub struct LoadtestArgs {
    /// WAV recordings to play (each in its own encoding: LINEAR16, MULAW or ALAW; stereo:
    /// caller left, agent right); call k plays file k modulo their number.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Server URL, e.g. http://127.0.0.1:50051.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Calls at once. All start together, each at its own place in its recording (the
    /// quietest moment near k/N of the way in, wrapping around), so their utterances do not
    /// end in step.
    #[arg(long, default_value_t = 4)]
    pub calls: usize,
    /// Chunk length, ms: each chunk is sent when its audio would have been spoken.
    #[arg(long, default_value_t = 20)]
    pub chunk_ms: u32,
    /// Ask for no transcripts (`CallOptions.disable_transcript`): the calls skip the
    /// recogniser, which measures the prosody and voice-emotion path alone.
    #[arg(long)]
    pub no_transcript: bool,
    /// The delay from the end of an utterance's speech to its full result (words, fused
    /// emotion) that 95 % of them must stay within for the server to have kept up, ms.
    #[arg(long, default_value_t = 5000)]
    pub max_delay_ms: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(Args, Debug)]
pub struct ListenArgs {
    /// Server URL, e.g. http://127.0.0.1:50051.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Input device: its name as --list-devices prints it, or a unique part of it
    /// (default: the system's default input).
    #[arg(long)]
    pub device: Option<String>,
    /// Role of the person at the microphone.
    #[arg(long, value_enum, default_value = "caller")]
    pub role: RoleArg,
    /// Call id.
    #[arg(long, default_value = "mic")]
    pub call_id: String,
    /// Print the input devices (name, default configuration) and exit.
    #[arg(long)]
    pub list_devices: bool,
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
        Command::Loadtest(a) => loadtest(a),
        Command::Listen(a) => listen(a),
        Command::Transcribe(a) => transcribe(a),
        Command::TrainText(a) => crate::cli::text::train_text(a),
        Command::EvalText(a) => crate::cli::text::eval_text(a),
        Command::Train(a) => train(a),
        Command::Eval(a) => eval(a),
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
    if a.leg_idle_timeout == 0 {
        bail!("--leg-idle-timeout must be at least 1 s");
    }
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
        legs: crate::server::legs::LegsConfig {
            rtp_addr: a.rtp_addr,
            rtp_ports: a.rtp_ports,
            idle_timeout: std::time::Duration::from_secs(a.leg_idle_timeout),
            join_timeout: crate::server::legs::DEFAULT_JOIN_TIMEOUT,
        },
        audiosocket_addr: a.audiosocket_addr,
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

fn analyze(a: AnalyzeArgs) -> anyhow::Result<()> {
    use crate::replay::{self, ReplayConfig};
    if a.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    // Find every file before loading the model, so a typo fails fast.
    let recordings = replay::find_recordings(&a.files)?;
    let asr = if a.no_transcript {
        None
    } else {
        Some(Arc::new(a.asr.load()?))
    };
    let voice = a.emotion.load()?;
    let words = a.emotion.load_words()?;
    // One analyzer for all files: one Whisper pool shared by the calls in flight.
    let analyzer = Analyzer {
        plan: DspPlan::new(),
        asr,
        voice,
        words,
    };
    let cfg = ReplayConfig {
        jobs: a.jobs,
        left_role: a.left_role.proto(),
        redact_pii: !a.no_redaction,
        out: a.out.clone(),
        verbose: a.verbose,
        // With events on a terminal's stdout a bar would be drawn over them.
        progress: a.out.is_some() || !std::io::stdout().is_terminal(),
    };
    let outcome = runtime()?.block_on(replay::replay(&analyzer, recordings, &cfg))?;
    if outcome.stdout_closed {
        // The reader (e.g. `head`) has had enough: stop quietly.
        return Ok(());
    }
    if let Some(dir) = &a.out {
        eprintln!(
            "callmood: {} files: {} analysed, {} already done, {} failed; results in {}",
            outcome.total,
            outcome.analysed,
            outcome.skipped,
            outcome.failed.len(),
            dir.display()
        );
    }
    if !outcome.failed.is_empty() {
        bail!("{} of {} files failed", outcome.failed.len(), outcome.total);
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
    let mut resampler = crate::core::dsp::resample::Resampler::new(wav.sample_rate)
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
    let call_id = a
        .call_id
        .clone()
        .unwrap_or_else(|| crate::replay::call_id_of(&a.file));
    runtime()?.block_on(stream_file(a, wav, call_id))
}

/// Encodes one channel's samples in the wire encoding.
fn encode(samples: &[f32], encoding: proto::Encoding, out: &mut Vec<u8>) {
    for s in samples {
        let v = codec::sample_to_i16(*s);
        match encoding {
            proto::Encoding::Mulaw => out.push(codec::g711::ulaw_encode(v)),
            proto::Encoding::Alaw => out.push(codec::g711::alaw_encode(v)),
            _ => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

async fn stream_file(a: StreamArgs, wav: WavAudio, call_id: String) -> anyhow::Result<()> {
    let (channels, bytes, per_frame) = wire_channels(&wav, a.left_role.proto());
    let audio =
        crate::client::loadtest::call_audio(&bytes, per_frame, wav.sample_rate, a.chunk_ms, 0);
    let mut client = connect(&a.server).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(config_request(call_id, channels, None)).await.ok();
    let period = Duration::from_secs_f64(a.chunk_ms as f64 / 1000.0 / a.speed);
    tokio::spawn(send_paced(tx, audio, tokio::time::Instant::now(), period));
    print_events(&mut client, rx).await
}

/// Sends `audio`'s chunks at `period` apart, tick k (k ≥ 1) at `t0` + k × `period`: each
/// chunk once its audio would have been spoken. Stops when the call's request stream is
/// gone; returns (dropping `tx`, which half-closes the call) after the last chunk.
async fn send_paced(
    tx: tokio::sync::mpsc::Sender<StreamCallRequest>,
    audio: crate::client::loadtest::CallAudio,
    t0: tokio::time::Instant,
    period: Duration,
) {
    let mut tick = tokio::time::interval_at(t0 + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for chunks in audio.ticks {
        tick.tick().await;
        for (i, data) in chunks.into_iter().enumerate() {
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
    }
}

/// A recording's channels in its own wire encoding, with the channel configs to declare
/// them and the bytes a frame.
fn wire_channels(
    wav: &WavAudio,
    left_role: proto::Role,
) -> (Vec<proto::ChannelConfig>, Vec<Vec<u8>>, usize) {
    let encoding = match wav.encoding {
        codec::wav::WavEncoding::Mulaw => proto::Encoding::Mulaw,
        codec::wav::WavEncoding::Alaw => proto::Encoding::Alaw,
        _ => proto::Encoding::Linear16,
    };
    let configs = session::recording_channels(wav.samples.len(), wav.sample_rate, left_role)
        .iter()
        .map(|s| proto::ChannelConfig {
            channel_id: s.id,
            role: s.role as i32,
            encoding: encoding as i32,
            sample_rate_hz: wav.sample_rate,
            ..Default::default()
        })
        .collect();
    let bytes = wav
        .samples
        .iter()
        .map(|ch| {
            let mut out = Vec::new();
            encode(ch, encoding, &mut out);
            out
        })
        .collect();
    let per_frame = if encoding == proto::Encoding::Linear16 {
        2
    } else {
        1
    };
    (configs, bytes, per_frame)
}

fn loadtest(a: LoadtestArgs) -> anyhow::Result<()> {
    use crate::client::loadtest::{call_audio, levels, start_frame, LoadReport};
    if a.calls == 0 {
        bail!("--calls must be at least 1");
    }
    if a.chunk_ms == 0 || a.chunk_ms > 1000 {
        bail!("--chunk-ms must be within 1..=1000, got {}", a.chunk_ms);
    }
    let wavs: Vec<WavAudio> = a
        .files
        .iter()
        .map(|f| read_wav(f))
        .collect::<anyhow::Result<_>>()?;
    // Each file is encoded and measured once, whatever number of calls play it.
    let prepared: Vec<_> = wavs
        .iter()
        .map(|wav| {
            let level: Vec<f32> = wav
                .samples
                .iter()
                .map(|ch| levels(ch, wav.sample_rate))
                .reduce(|a, b| a.iter().zip(b).map(|(x, y)| x.max(y)).collect())
                .unwrap_or_default();
            (wire_channels(wav, proto::Role::Caller), level)
        })
        .collect();
    let options = proto::CallOptions {
        disable_transcript: a.no_transcript,
        ..Default::default()
    };
    let mut calls = Vec::with_capacity(a.calls);
    for k in 0..a.calls {
        let (f, n) = (k % wavs.len(), wavs.len());
        let (wav, ((configs, bytes, per_frame), level)) = (&wavs[f], &prepared[f]);
        // The calls that play the same file are spread over it: this is the j-th of m.
        let (j, m) = (k / n, (a.calls - f).div_ceil(n));
        let start = start_frame(j, m, wav.frames(), wav.sample_rate, level);
        let audio = call_audio(bytes, *per_frame, wav.sample_rate, a.chunk_ms, start);
        let id = format!("loadtest-{}-{k}", std::process::id());
        let config = config_request(id, configs.clone(), Some(options));
        calls.push((config, audio));
    }
    eprintln!(
        "callmood: {} calls at once to {}, {:.0} s of audio each at most",
        a.calls,
        a.server,
        calls.iter().map(|c| c.1.duration_ms).max().unwrap_or(0) as f64 / 1000.0
    );
    let results = runtime()?.block_on(async {
        let tasks: Vec<_> = calls
            .into_iter()
            .map(|(config, audio)| {
                tokio::spawn(load_call(a.server.clone(), config, audio, a.chunk_ms))
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.context("a load-test call panicked")?);
        }
        anyhow::Ok(out)
    })?;
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

/// One load-test call: sends `audio` at real-time pace (tick k at k × `chunk_ms` after the
/// start, carrying the audio of the chunk just spoken) and times each event against the
/// moment its utterance's speech ended.
async fn load_call(
    server: String,
    config: StreamCallRequest,
    audio: crate::client::loadtest::CallAudio,
    chunk_ms: u32,
) -> crate::client::loadtest::CallResult {
    use crate::proto::call_event::Event;
    use tokio::time::Instant;
    let mut r = crate::client::loadtest::CallResult {
        audio_ms: audio.duration_ms,
        ..Default::default()
    };
    let mut client = match connect(&server).await {
        Ok(c) => c,
        Err(e) => {
            r.error = Some(format!("{e:#}"));
            return r;
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tx.send(config).await.ok();
    let period = Duration::from_millis(chunk_ms.into());
    let t0 = Instant::now();
    let sender = tokio::spawn(send_paced(tx, audio, t0, period));
    let mut events = match client
        .stream_call(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => {
            sender.abort();
            r.error = Some(format!("{:?}: {}", s.code(), s.message()));
            return r;
        }
    };
    // Ms from audio time `ms` (in call time, sent at real-time pace) to now.
    let since = |ms: u64| {
        let (now, at) = (Instant::now(), t0 + Duration::from_millis(ms));
        if now >= at {
            (now - at).as_secs_f64() * 1000.0
        } else {
            -((at - now).as_secs_f64() * 1000.0)
        }
    };
    loop {
        match events.message().await {
            Ok(Some(ev)) => match ev.event {
                Some(Event::UtteranceProsody(p)) => r.prosody_ms.push(since(p.end_ms.into())),
                Some(Event::Utterance(u)) => r.full_ms.push(since(u.end_ms.into())),
                Some(Event::Summary(s)) => {
                    r.summary_ms = Some(since(r.audio_ms));
                    r.transcripts_dropped = s.transcripts_dropped;
                }
                _ => {}
            },
            Ok(None) => break,
            Err(s) => {
                r.error = Some(format!("{:?}: {}", s.code(), s.message()));
                break;
            }
        }
    }
    sender.abort();
    if r.error.is_none() && r.summary_ms.is_none() {
        r.error = Some("the call ended without a summary".into());
    }
    r
}

type Client = CallAnalyzerClient<tonic::transport::Channel>;

/// A `StreamCall` client of `server`.
async fn connect(server: &str) -> anyhow::Result<Client> {
    CallAnalyzerClient::connect(server.to_string())
        .await
        .with_context(|| format!("cannot connect to {server}"))
}

/// The first message of a call.
fn config_request(
    call_id: String,
    channels: Vec<proto::ChannelConfig>,
    options: Option<proto::CallOptions>,
) -> StreamCallRequest {
    StreamCallRequest {
        request: Some(stream_call_request::Request::Config(proto::CallConfig {
            call_id,
            channels,
            language: "en".into(),
            options,
        })),
    }
}

/// Runs a `StreamCall` whose requests (the config, then audio) come from `requests`,
/// printing each event as a JSON line as it arrives. Returns after the server's last
/// event: the summary, once every sender of `requests` is gone.
async fn print_events(
    client: &mut Client,
    requests: tokio::sync::mpsc::Receiver<StreamCallRequest>,
) -> anyhow::Result<()> {
    let mut events = client
        .stream_call(tokio_stream::wrappers::ReceiverStream::new(requests))
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

fn listen(a: ListenArgs) -> anyhow::Result<()> {
    use crate::client::listen::{list_inputs, ChunkAdapter, Microphone};
    if a.list_devices {
        let inputs = list_inputs()?;
        let mut out = std::io::stdout().lock();
        if inputs.is_empty() {
            let host = crate::client::listen::host_name();
            writeln!(out, "no audio input devices (cpal host {host})")?;
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
    runtime()?.block_on(listen_call(a, mic, adapter))
}

async fn listen_call(
    a: ListenArgs,
    mic: crate::client::listen::Microphone,
    adapter: crate::client::listen::ChunkAdapter,
) -> anyhow::Result<()> {
    use crate::client::listen::{pump, PumpEnd, CAPTURE_QUEUE};
    let mut client = connect(&a.server).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let channel = proto::ChannelConfig {
        channel_id: 0,
        role: a.role.proto() as i32,
        encoding: proto::Encoding::Linear16 as i32,
        sample_rate_hz: crate::SAMPLE_RATE,
        ..Default::default()
    };
    tx.send(config_request(a.call_id, vec![channel], None))
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
        r = print_events(&mut client, rx) => r,
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

/// Reads a corpus's manifest and says on stderr what was left out and why.
fn read_labels(dir: &Path) -> anyhow::Result<crate::train::corpus::Corpus> {
    let corpus = crate::train::corpus::read_manifest(dir)?;
    if corpus.excluded > 0 {
        eprintln!(
            "callmood: left out {} clips labelled surprise (not one of the five classes)",
            corpus.excluded
        );
    }
    for (label, n) in &corpus.unknown_labels {
        eprintln!("callmood: skipped {n} clips with unknown label `{label}`");
    }
    if corpus.clips.is_empty() {
        bail!("{}: no clip has a usable label", dir.display());
    }
    Ok(corpus)
}

/// Reads a corpus and its audio and says on stderr what was left out and why.
fn read_corpus(
    dir: &Path,
) -> anyhow::Result<(
    crate::train::corpus::Corpus,
    crate::train::dataset::LoadedAudio,
)> {
    let corpus = read_labels(dir)?;
    let loaded = crate::train::dataset::load(&corpus);
    for (i, e) in &loaded.failed {
        eprintln!("callmood: skipped {}: {e}", corpus.clips[*i].path.display());
    }
    Ok((corpus, loaded))
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    use crate::train::dataset::{self, Condition};
    use crate::train::voice::{cross_validate, fit_voice, ClipData};
    use std::io::Write;
    let cfg = TrainConfig {
        folds: a.folds,
        permutations: a.permutations,
        calm_first: a.calm_first,
        eval_orders: a.eval_orders,
        prior_weight: a.prior_weight,
        fit: crate::emotion::linear::FitConfig {
            l2: a.l2,
            ..TrainConfig::default().fit
        },
        seed: a.seed,
    };
    if cfg.folds < 2 {
        bail!("--folds must be at least 2, got {}", cfg.folds);
    }
    if cfg.eval_orders < 1 {
        bail!("--eval-orders must be at least 1, got {}", cfg.eval_orders);
    }
    if cfg.prior_weight.is_nan() || cfg.prior_weight <= 0.0 {
        bail!("--prior-weight must be positive, got {}", cfg.prior_weight);
    }
    if cfg.fit.l2.is_nan() || cfg.fit.l2 < 0.0 {
        bail!("--l2 must be non-negative, got {}", cfg.fit.l2);
    }
    let encoder = Arc::new(
        crate::emotion::embed::Encoder::load(&a.encoder)
            .map_err(|e| anyhow::anyhow!("--encoder: {e} (models/fetch.sh makes it)"))?,
    );
    let conditions = [Condition::Clean, Condition::Telephony];
    if a.crops > 0 && a.features.is_some() {
        bail!("--crops needs the audio: it cannot be used with --features");
    }
    let plan = DspPlan::new();
    let (corpus, data, loaded) = match &a.features {
        Some(path) => {
            let corpus = read_labels(&a.corpus)?;
            let dump = dataset::read_feature_dump(
                path,
                &a.corpus,
                &corpus,
                encoder.fingerprint(),
                &conditions,
            )?;
            if dump.rows_not_in_corpus > 0 {
                eprintln!(
                    "callmood: {}: left out {} rows of files this corpus's manifest does not list",
                    path.display(),
                    dump.rows_not_in_corpus
                );
            }
            (corpus, dump.sets, None)
        }
        None => {
            let (corpus, loaded) = read_corpus(&a.corpus)?;
            let data: Vec<Vec<ClipData>> = conditions
                .iter()
                .map(|&c| {
                    eprintln!("callmood: extracting voice features ({})", c.name());
                    let features = dataset::clip_features(&plan, &encoder, &loaded.audio, c, None);
                    dataset::clip_data(&corpus, features)
                })
                .collect();
            (corpus, data, Some(loaded))
        }
    };
    if let Some(path) = &a.dump_features {
        let sets: Vec<(Condition, &[ClipData])> = conditions
            .iter()
            .copied()
            .zip(data.iter().map(Vec::as_slice))
            .collect();
        let file = std::fs::File::create(path)
            .with_context(|| format!("--dump-features {}", path.display()))?;
        dataset::write_feature_dump(
            std::io::BufWriter::new(file),
            &a.corpus,
            &corpus,
            encoder.fingerprint(),
            &sets,
        )
        .with_context(|| format!("--dump-features {}", path.display()))?;
    }
    let sets: Vec<Vec<&ClipData>> = data
        .iter()
        .map(|set| set.iter().filter(|c| !c.utterances.is_empty()).collect())
        .collect();
    let of = match &loaded {
        Some(l) => format!(
            "{} readable",
            l.audio.iter().filter(|x| x.is_some()).count()
        ),
        None => format!("{} in the manifest", corpus.clips.len()),
    };
    for (c, s) in conditions.iter().zip(&sets) {
        eprintln!(
            "callmood: {}: {} clips with utterances of {of}",
            c.name(),
            s.len()
        );
    }
    let mut crop_data: Vec<Vec<ClipData>> = Vec::new();
    if let Some(loaded) = &loaded {
        for k in 1..=a.crops {
            for &c in &conditions {
                eprintln!(
                    "callmood: extracting voice features ({}, excerpts {k})",
                    c.name()
                );
                let f = dataset::clip_features(&plan, &encoder, &loaded.audio, c, Some(k as u64));
                crop_data.push(dataset::clip_data(&corpus, f));
            }
        }
    }
    let train_only: Vec<Vec<&ClipData>> = crop_data
        .iter()
        .map(|set| set.iter().filter(|c| !c.utterances.is_empty()).collect())
        .collect();
    for (j, s) in train_only.iter().enumerate() {
        let (k, c) = (j / conditions.len() + 1, conditions[j % conditions.len()]);
        eprintln!(
            "callmood: {}, excerpts {k}: {} clips with utterances of {of}",
            c.name(),
            s.len()
        );
    }
    let names: Vec<&str> = conditions.iter().map(|c| c.name()).collect();
    eprintln!("callmood: {}-fold cross-validation by speaker", cfg.folds);
    let cv = cross_validate(&sets, &names, &train_only, &cfg);
    let mut out = std::io::stdout().lock();
    for (cond, protocols) in &cv.results {
        for (protocol, s) in protocols {
            writeln!(out, "{cond}, {protocol} baseline:")?;
            dataset::write_scored(&mut out, s)?;
        }
    }
    writeln!(out, "calibration temperature {:.3}", cv.temperature)?;
    for (cond, protocols) in &cv.order_spread {
        for (protocol, o) in protocols {
            use crate::train::voice::mean_min_max;
            let (u, g) = (mean_min_max(&o.uar), mean_min_max(&o.gender_gap));
            writeln!(
                out,
                "{cond}, {protocol}, over {} orders: UAR mean {:.3} ({:.3}–{:.3}), \
                 gender gap mean {:.1} ({:.1}–{:.1}) points",
                o.uar.len(),
                u.0,
                u.1,
                u.2,
                100.0 * g.0,
                100.0 * g.1,
                100.0 * g.2
            )?;
        }
    }
    let all: Vec<Vec<&ClipData>> = sets.iter().chain(&train_only).cloned().collect();
    let mut model = fit_voice(&all, &cfg);
    model.softmax.temperature = cv.temperature;
    let mut speakers: Vec<&str> = corpus.clips.iter().map(|c| c.speaker.as_str()).collect();
    speakers.sort();
    speakers.dedup();
    model.provenance = crate::emotion::voice::Provenance {
        corpus: a.corpus.display().to_string(),
        licence: "inherits the training corpus licence (RAVDESS: CC BY-NC-SA 4.0, non-commercial)"
            .into(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        clips: sets.first().map_or(0, Vec::len),
        speakers: speakers.len(),
        conditions: names.iter().map(|s| s.to_string()).collect(),
    };
    model.evaluation = serde_json::to_value(&cv)?;
    model.encoder = crate::emotion::voice::EncoderSpec {
        file: encoder_reference(&a.encoder, &a.out)?,
        fingerprint: encoder.fingerprint().to_string(),
    };
    model
        .validate()
        .map_err(|e| anyhow::anyhow!("trained model invalid: {e}"))?;
    std::fs::write(&a.out, serde_json::to_string_pretty(&model)? + "\n")?;
    eprintln!("callmood: wrote {}", a.out.display());
    Ok(())
}

/// How a model file at `out` names the encoder file: by file name when both sit in the
/// same directory (as in `models/`), else by absolute path.
fn encoder_reference(encoder: &Path, out: &Path) -> anyhow::Result<String> {
    let abs =
        |p: &Path| std::path::absolute(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
    let (enc, out) = (abs(encoder)?, abs(out)?);
    Ok(match (enc.parent(), out.parent(), enc.file_name()) {
        (Some(a), Some(b), Some(name)) if a == b => name.to_string_lossy().into_owned(),
        _ => enc.display().to_string(),
    })
}

fn eval(a: EvalArgs) -> anyhow::Result<()> {
    use crate::train::dataset::{self, Condition};
    use std::io::Write;
    let model = Arc::new(crate::emotion::voice::VoiceModel::load(&a.model)?);
    let (corpus, loaded) = read_corpus(&a.corpus)?;
    let condition = if a.telephony {
        Condition::Telephony
    } else if a.room {
        Condition::Room
    } else {
        Condition::Clean
    };
    let r = dataset::evaluate(&DspPlan::new(), &corpus, &loaded, &model, condition, a.seed);
    let mut out = std::io::stdout().lock();
    match a.format {
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string(&r)?)?,
        ReportFormat::Text => {
            writeln!(
                out,
                "{}: {} clips scored, {} skipped {:?}",
                r.condition, r.n_scored, r.n_skipped, r.skipped
            )?;
            writeln!(
                out,
                "running baseline (each speaker as one call, shuffled):"
            )?;
            dataset::write_scored(&mut out, &r.running)?;
            writeln!(out, "cold start (each clip alone):")?;
            dataset::write_scored(&mut out, &r.cold)?;
            writeln!(
                out,
                "calm first (each speaker as one call, neutral clips first, then the rest):"
            )?;
            dataset::write_scored(&mut out, &r.calm_first)?;
        }
    }
    Ok(())
}
