//! QA replay: many recordings analysed in parallel (`callmood analyze`).
//!
//! Without an output directory the events go to stdout as JSON lines, each
//! call's lines together and the calls in input order (the first unfinished
//! call streams, later ones wait in memory), so the output does not depend on
//! `--jobs`. With one, each call goes to `calls/<name>.jsonl`, then
//! `calls.csv` and `report.html` are built from every call's file:
//!
//! ```text
//! OUT/calls/<name>.jsonl   one CallEvent per line, the summary last
//! OUT/calls.csv            one row per input file (failed ones too)
//! OUT/report.html          calls by risk, timelines, transcripts
//! ```
//!
//! A call's file is written as `calls/.<name>.jsonl.part` and renamed once its
//! summary is in, so a file named `<name>.jsonl` that ends with a summary is a
//! finished call and a second run with the same inputs skips it.
//!
//! The [`Engine`] is local or remote. Locally all calls share one [`Analyzer`]:
//! one Whisper pool whose workers take packed windows from every call, while
//! each call's DSP runs on its own thread; `jobs` bounds the calls in flight
//! (and so the decoded audio held in memory). Remotely each file's bytes go as
//! they are to a running `callmood serve` (or a balancer in front of several)
//! in one `AnalyzeRecording`, `jobs` at a time, and its events come back to the
//! same outputs.
use std::collections::HashSet;
use std::io::{self, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::asr::pool::SHARED_SCOPE;
use crate::call::{CallError, CallSettings};
use crate::contact::alerts::AlertConfig;
use crate::contact::finish::FinishOptions;
use crate::core::codec::audio_file::{has_recording_extension, read_audio_file, AudioFileError};
use crate::proto::{self, call_event::Event, CallEvent};
use crate::report::{self, CallDigest, ReportCall};
use crate::server::session::{self, Analyzer, AsrBackpressure, SessionOptions};

/// Longest results name, bytes (file systems allow 255 for the whole name).
const MAX_NAME: usize = 120;
/// Subdirectory of the output directory with one `.jsonl` per call.
pub const CALLS_DIR: &str = "calls";
/// The per-call table in the output directory.
pub const CSV_FILE: &str = "calls.csv";
/// The HTML report in the output directory.
pub const HTML_FILE: &str = "report.html";

/// Errors that stop a replay as a whole (one file's failure does not).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}: no such file or directory", .0.display())]
    NotFound(PathBuf),
    #[error("no recordings (.wav, .flac, .mp3, .ogg, .oga, .opus) in {}", .0.display())]
    NoRecordings(PathBuf),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Csv { path: PathBuf, source: ::csv::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ReplayError + '_ {
    move |source| ReplayError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Why one file gave no finished call.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Audio(#[from] AudioFileError),
    /// The server refused the call or it failed there (`--server`).
    #[error(transparent)]
    Remote(crate::client::stream::StreamError),
    #[error(transparent)]
    Call(#[from] CallError),
    /// Writing its events failed (stdout closed, disk full).
    #[error("writing events: {0}")]
    Output(#[from] io::Error),
    #[error("the call ended without a summary")]
    NoSummary,
}

/// One input recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// The file as found (the input path, or below an input directory).
    pub path: PathBuf,
    /// Its results name: the path below its input root, made safe for a file
    /// name and unique among the inputs.
    pub name: String,
}

impl Recording {
    /// The call id its events carry (see [`call_id_of`]).
    pub fn call_id(&self) -> String {
        call_id_of(&self.path)
    }
}

/// The call id of a recording: its file stem, as `analyze` has always used.
pub fn call_id_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "call".into())
}

/// The recordings named by `inputs`: files as given, directories searched
/// recursively for `*.wav`, `*.flac`, `*.mp3`, `*.ogg`, `*.oga` and `*.opus` (any case;
/// symlinked directories are not followed),
/// each directory's files in name order; a file named twice counts once.
pub fn find_recordings(inputs: &[PathBuf]) -> Result<Vec<Recording>, ReplayError> {
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = found.len();
            walk(input, input, &mut found)?;
            if found.len() == before {
                return Err(ReplayError::NoRecordings(input.clone()));
            }
        } else if input.is_file() {
            let rel = input.file_name().map(PathBuf::from).unwrap_or_default();
            found.push((input.clone(), rel));
        } else {
            return Err(ReplayError::NotFound(input.clone()));
        }
    }
    let mut seen_files = HashSet::new();
    let mut taken = HashSet::new();
    let mut out = Vec::with_capacity(found.len());
    for (path, rel) in found {
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !seen_files.insert(key) {
            continue;
        }
        let base = safe_name(&rel);
        let mut name = base.clone();
        let mut n = 1;
        // Case-insensitive: the results may land on a case-insensitive file system.
        while !taken.insert(name.to_lowercase()) {
            n += 1;
            name = format!("{base}-{n}");
        }
        out.push(Recording { path, name });
    }
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> Result<(), ReplayError> {
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let kind = e.file_type().map_err(io_err(&path))?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if has_recording_extension(&path) && path.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.push((path, rel));
        }
    }
    Ok(())
}

