//! `callmood analyze`, `features`, `transcribe` and `bench-packing`: local recordings (WAV,
//! FLAC, MP3, Ogg Vorbis, Ogg Opus), no server.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use clap::Args;

use super::args::{read_recording, AsrArgs, EmotionArgs, RoleArg};
use crate::config::{Layered, ENV_PREFIX};
use crate::contact::alerts::AlertConfig;
use crate::core::dsp::{self, DspPlan, FrameAnalyzer};
use crate::server::session::Analyzer;

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Recordings: WAV (PCM 8/16/24/32-bit, float, μ-law or A-law), FLAC, MP3, Ogg Vorbis
    /// or Ogg Opus, mono or stereo (told by their content, not their names); or
    /// directories, searched recursively for *.wav, *.flac, *.mp3, *.ogg, *.oga, *.opus.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Files analysed at once (they share the recogniser pool; with --server, requests
    /// in flight).
    #[arg(long, short = 'j', default_value_t = default_jobs())]
    pub jobs: usize,
    /// Analyse on a running `callmood serve` (or a load balancer in front of several)
    /// instead of here, e.g. http://10.0.0.5:50051: each file's bytes go as they are in
    /// one AnalyzeRecording request, and the outputs are the same. The server's models
    /// are used; --model, --threads, --workers and the emotion model flags are ignored.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// With --server: TLS CA and token.
    #[command(flatten)]
    pub access: super::client::AccessArgs,
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
    /// Keep card numbers, codes, expiry dates, SSNs, phone numbers, e-mail addresses
    /// and every other number in transcripts (they are redacted by default). With
    /// --server, only a server with `security.redact_all_numbers = false` allows it.
    #[arg(long)]
    pub no_redaction: bool,
    /// Redact every number as `[NUMBER]`, secret or not (digits, number words, ordinals):
    /// the default, since a misheard cue can let a card digit through the other rules.
    /// `--redact-all-numbers=false` keeps ordinary numbers (order numbers, amounts, times)
    /// and redacts only what the cue, length and payment-window rules find, which left
    /// digits of cards, codes and SSNs on voices Whisper garbles (README, "PII redaction").
    /// With --server, the server's `security.redact_all_numbers` applies when it is on.
    #[arg(
        long,
        conflicts_with = "no_redaction",
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub redact_all_numbers: bool,
    /// The payment window, seconds: after a payment cue in either party's words ("and the
    /// security code on the back?"), every number of either party in this long is redacted.
    /// 0 turns it off. With --server, the server's `security.payment_window_s` applies.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=600))]
    pub payment_window_s: u32,
    /// Role of the left (or only) channel of each file.
    #[arg(long, value_enum, default_value_t = RoleArg::Caller)]
    pub left_role: RoleArg,
    /// `serve`'s TOML configuration file: its `[alerts]` section sets the alert rules, so
    /// that recordings raise the alerts the server would; `CALLMOOD_ALERTS__KEY`
    /// variables override it. The file's other sections are checked but serve only
    /// `serve`. Not with --server, whose own rules apply.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl AnalyzeArgs {
    /// The alert rules: the defaults, then `--config`'s `[alerts]`, then the
    /// `CALLMOOD_ALERTS__KEY` variables among `vars`; checked, errors naming the key.
    pub fn alerts(
        &self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<AlertConfig> {
        let prefix = format!("{ENV_PREFIX}ALERTS__");
        let l = Layered::from_file_and_env(
            self.config.as_deref(),
            vars.into_iter()
                .filter(|(k, _)| k.to_uppercase().starts_with(&prefix)),
        )?;
        l.validate()?;
        Ok(l.config.alerts)
    }
}

/// The machine's available parallelism (1 when unknown).
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[derive(Args, Debug)]
pub struct FeaturesArgs {
    /// A recording (WAV, FLAC, MP3, Ogg); stereo files are analysed on the left channel
    /// unless --channel says otherwise.
    pub file: PathBuf,
    /// Print the frame track: time_s, f0_hz (0 when unvoiced), energy_db, ...
    #[arg(long)]
    pub frames: bool,
    /// Channel of a multi-channel file (0 = left).
    #[arg(long, default_value_t = 0)]
    pub channel: usize,
}

