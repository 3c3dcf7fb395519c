//! The `callmood` command line. Errors reach the user as one line and a
//! non-zero exit; `anyhow` lives only here and in `main`.
//!
//! One file per group of subcommands, each holding its argument structs and a thin
//! function that runs it on the library:
//! - [`serve`]: `serve`, the gRPC service, and `config check`, the configuration it would
//!   run with ([`crate::config`]).
//! - [`analyze`]: `analyze`, `features`, `transcribe` and `bench-packing`, on local recordings
//!   (WAV, FLAC, MP3, Ogg).
//! - [`client`]: `stream`, `loadtest`, `listen` and `asterisk-ari`, clients of a running server
//!   (the gRPC client itself is [`crate::client`]).
//! - [`train`]: `train` and `eval`, the voice emotion model on a labelled corpus.
//! - [`text`]: `train-text` and `eval-text`, the words emotion model.
//! - [`audit`]: `audit`, the voice model's fairness audit.
//! - [`model`]: `model convert`.
//! - [`score`]: `score wer` and `score uar`, the crate's metrics for the scripts in tools/.
//! - [`args`]: the argument groups several subcommands share.
pub mod analyze;
pub mod args;
pub mod audit;
pub mod client;
pub mod model;
pub mod score;
pub mod serve;
pub mod text;
pub mod train;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use analyze::{AnalyzeArgs, FeaturesArgs, TranscribeArgs};
pub use args::{AsrArgs, EmotionArgs, ReportFormat, RoleArg};
pub use client::{ListenArgs, LoadtestArgs, StreamArgs};
pub use model::ModelCommand;
pub use serve::ServeArgs;
pub use train::{EvalArgs, TrainArgs, DEFAULT_ENCODER};

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
    // Help names each flag's environment variable but never shows its value: several
    // hold secrets (AudioHook keys, Twilio tokens, fork credentials).
    #[command(mut_args = |a: clap::Arg| a.hide_env_values(true))]
    Serve(ServeArgs),
    /// The service's configuration (file, environment, flags).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Analyse recordings (WAV, FLAC, MP3, Ogg Vorbis/Opus) in parallel, locally or on a
    /// server (--server): one JSON event per line on stdout, or per-call files, a CSV and
    /// an HTML report in --out DIR.
    Analyze(AnalyzeArgs),
    /// Print the DSP frame track (CSV, one row per 10 ms) of a recording.
    Features(FeaturesArgs),
    /// Play a recording into a server's StreamCall and print the events.
    Stream(StreamArgs),
    /// Many live calls at once against a running server, each at real-time pace: how long
    /// after the end of each utterance its events arrive (p50/p95), and whether it kept up.
    Loadtest(LoadtestArgs),
    /// Stream a microphone into a server's StreamCall and print the events; Ctrl-C ends
    /// the call (the summary still arrives).
    Listen(ListenArgs),
    /// An Asterisk ARI application: each call sent to Stasis(APP) has its caller and agent
    /// snooped to callmood (over AudioSocket, or RTP legs) as two legs of one call, until
    /// it ends.
    AsteriskAri(client::AsteriskAriArgs),
    /// Transcribe a recording with the bare recogniser (no endpointing, no
    /// packing): the yardstick `analyze` is compared with.
    Transcribe(TranscribeArgs),
    /// Seconds of speech transcribed per CPU-second, each utterance alone in a Whisper
    /// window against all packed as the recogniser packs them (one utterance per file).
    BenchPacking(analyze::BenchPackingArgs),
    /// Model management.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Train the words emotion model on GoEmotions (models/text/README.md).
    TrainText(text::TrainTextArgs),
    /// Measure the words emotion model on labelled sentences.
    EvalText(text::EvalTextArgs),
    /// Train the voice emotion model on a labelled corpus (manifest.csv + audio), with
    /// speaker-grouped cross-validation, clean and through a simulated phone line.
    Train(TrainArgs),
    /// Score a labelled corpus with the voice emotion model, through the service's own
    /// path: UAR, per-class recall, confusion, per-gender UAR, calibration.
    Eval(EvalArgs),
    /// Calibrate the voice emotion model to a line from calm speech of that line: writes a
    /// model whose every utterance is mapped from the line's calm voices onto the
    /// training's neutral ones (models/README.md, "Calm-speech calibration").
    Calibrate(train::CalibrateArgs),
    /// Fit how much the voice model's confidence falls on unfamiliar voices, on labelled
    /// corpora it was not trained on: writes a model whose temperature grows with an
    /// utterance's unfamiliarity, the more so before the speaker baseline has filled
    /// (models/README.md, "Confidence that falls with unfamiliarity"). Top labels never
    /// change.
    CalibrateConfidence(train::CalibrateConfidenceArgs),
    /// Fairness audit of the voice emotion model on labelled corpora: UAR, accuracy,
    /// calibration and calm false alarms per gender, age group, corpus and accent, with
    /// speaker-bootstrap intervals and one verdict per pair of groups (text, JSON or HTML).
    Audit(audit::AuditArgs),
    /// Score texts or labels with the crate's own metrics (word error rate, UAR): JSON on
    /// stdout, for the measurement scripts in tools/.
    #[command(subcommand)]
    Score(score::ScoreCommand),
}