/// A relative path as a file name: components joined by `__`, a recording's
/// extension (`.wav`, `.flac`, ...) dropped, anything but ASCII letters, digits, `-`, `_` and `.`
/// replaced by `_`, no leading dot, at most [`MAX_NAME`] bytes.
pub fn safe_name(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    if let Some(last) = parts.last_mut() {
        let path = Path::new(last.as_str());
        if has_recording_extension(path) {
            let stem = path.file_stem().map_or(0, |s| s.len());
            last.truncate(stem);
        }
    }
    let joined = parts.join("__");
    let mut name: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with('.') {
        name.replace_range(..1, "_");
    }
    name.truncate(MAX_NAME);
    if name.is_empty() {
        name.push_str("call");
    }
    name
}

/// How a replay runs.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// Calls in flight at most.
    pub jobs: usize,
    /// Role of the left (or only) channel.
    pub left_role: proto::Role,
    /// Redact personal data in transcripts (the default).
    pub redact_pii: bool,
    /// With `redact_pii`, redact every number too.
    pub redact_all_numbers: bool,
    /// With `redact_pii`, the payment window, ms
    /// ([`crate::contact::finish::FinishOptions::payment_window_ms`]); local analysis only.
    pub payment_window_ms: u32,
    /// The alert rules (the `[alerts]` section of `analyze --config`); local analysis only,
    /// a server (`analyze --server`) uses its own.
    pub alerts: AlertConfig,
    /// Results directory; `None` writes JSON lines to stdout.
    pub out: Option<PathBuf>,
    /// A stderr line per file (skipped, analysed).
    pub verbose: bool,
    /// Draw a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// What became of the inputs.
#[derive(Debug, Default)]
pub struct ReplayOutcome {
    /// Input files.
    pub total: usize,
    /// Analysed in this run.
    pub analysed: usize,
    /// Already finished by an earlier run (results directory only).
    pub skipped: usize,
    /// Files that failed, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    /// Stdout was closed by its reader: the run stopped early, quietly.
    pub stdout_closed: bool,
    /// The CSV and HTML written (results directory only).
    pub written: Vec<PathBuf>,
}

/// What analyses the recordings.
#[derive(Clone)]
pub enum Engine {
    /// In this process, on one shared [`Analyzer`].
    Local(Analyzer),
    /// On a server, through `AnalyzeRecording`.
    Remote(RemoteEngine),
}

/// A server that analyses recordings (`callmood analyze --server`).
#[derive(Clone)]
pub struct RemoteEngine {
    /// A client of the server; its connection is shared by the calls in flight.
    pub client: crate::client::stream::Client,
    /// Ask for no transcripts (`CallOptions.disable_transcript`).
    pub no_transcript: bool,
}

/// Where events go.
enum Sink {
    Stdout(OrderedStdout),
    Dir(PathBuf),
}