#[derive(Args, Debug)]
pub struct TranscribeArgs {
    /// A recording (WAV, FLAC, MP3, Ogg; first channel).
    pub file: PathBuf,
    #[command(flatten)]
    pub asr: AsrArgs,
}

#[derive(Args, Debug)]
pub struct BenchPackingArgs {
    /// Recordings of one utterance each (first channel), each at most one window (28 s).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Rounds; each runs both ways, the first of them alternating from round to round.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Instead, pack the files into windows as the pool packs a recording's utterances and
    /// time the parts of each window's Whisper run: mel and encoder, decoder, DTW word
    /// times, temperature fallback (one worker, --threads threads).
    #[arg(long)]
    pub profile: bool,
    /// Instead, pack the files into windows as --profile does, every file its own call,
    /// and compare three ways of transcribing them against REFS (one transcript per line,
    /// in the files' order): each file alone; each window in one run split by word times
    /// as across calls today; each window's pieces decoded one by one over one encoder
    /// pass. Prints each way's WER and CPU seconds.
    #[arg(long, value_name = "REFS")]
    pub compare_pieces: Option<PathBuf>,
    #[command(flatten)]
    pub asr: AsrArgs,
}

/// One channel of a recording, resampled to 16 kHz.
fn read_channel_16k(path: &Path, channel: usize) -> anyhow::Result<Vec<f32>> {
    let wav = read_recording(path)?;
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

pub(super) fn analyze(a: AnalyzeArgs) -> anyhow::Result<()> {
    use crate::replay::{self, Engine, RemoteEngine, ReplayConfig};
    if a.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if a.server.is_some() && a.config.is_some() {
        bail!(
            "--config sets the alert rules of local analysis; with --server the server's own apply"
        );
    }
    let alerts = a.alerts(crate::config::env_vars())?;
    // Find every file before loading the model, so a typo fails fast.
    let recordings = replay::find_recordings(&a.files)?;
    let runtime = super::runtime()?;
    let engine = match &a.server {
        Some(url) => {
            let client =
                runtime.block_on(crate::client::stream::connect(url, &a.access.access()))?;
            Engine::Remote(RemoteEngine {
                client,
                no_transcript: a.no_transcript,
            })
        }
        None => {
            let asr = if a.no_transcript {
                None
            } else {
                Some(Arc::new(a.asr.load()?))
            };
            let voice = a.emotion.load()?;
            if let (Some(v), Some(path)) = (&voice, a.emotion.path()) {
                if let Some(note) = v.uncalibrated_note(&path) {
                    eprintln!("callmood: {note}");
                }
            }
            // One analyzer for all files: one Whisper pool shared by the calls in flight.
            Engine::Local(Analyzer {
                plan: DspPlan::new(),
                asr,
                voice,
                words: a.emotion.load_words()?,
                // Counted, never served: `analyze` has no metrics endpoint.
                metrics: Default::default(),
            })
        }
    };
    let cfg = ReplayConfig {
        jobs: a.jobs,
        left_role: a.left_role.proto(),
        redact_pii: !a.no_redaction,
        redact_all_numbers: a.redact_all_numbers,
        payment_window_ms: a.payment_window_s * 1000,
        alerts,
        out: a.out.clone(),
        verbose: a.verbose,
        // With events on a terminal's stdout a bar would be drawn over them.
        progress: a.out.is_some() || !std::io::stdout().is_terminal(),
    };
    let outcome = runtime.block_on(replay::replay(&engine, recordings, &cfg))?;
    if let (
        true,
        Engine::Local(Analyzer {
            asr: Some(pool), ..
        }),
    ) = (a.verbose, &engine)
    {
        let s = pool.stats();
        eprintln!(
            "callmood: recogniser: {} jobs in {} Whisper runs ({} pieces decoded again alone \
             after a repeated piece, {} for low confidence), {:.1} s of audio",
            s.jobs,
            s.windows,
            s.repeat_redecodes,
            s.low_confidence_redecodes,
            s.audio_ms as f64 / 1000.0
        );
    }
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

pub(super) fn transcribe(a: TranscribeArgs) -> anyhow::Result<()> {
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

/// Seconds of speech per CPU-second of this process, each utterance alone in a window
/// against all of them packed as the pool packs a recording's utterances: the same
/// [`crate::asr::AsrPool`] both ways, only the grouping differs (one group per utterance,
/// or one group for all, submitted together).
pub(super) fn bench_packing(a: BenchPackingArgs) -> anyhow::Result<()> {
    use crate::asr::AsrJob;
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let mut clips = Vec::with_capacity(a.files.len());
    let cfg = a.asr.config()?;
    let window = cfg.window_samples();
    for f in &a.files {
        let audio = read_channel_16k(f, 0)?;
        if audio.len() > window {
            bail!(
                "{}: {:.1} s, longer than one window ({:.1} s): one utterance per file",
                f.display(),
                audio.len() as f64 / 16_000.0,
                window as f64 / 16_000.0
            );
        }
        clips.push(audio);
    }
    let speech_s = clips.iter().map(Vec::len).sum::<usize>() as f64 / 16_000.0;
    if a.profile {
        return profile_windows(&a, &cfg, &clips, speech_s);
    }
    if let Some(refs) = &a.compare_pieces {
        return compare_pieces(&a, &cfg, &clips, refs);
    }
    let pool = a.asr.load()?;
    println!(
        "{} utterances, {speech_s:.1} s of speech; --workers {} --threads {}",
        clips.len(),
        a.asr.workers,
        a.asr.threads
    );
    // Both ways answer through the pool; the words are counted so that a run that lost
    // words is visible next to its speed.
    let run = |packed: bool| -> anyhow::Result<usize> {
        let (jobs, rxs): (Vec<_>, Vec<_>) = clips
            .iter()
            .map(|c| AsrJob::with_channel(c.clone()))
            .unzip();
        if packed {
            pool.submit_all_blocking_in(Some(0), jobs)?;
        } else {
            for (i, job) in (1u64..).zip(jobs) {
                pool.submit_all_blocking_in(Some(i), vec![job])?;
            }
        }
        let mut words = 0;
        for rx in rxs {
            words += rx
                .recv()
                .map_err(|_| crate::asr::AsrError::PoolClosed)??
                .len();
        }
        Ok(words)
    };
    let mut per_cpu = [Vec::new(), Vec::new()];
    for round in 0..a.rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for packed in order {
            let load = load_average_1min()?;
            let (cpu0, t0) = (process_cpu_s()?, std::time::Instant::now());
            let words = run(packed)?;
            let wall = t0.elapsed().as_secs_f64();
            let cpu = process_cpu_s()? - cpu0;
            let rate = speech_s / cpu.max(1e-3);
            per_cpu[usize::from(packed)].push(rate);
            println!(
                "round {} {:<8} wall {wall:7.2} s  cpu {cpu:7.2} s  speech/cpu-s {rate:6.2}  \
                 words {words:4}  load {load:.2}",
                round + 1,
                if packed { "packed" } else { "alone" },
            );
        }
    }
    let ratios: Vec<f64> = per_cpu[1]
        .iter()
        .zip(&per_cpu[0])
        .map(|(p, s)| p / s)
        .collect();
    println!(
        "packed / alone, speech per CPU-second, per round: {}",
        ratios
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

/// One packed window: its clips' indices, its audio and each clip's span in it.
type PackedWindow = (Vec<usize>, Vec<f32>, Vec<std::ops::Range<usize>>);

/// The clips packed into windows in order, as the pool packs a recording: as many as fit
/// in one window, `gap` samples before each.
fn windows_of(clips: &[Vec<f32>], window: usize, gap: usize) -> Vec<PackedWindow> {
    use crate::asr::pool::pack;
    let mut windows: Vec<Vec<usize>> = Vec::new();
    let mut len = 0;
    for (i, c) in clips.iter().enumerate() {
        match windows.last_mut() {
            Some(w) if len + gap + c.len() <= window => w.push(i),
            _ => {
                windows.push(vec![i]);
                len = 0;
            }
        }
        len += gap + c.len();
    }
    windows
        .into_iter()
        .map(|w| {
            let parts: Vec<&[f32]> = w.iter().map(|&i| clips[i].as_slice()).collect();
            let (audio, spans) = pack(&parts, gap);
            (w, audio, spans)
        })
        .collect()
}

/// `bench-packing --compare-pieces REFS`: alone, packed and split by word times (every
/// clip its own call), packed and decoded piece by piece; WER against REFS and CPU s.
fn compare_pieces(
    a: &BenchPackingArgs,
    cfg: &crate::asr::AsrConfig,
    clips: &[Vec<f32>],
    refs: &Path,
) -> anyhow::Result<()> {
    use crate::asr::pool::split_segments_by_group;
    use crate::asr::{Transcriber, WhisperModel, Word};
    let refs: Vec<String> = std::fs::read_to_string(refs)
        .map_err(|e| anyhow::anyhow!("{}: {e}", refs.display()))?
        .lines()
        .map(str::to_string)
        .collect();
    if refs.len() != clips.len() {
        bail!("{} transcripts for {} files", refs.len(), clips.len());
    }
    let (window, gap) = (cfg.window_samples(), cfg.gap_samples());
    let windows = windows_of(clips, window, gap);
    let model = WhisperModel::load(a.asr.require_model()?)?;
    let mut tr = Transcriber::new(model, a.asr.threads)?;
    let text = |w: &[Word]| {
        w.iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let score = |hyps: &[String]| {
        let (mut e, mut n) = (0, 0);
        for (r, h) in refs.iter().zip(hyps) {
            let (de, dn) = crate::asr::wer::word_errors(r, h);
            e += de;
            n += dn;
        }
        100.0 * e as f64 / n.max(1) as f64
    };
    println!(
        "{} utterances in {} windows (gap {:.2} s); --threads {}",
        clips.len(),
        windows.len(),
        gap as f64 / 16_000.0,
        a.asr.threads
    );
    for round in 1..=a.rounds {
        let cpu0 = process_cpu_s()?;
        let alone: Vec<String> = clips
            .iter()
            .map(|c| tr.transcribe(c).map(|w| text(&w)))
            .collect::<Result<_, _>>()?;
        let cpu1 = process_cpu_s()?;
        let mut packed = vec![String::new(); clips.len()];
        let mut straddling = 0;
        for (w, audio, spans) in &windows {
            let groups: Vec<_> = w.iter().map(|&i| Some(i as u64)).collect();
            let split = split_segments_by_group(tr.transcribe_segments(audio)?, spans, &groups);
            straddling += split.straddling;
            for (&i, words) in w.iter().zip(&split.words) {
                packed[i] = text(words);
            }
        }
        let cpu2 = process_cpu_s()?;
        let mut pieces = vec![String::new(); clips.len()];
        let mut dropped = 0;
        for (w, audio, spans) in &windows {
            for (&i, p) in w.iter().zip(tr.transcribe_pieces(audio, spans, gap)?) {
                dropped += p.dropped;
                pieces[i] = text(&p.words);
            }
        }
        let cpu3 = process_cpu_s()?;
        println!(
            "round {round}: alone WER {:.2} % cpu {:.1} s | packed, split by word times WER \
             {:.2} % cpu {:.1} s ({straddling} straddling) | packed, piece by piece WER {:.2} % \
             cpu {:.1} s ({dropped} dropped)",
            score(&alone),
            cpu1 - cpu0,
            score(&packed),
            cpu2 - cpu1,
            score(&pieces),
            cpu3 - cpu2,
        );
        if round == 1 {
            for (i, r) in refs.iter().enumerate() {
                if packed[i] != alone[i] || pieces[i] != alone[i] {
                    println!(
                        "  #{i}\n    ref    {r}\n    alone  {}\n    packed {}\n    pieces {}",
                        alone[i], packed[i], pieces[i]
                    );
                }
            }
        }
    }
    Ok(())
}

/// `bench-packing --profile`: the clips packed into windows in order (as many as fit in
/// one window, the pool's gap before each), each window's run timed by part
/// ([`crate::asr::Transcriber::profile`]), `--rounds` times; per window and in all.
fn profile_windows(
    a: &BenchPackingArgs,
    cfg: &crate::asr::AsrConfig,
    clips: &[Vec<f32>],
    speech_s: f64,
) -> anyhow::Result<()> {
    use crate::asr::{Transcriber, WhisperModel};
    let (window, gap) = (cfg.window_samples(), cfg.gap_samples());
    let windows: Vec<Vec<f32>> = windows_of(clips, window, gap)
        .into_iter()
        .map(|(_, audio, _)| audio)
        .collect();
    let path = a.asr.require_model()?;
    let model = WhisperModel::load(path)?;
    let no_dtw = WhisperModel::load_with(path, false)?;
    let mut tr = Transcriber::new(model, a.asr.threads)?;
    println!(
        "{} utterances, {speech_s:.1} s of speech in {} windows (gap {:.2} s); --threads {}",
        clips.len(),
        windows.len(),
        gap as f64 / 16_000.0,
        a.asr.threads
    );
    println!("round window audio_s  encode_s full_s greedy_s no_dtw_s  load");
    let mut sums = [0.0f64; 4];
    for round in 1..=a.rounds {
        for (i, w) in windows.iter().enumerate() {
            let load = load_average_1min()?;
            let p = tr.profile(w, &no_dtw)?;
            for (s, v) in sums
                .iter_mut()
                .zip([p.encode_s, p.full_s, p.greedy_s, p.no_dtw_s])
            {
                *s += v;
            }
            println!(
                "{round:5} {:6} {:7.1}  {:8.3} {:6.3} {:8.3} {:8.3}  {load:.2}",
                i + 1,
                w.len() as f64 / 16_000.0,
                p.encode_s,
                p.full_s,
                p.greedy_s,
                p.no_dtw_s
            );
        }
    }
    let [encode, full, greedy, no_dtw] = sums;
    let share = |x: f64| 100.0 * x / full.max(1e-9);
    println!(
        "in all: run {full:.2} s = mel+encoder {encode:.2} s ({:.0} %) + decoder {:.2} s ({:.0} %) \
         + DTW {:.2} s ({:.0} %); of the decoder, temperature fallback {:.2} s ({:.0} %)",
        share(encode),
        no_dtw - encode,
        share(no_dtw - encode),
        full - no_dtw,
        share(full - no_dtw),
        full - greedy,
        share(full - greedy),
    );
    Ok(())
}

/// This process's user + system CPU time, s, from `/proc/self/stat` (Linux; clock ticks of
/// 1/100 s, the `USER_HZ` Linux reports to user space).
fn process_cpu_s() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| anyhow::anyhow!("/proc/self/stat (Linux only): {e}"))?;
    cpu_s_of_proc_stat(&stat).ok_or_else(|| anyhow::anyhow!("/proc/self/stat: no utime/stime"))
}

/// utime + stime, s, of a `/proc/PID/stat` line.
fn cpu_s_of_proc_stat(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name (which may hold spaces and parentheses):
    // state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The 1-minute load average from `/proc/loadavg`.
fn load_average_1min() -> anyhow::Result<f64> {
    let s = std::fs::read_to_string("/proc/loadavg")
        .map_err(|e| anyhow::anyhow!("/proc/loadavg (Linux only): {e}"))?;
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("/proc/loadavg: unreadable"))
}

pub(super) fn features(a: FeaturesArgs) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_from_a_proc_stat_line() {
        // A real line's first 17 fields, the command name with a space and a parenthesis.
        let line = "4242 (call mood)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20";
        assert_eq!(cpu_s_of_proc_stat(line), Some(2.87));
        assert_eq!(cpu_s_of_proc_stat("4242 (x) S 1"), None);
    }
}