/// `callmood config ...`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the configuration `serve` would run with (--config FILE, CALLMOOD_*
    /// variables and serve's flags) and print it, each key with where it came from;
    /// exits non-zero, naming the key, when it is wrong.
    #[command(mut_args = |a: clap::Arg| a.hide_env_values(true))]
    Check(ServeArgs),
}

impl Cli {
    /// Parses `std::env::args`, exiting with clap's message on a bad command line; as
    /// [`Cli::parse`], but `serve` and `config check` learn which of their flags were typed
    /// or set in the environment (to lay them over the configuration file).
    pub fn parse_sourced() -> Self {
        Self::parse_from_matches(Self::command().get_matches()).unwrap_or_else(|e| e.exit())
    }

    /// As [`Cli::parse_sourced`], on `args` (the first is the program's name).
    pub fn try_parse_sourced<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::parse_from_matches(Self::command().try_get_matches_from(args)?)
    }

    fn parse_from_matches(m: clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut cli = Self::from_arg_matches(&m)?;
        let root = Self::command();
        let (args, cmd, sub) = match &mut cli.command {
            Command::Serve(a) => (
                a,
                root.find_subcommand("serve"),
                m.subcommand_matches("serve"),
            ),
            Command::Config(ConfigCommand::Check(a)) => (
                a,
                root.find_subcommand("config")
                    .and_then(|c| c.find_subcommand("check")),
                m.subcommand_matches("config")
                    .and_then(|c| c.subcommand_matches("check")),
            ),
            _ => return Ok(cli),
        };
        if let (Some(cmd), Some(sub)) = (cmd, sub) {
            args.origins = Some(origins(cmd, sub));
        }
        Ok(cli)
    }
}

/// Where each argument that was given came from: its flag, or its environment variable.
fn origins(
    cmd: &clap::Command,
    m: &clap::ArgMatches,
) -> std::collections::BTreeMap<String, crate::config::Origin> {
    use crate::config::Origin;
    use clap::parser::ValueSource;
    cmd.get_arguments()
        .filter_map(|arg| {
            let id = arg.get_id().as_str();
            let origin = match m.value_source(id)? {
                ValueSource::CommandLine => Origin::Flag(format!("--{}", arg.get_long()?)),
                ValueSource::EnvVariable => {
                    Origin::Env(arg.get_env()?.to_string_lossy().into_owned())
                }
                _ => return None,
            };
            Some((id.to_string(), origin))
        })
        .collect()
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(a) => serve::serve(a),
        Command::Config(ConfigCommand::Check(a)) => serve::check(a),
        Command::Analyze(a) => analyze::analyze(a),
        Command::Features(a) => analyze::features(a),
        Command::Stream(a) => client::stream(a),
        Command::Loadtest(a) => client::loadtest(a),
        Command::Listen(a) => client::listen(a),
        Command::AsteriskAri(a) => client::asterisk_ari(a),
        Command::Transcribe(a) => analyze::transcribe(a),
        Command::BenchPacking(a) => analyze::bench_packing(a),
        Command::TrainText(a) => text::train_text(a),
        Command::EvalText(a) => text::eval_text(a),
        Command::Train(a) => train::train(a),
        Command::Eval(a) => train::eval(a),
        Command::Calibrate(a) => train::calibrate(a),
        Command::CalibrateConfidence(a) => train::calibrate_confidence(a),
        Command::Audit(a) => audit::audit(a),
        Command::Model(m) => model::run(m),
        Command::Score(s) => score::run(s),
    }
}

/// The async runtime of the commands that need one.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// True when the error is a write to a closed stdout.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