/// Runs the replay. Each file's failure is reported on stderr and in the
/// outcome; only a problem with the output directory stops it.
pub async fn replay(
    engine: &Engine,
    recordings: Vec<Recording>,
    cfg: &ReplayConfig,
) -> Result<ReplayOutcome, ReplayError> {
    let total = recordings.len();
    let mut outcome = ReplayOutcome {
        total,
        ..Default::default()
    };
    let sink = match &cfg.out {
        Some(dir) => {
            let calls = dir.join(CALLS_DIR);
            std::fs::create_dir_all(&calls).map_err(io_err(&calls))?;
            Sink::Dir(calls)
        }
        None => Sink::Stdout(OrderedStdout::new(total)),
    };
    let progress = progress_bar(cfg.progress, total as u64);
    let mut pending = Vec::new();
    for (i, rec) in recordings.iter().enumerate() {
        match &sink {
            Sink::Dir(calls) if is_finished(&jsonl_path(calls, &rec.name)) => {
                outcome.skipped += 1;
                if cfg.verbose {
                    progress.suspend(|| {
                        eprintln!(
                            "callmood: {}: already analysed ({CALLS_DIR}/{}.jsonl), skipped",
                            rec.path.display(),
                            rec.name
                        )
                    });
                }
            }
            _ => pending.push(i),
        }
    }
    progress.set_position(outcome.skipped as u64);
    progress.reset_eta();

    let shared = Arc::new(Shared {
        engine: engine.clone(),
        recordings,
        pending,
        next: AtomicUsize::new(0),
        sink,
        left_role: cfg.left_role,
        redact_pii: cfg.redact_pii,
        redact_all_numbers: cfg.redact_all_numbers,
        payment_window_ms: cfg.payment_window_ms,
        alerts: cfg.alerts.clone(),
        verbose: cfg.verbose,
        progress: progress.clone(),
        stop: AtomicBool::new(false),
        failed: Mutex::new(Vec::new()),
        analysed: AtomicUsize::new(0),
        audio_ms: AtomicUsize::new(0),
        started: Instant::now(),
    });
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..cfg.jobs.clamp(1, shared.pending.len().max(1)) {
        workers.spawn(worker(shared.clone()));
    }
    while workers.join_next().await.is_some() {}
    progress.finish_and_clear();

    outcome.analysed = shared.analysed.load(Ordering::Relaxed);
    outcome.stdout_closed = shared.stop.load(Ordering::Relaxed);
    let mut failed = std::mem::take(&mut *lock(&shared.failed));
    failed.sort_by_key(|(i, _)| *i);
    if let (Sink::Dir(calls), Some(dir)) = (&shared.sink, &cfg.out) {
        let rows: Vec<ReportCall> = shared
            .recordings
            .iter()
            .enumerate()
            .map(|(i, rec)| ReportCall {
                file: rec.path.display().to_string(),
                name: rec.name.clone(),
                result: match failed.iter().find(|(j, _)| *j == i) {
                    Some((_, e)) => Err(e.clone()),
                    None => read_digest(&jsonl_path(calls, &rec.name)),
                },
            })
            .collect();
        outcome.written = write_reports(dir, &rows)?;
    }
    outcome.failed = failed
        .into_iter()
        .map(|(i, e)| (shared.recordings[i].path.clone(), e))
        .collect();
    Ok(outcome)
}

/// State shared by the workers.
struct Shared {
    engine: Engine,
    recordings: Vec<Recording>,
    /// Indices into `recordings` still to analyse, in order.
    pending: Vec<usize>,
    next: AtomicUsize,
    sink: Sink,
    left_role: proto::Role,
    redact_pii: bool,
    redact_all_numbers: bool,
    payment_window_ms: u32,
    alerts: AlertConfig,
    verbose: bool,
    progress: ProgressBar,
    stop: AtomicBool,
    failed: Mutex<Vec<(usize, String)>>,
    analysed: AtomicUsize,
    audio_ms: AtomicUsize,
    started: Instant,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere leaves the data usable: it is only appended to.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn worker(s: Arc<Shared>) {
    loop {
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        let k = s.next.fetch_add(1, Ordering::Relaxed);
        let Some(&i) = s.pending.get(k) else { return };
        let rec = &s.recordings[i];
        let result = analyze_file(&s, i, rec).await;
        if let Sink::Stdout(o) = &s.sink {
            if let Err(e) = o.finish(i) {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    s.stop.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
        match result {
            Ok((duration_ms, utterances)) => {
                s.analysed.fetch_add(1, Ordering::Relaxed);
                s.audio_ms
                    .fetch_add(duration_ms as usize, Ordering::Relaxed);
                if s.verbose {
                    let to = match &s.sink {
                        Sink::Dir(_) => format!(" → {CALLS_DIR}/{}.jsonl", rec.name),
                        Sink::Stdout(_) => String::new(),
                    };
                    s.progress.suspend(|| {
                        eprintln!(
                            "callmood: {}: analysed{to} ({utterances} utterances, {:.1} s)",
                            rec.path.display(),
                            f64::from(duration_ms) / 1000.0
                        )
                    });
                }
            }
            Err(FileError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                // The reader (e.g. `head`) has had enough: stop quietly.
                s.stop.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                let msg = e.to_string();
                s.progress
                    .suspend(|| eprintln!("callmood: {}: {msg}", rec.path.display()));
                lock(&s.failed).push((i, msg));
            }
        }
        s.progress.inc(1);
        let elapsed = s.started.elapsed().as_secs_f64().max(1e-3);
        let audio = s.audio_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        let failed = lock(&s.failed).len();
        s.progress.set_message(format!(
            "{:.1}× real time{}",
            audio / elapsed,
            if failed > 0 {
                format!(" · {failed} failed")
            } else {
                String::new()
            }
        ));
    }
}

/// One file's work: its decoded audio for the local analyzer, or the server to send it to.
enum Job<'a> {
    Local(&'a Analyzer, crate::core::codec::WavAudio),
    Remote(&'a RemoteEngine),
}

/// Analyses one file into the sink; returns its duration (ms) and utterance count.
async fn analyze_file(s: &Shared, i: usize, rec: &Recording) -> Result<(u32, usize), FileError> {
    // Local: decoded before anything is written, so a bad file leaves no trace.
    let job = match &s.engine {
        Engine::Local(analyzer) => {
            let path = rec.path.clone();
            let wav = tokio::task::spawn_blocking(move || read_audio_file(path))
                .await
                .map_err(|e| FileError::Output(io::Error::other(e)))??;
            Job::Local(analyzer, wav)
        }
        Engine::Remote(remote) => Job::Remote(remote),
    };
    let mut summary = None;
    let mut utterances = 0;
    let mut note = |ev: &CallEvent| match &ev.event {
        Some(Event::Summary(x)) => summary = Some(x.duration_ms),
        Some(Event::Utterance(_)) => utterances += 1,
        _ => {}
    };
    let mut out = match &s.sink {
        Sink::Stdout(o) => CallOut::Stdout(o),
        Sink::Dir(calls) => CallOut::File(CallFile::create(calls, &rec.name)?),
    };
    let sink = |ev: &CallEvent| {
        note(ev);
        match &mut out {
            CallOut::Stdout(o) => o.write(i, ev),
            CallOut::File(f) => f.write(ev),
        }
    };
    let r = match job {
        Job::Local(analyzer, wav) => {
            analyze_recording(
                analyzer,
                wav,
                rec.call_id(),
                s.left_role,
                FinishOptions {
                    redact_pii: s.redact_pii,
                    redact_all_numbers: s.redact_all_numbers,
                    payment_window_ms: s.payment_window_ms,
                    alerts: s.alerts.clone(),
                    ..FinishOptions::default()
                },
                sink,
            )
            .await
        }
        Job::Remote(remote) => analyze_remote(remote, s, rec, sink).await,
    };
    match out {
        CallOut::File(file) if r.is_ok() && summary.is_some() => file.commit()?,
        CallOut::File(file) => {
            file.discard();
            r?;
            return Err(FileError::NoSummary);
        }
        CallOut::Stdout(_) => r?,
    }
    let duration = summary.ok_or(FileError::NoSummary)?;
    Ok((duration, utterances))
}

/// Sends one file's bytes, as they are, to the server's `AnalyzeRecording`, handing each
/// event to `sink` as it arrives. The call id is the local one made safe for the server.
async fn analyze_remote(
    remote: &RemoteEngine,
    s: &Shared,
    rec: &Recording,
    mut sink: impl FnMut(&CallEvent) -> io::Result<()>,
) -> Result<(), FileError> {
    use crate::client::stream::{run_recording, StreamError};
    let bytes = tokio::fs::read(&rec.path).await.map_err(|e| {
        FileError::Audio(AudioFileError::Io {
            path: rec.path.display().to_string(),
            source: e,
        })
    })?;
    let request = proto::AnalyzeRecordingRequest {
        call_id: crate::server::security::call_id_from(&rec.call_id()),
        audio: Some(proto::analyze_recording_request::Audio::File(bytes)),
        options: Some(proto::CallOptions {
            disable_transcript: remote.no_transcript,
            disable_pii_redaction: !s.redact_pii,
            redact_all_numbers: s.redact_all_numbers,
            ..Default::default()
        }),
        left_role: s.left_role as i32,
        ..Default::default()
    };
    let mut client = remote.client.clone();
    run_recording(&mut client, request, |ev| sink(&ev))
        .await
        .map_err(|e| match e {
            StreamError::Output(io) => FileError::Output(io),
            e => FileError::Remote(e),
        })
}

/// Analyses one decoded recording, finished as `finish` says (its transcript is off
/// when the analyzer has no recogniser), handing each event to `sink` as it arrives.
pub async fn analyze_recording(
    analyzer: &Analyzer,
    wav: crate::core::codec::WavAudio,
    call_id: String,
    left_role: proto::Role,
    finish: FinishOptions,
    mut sink: impl FnMut(&CallEvent) -> io::Result<()>,
) -> Result<(), FileError> {
    let specs = crate::call::recording_channels(wav.samples.len(), wav.sample_rate, left_role);
    let opts = SessionOptions {
        settings: CallSettings::default(),
        backpressure: AsrBackpressure::Wait,
        joining: None,
        finish: FinishOptions {
            disable_transcript: finish.disable_transcript || analyzer.asr.is_none(),
            ..finish
        },
        pack_scope: SHARED_SCOPE,
    };
    let (handle, mut events) = analyzer.start_call(call_id, &specs, opts)?;
    tokio::spawn(session::feed_recording(
        handle,
        wav.samples,
        wav.sample_rate,
    ));
    while let Some(ev) = events.recv().await {
        sink(&ev?)?;
    }
    Ok(())
}

fn jsonl_path(calls: &Path, name: &str) -> PathBuf {
    calls.join(format!("{name}.jsonl"))
}

/// Whether a call's file is there and ends with its summary.
pub fn is_finished(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str::<CallEvent>(l).ok())
        .is_some_and(|ev| matches!(ev.event, Some(Event::Summary(_))))
}

fn read_digest(path: &Path) -> Result<CallDigest, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let events =
        report::read_jsonl(BufReader::new(file)).map_err(|e| format!("{}: {e}", path.display()))?;
    CallDigest::from_events(&events).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `calls.csv` and `report.html`, each through a temporary file.
fn write_reports(dir: &Path, rows: &[ReportCall]) -> Result<Vec<PathBuf>, ReplayError> {
    let csv_path = dir.join(CSV_FILE);
    write_atomic(&csv_path, |w| {
        report::csv::write_csv(w, rows).map_err(|source| ReplayError::Csv {
            path: csv_path.clone(),
            source,
        })
    })?;
    let html_path = dir.join(HTML_FILE);
    write_atomic(&html_path, |w| {
        report::html::write_html(w, rows).map_err(io_err(&html_path))
    })?;
    Ok(vec![csv_path, html_path])
}

fn part_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.part"))
}

fn write_atomic(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<std::fs::File>) -> Result<(), ReplayError>,
) -> Result<(), ReplayError> {
    let part = part_path(path);
    let file = std::fs::File::create(&part).map_err(io_err(&part))?;
    let mut w = BufWriter::new(file);
    body(&mut w)?;
    w.flush().map_err(io_err(&part))?;
    std::fs::rename(&part, path).map_err(io_err(path))
}

/// Where one call's events go: the shared stdout, or its own file that becomes a finished
/// call only once its summary is in.
enum CallOut<'a> {
    Stdout(&'a OrderedStdout),
    File(CallFile),
}

/// A call's events on their way to `calls/<name>.jsonl`.
struct CallFile {
    part: PathBuf,
    done: PathBuf,
    w: BufWriter<std::fs::File>,
}

impl CallFile {
    fn create(calls: &Path, name: &str) -> io::Result<Self> {
        let done = jsonl_path(calls, name);
        let part = part_path(&done);
        let w = BufWriter::new(std::fs::File::create(&part)?);
        Ok(Self { part, done, w })
    }

    fn write(&mut self, ev: &CallEvent) -> io::Result<()> {
        report::write_jsonl(&mut self.w, ev)
    }

    /// Makes the file a finished call: flushed, on disk, under its name.
    fn commit(mut self) -> io::Result<()> {
        self.w.flush()?;
        self.w.get_ref().sync_all()?;
        std::fs::rename(&self.part, &self.done)
    }

    fn discard(self) {
        drop(self.w);
        let _ = std::fs::remove_file(&self.part);
    }
}

/// Stdout shared by parallel calls: each call's lines stay together and calls
/// come out in input order. The first unfinished call writes straight through;
/// later ones are held until their turn.
struct OrderedStdout {
    state: Mutex<OrderState>,
}

struct OrderState {
    next: usize,
    held: Vec<Vec<u8>>,
    done: Vec<bool>,
}

impl OrderedStdout {
    fn new(n: usize) -> Self {
        Self {
            state: Mutex::new(OrderState {
                next: 0,
                held: vec![Vec::new(); n],
                done: vec![false; n],
            }),
        }
    }

    fn write(&self, i: usize, ev: &CallEvent) -> io::Result<()> {
        let mut line = Vec::new();
        report::write_jsonl(&mut line, ev)?;
        let mut st = lock(&self.state);
        if i == st.next {
            let mut out = io::stdout().lock();
            out.write_all(&line)?;
            out.flush()
        } else {
            st.held[i].extend_from_slice(&line);
            Ok(())
        }
    }

    /// Call `i` has ended (finished or failed): release the calls now due.
    fn finish(&self, i: usize) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.done[i] = true;
        let mut out = io::stdout().lock();
        while st.next < st.done.len() && st.done[st.next] {
            st.next += 1;
            let next = st.next;
            if let Some(held) = st.held.get_mut(next) {
                out.write_all(&std::mem::take(held))?;
            }
        }
        out.flush()
    }
}

fn progress_bar(enabled: bool, len: u64) -> ProgressBar {
    if !enabled || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{spinner:.cyan} {bar:24.cyan/blue} {pos}/{len} files · {rate} · ETA {eta} · {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("rate", |st: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.1} files/min", st.per_sec() * 60.0);
    })
    .progress_chars("━╸─");
    let bar =
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_keep_the_relative_path() {
        assert_eq!(safe_name(Path::new("a.wav")), "a");
        assert_eq!(safe_name(Path::new("b.Opus")), "b");
        assert_eq!(
            safe_name(Path::new("c.m4a")),
            "c.m4a",
            "not a recording read"
        );
        assert_eq!(
            safe_name(Path::new("day 1/Agent #7/call.WAV")),
            "day_1__Agent__7__call"
        );
        assert_eq!(safe_name(Path::new(".hidden.wav")), "_hidden");
        assert_eq!(safe_name(Path::new("ünï<>.wav")), "_n___");
        assert_eq!(safe_name(Path::new("")), "call");
        assert!(safe_name(Path::new(&"x".repeat(400))).len() <= MAX_NAME);
    }

    #[test]
    fn directories_are_searched_and_names_made_unique() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("in/sub")).unwrap();
        std::fs::create_dir_all(d.join("other")).unwrap();
        for f in [
            "in/b.wav",
            "in/a.WAV",
            "in/sub/c.wav",
            "in/sub/d.flac",
            "in/sub/e.m4a",
            "in/notes.txt",
            "other/a.wav",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let recs =
            find_recordings(&[d.join("in"), d.join("other/a.wav"), d.join("in/b.wav")]).unwrap();
        let names: Vec<&str> = recs.iter().map(|r| r.name.as_str()).collect();
        // a.WAV and other/a.wav both want "a"; in/b.wav is named twice and counts once.
        assert_eq!(names, ["a", "b", "sub__c", "sub__d", "a-2"]);
        assert_eq!(recs[2].call_id(), "c");
        assert!(matches!(
            find_recordings(&[d.join("missing.wav")]),
            Err(ReplayError::NotFound(_))
        ));
        assert!(matches!(
            find_recordings(&[d.join("in/sub/..").join("../other/none")]),
            Err(ReplayError::NotFound(_))
        ));
        std::fs::create_dir(d.join("empty")).unwrap();
        assert!(matches!(
            find_recordings(&[d.join("empty")]),
            Err(ReplayError::NoRecordings(_))
        ));
    }

    #[test]
    fn only_a_file_that_ends_with_its_summary_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl");
        assert!(!is_finished(&p));
        let ev = |e| CallEvent {
            call_id: "c".into(),
            event: Some(e),
        };
        let mut buf = Vec::new();
        report::write_jsonl(&mut buf, &ev(Event::Utterance(Default::default()))).unwrap();
        std::fs::write(&p, &buf).unwrap();
        assert!(!is_finished(&p));
        report::write_jsonl(&mut buf, &ev(Event::Summary(Default::default()))).unwrap();
        std::fs::write(&p, &buf).unwrap();
        assert!(is_finished(&p));
        // Cut inside the summary line: not finished.
        std::fs::write(&p, &buf[..buf.len() - 3]).unwrap();
        assert!(!is_finished(&p));
    }
}
