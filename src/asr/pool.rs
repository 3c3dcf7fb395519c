//! Whisper worker pool: dedicated OS threads behind a bounded queue.
//!
//! Whisper's encoder always runs on a 30 s window, so a 4 s utterance costs as much as 30 s
//! of audio. Workers therefore take every queued job that fits and *pack* them into one
//! window (pieces separated by [`AsrConfig::gap_s`] of silence, at most
//! [`AsrConfig::max_window_s`] in all), transcribe once, and hand each job back the words
//! whose timestamps fall in its piece, re-timed to the job's own start. Measured on 71 real
//! prompts this took 3.1× less compute than one window per utterance, at no WER cost
//! (DESIGN.md, "Throughput"). Jobs longer than a window are transcribed alone.
//!
//! Two kinds of job wait in the one queue:
//! - **live** jobs (`try_submit*`, a live call's utterance): they expire after
//!   [`AsrConfig::max_queue_wait_s`]. Calls share the recogniser fairly (below). With
//!   [`AsrConfig::pack_across_calls`] (off by default) a free worker takes the waiting live
//!   jobs *from any call* in fair order and packs as many as fit (continuous batching); no
//!   worker waits for a window to fill. Without it, a window holds the first live job in
//!   fair order and the following jobs of its [`PackGroup`] only.
//! - **recording** jobs (`submit_*blocking*`, a recording's utterances): packed only with
//!   jobs of their own group, in order, so a recording's windows, and with them its words,
//!   do not depend on what else was queued. Live jobs go first; a recording whose oldest
//!   job has waited longer than `max_queue_wait_s` gets the next window, though never two
//!   in a row while live jobs wait, so neither kind starves the other.
//!
//! **Fair order** (start-time fair queuing over calls): each live job gets a start tag
//! when queued, the larger of the recogniser's virtual time (the largest tag taken so far)
//! and the end tag of its call's previous job; a job's end tag is its start plus its cost
//! (its samples and the gap before it). Windows are filled in tag order, so the calls take
//! turns, each paying for its own audio. A call that floods the queue (speech far faster
//! than real time, or many short utterances) queues its jobs at ever later tags and waits
//! behind its own backlog, where its jobs expire; a call that was idle gets a tag no later
//! than any waiting job's, so its next utterance is in the next window (with one call per
//! window: after at most one window of each other call waiting with an equal tag), however
//! much another call has queued. Where every call keeps up with real time, tag order is
//! arrival order: the oldest job is in the next window. When the queue is full, a live job
//! takes the place of the waiting live job with the latest tag, if that tag is later than
//! its own (the flooding call's newest job, answered [`AsrError::Displaced`]); otherwise it
//! is handed back.
//!
//! What jobs in one window share: the decoder reads the earlier pieces' words as context
//! (a name from one piece can prime the next), and a word's timestamp may drift out of its
//! piece. Words are split back by timestamp ([`split_segments_by_group`]); a word that
//! straddles the boundary between pieces of two *different* groups (starts in the gap
//! before its piece, or in the second half of the gap before the other group's piece) is
//! dropped and counted ([`AsrStats::straddling_words`]), never given to the neighbour.
//! Live calls of different [`PackScope`]s (tenants) never share a window. Whisper sometimes
//! repeats an earlier piece's words over a later piece and then stops (a caller's digits
//! came back as the agent's question): a piece of at least three words that are an earlier
//! piece's of the window is decoded again alone, with every piece after it
//! ([`AsrStats::repeat_redecodes`]), so neither another party's nor another call's words
//! are handed to it. A garbled piece can spread into its neighbours through that context:
//! a piece whose words' mean confidence in the shared window is under [`LOW_CONFIDENCE`] is
//! decoded again alone and keeps whichever run it was surer of
//! ([`AsrStats::low_confidence_redecodes`]). Where even shared
//! decoder context between calls is unwanted, `pack_across_calls = false` keeps every
//! window to one group.
//!
//! The queue is bounded: `try_submit*` hands the job back when it is full (the caller chooses
//! backpressure or drop-and-count), `submit_blocking*` waits.
//! Dropping the pool fails queued jobs with [`AsrError::PoolClosed`], lets running windows
//! finish and joins the threads.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::engine::{Segment, Transcriber, WhisperModel, DEFAULT_THREADS_PER_TRANSCRIBER};
use super::{AsrError, Word};

/// Worker threads (each with its own decoder state) by default.
pub const DEFAULT_WORKERS: usize = 1;
/// Jobs waiting in the queue, at most, by default.
pub const DEFAULT_QUEUE_CAPACITY: usize = 64;
/// Audio packed into one Whisper window, s: under Whisper's 30 s so the last piece is never cut.
pub const DEFAULT_MAX_WINDOW_S: f32 = 28.0;
/// Silence between packed pieces, s: enough for Whisper to end a segment between them.
pub const DEFAULT_GAP_S: f32 = 1.0;
/// Longest a job submitted with `try_submit*` (a live call's utterance) may wait in the
/// queue, s: one that has waited longer when a worker comes to it is answered with
/// [`AsrError::Expired`] instead of being transcribed, so that an overloaded recogniser gives
/// late calls no words rather than words a minute late.
pub const DEFAULT_MAX_QUEUE_WAIT_S: f32 = 10.0;
/// Whether live jobs of different calls share windows, by default (see the module docs):
/// off until it is shown not to cost words under load. On 12 different live calls at once
/// it cost 1.3-3.9 points of WER against each call alone at 8 and 12 calls (words changed
/// in shared windows), where per-call packing cost none at 8 calls; its full-result p95
/// was 3.4-3.8 s at 12 calls against per-call packing's 11 s (docs/measurements.md,
/// "Packing across calls, measured on different calls").
pub const DEFAULT_PACK_ACROSS_CALLS: bool = false;
/// Longest job accepted, s (10 min); longer audio is refused with [`AsrError::JobTooLong`].
pub const DEFAULT_MAX_JOB_S: f32 = 600.0;
/// Jobs whose peak amplitude is below this (−80 dBFS) are digital silence: they get no words
/// without running Whisper, which tends to invent text on pure zeros.
const SILENCE_PEAK: f32 = 1e-4;

/// Pool configuration; every field has a named default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsrConfig {
    /// Worker threads, each with its own Whisper state (≥ 1).
    pub workers: usize,
    /// whisper.cpp threads per worker (≥ 1).
    pub threads_per_worker: usize,
    /// Jobs that may wait in the queue (≥ 1).
    pub queue_capacity: usize,
    /// Most audio packed into one window, s (1..=30, including gaps).
    pub max_window_s: f32,
    /// Silence inserted between packed jobs, s (0..=5).
    pub gap_s: f32,
    /// Longest job accepted, s.
    pub max_job_s: f32,
    /// Longest a `try_submit*` job waits in the queue before it expires, s (> 0); a
    /// recording job that has waited this long is taken before live jobs (once in a row).
    pub max_queue_wait_s: f32,
    /// Pack waiting live jobs of different calls into one window (continuous batching);
    /// false packs each call's jobs alone.
    pub pack_across_calls: bool,
}

impl Default for AsrConfig {
    fn default() -> Self {
        AsrConfig {
            workers: DEFAULT_WORKERS,
            threads_per_worker: DEFAULT_THREADS_PER_TRANSCRIBER,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_window_s: DEFAULT_MAX_WINDOW_S,
            gap_s: DEFAULT_GAP_S,
            max_job_s: DEFAULT_MAX_JOB_S,
            max_queue_wait_s: DEFAULT_MAX_QUEUE_WAIT_S,
            pack_across_calls: DEFAULT_PACK_ACROSS_CALLS,
        }
    }
}

impl AsrConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), AsrError> {
        let bad = |m: &str| Err(AsrError::InvalidConfig(m.to_string()));
        if self.workers == 0 {
            return bad("workers must be ≥ 1");
        }
        if self.threads_per_worker == 0 {
            return bad("threads_per_worker must be ≥ 1");
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity must be ≥ 1");
        }
        if !(1.0..=30.0).contains(&self.max_window_s) {
            return bad("max_window_s must be in 1..=30");
        }
        if !(0.0..=5.0).contains(&self.gap_s) {
            return bad("gap_s must be in 0..=5");
        }
        if !(self.max_job_s > 0.0 && self.max_job_s.is_finite()) {
            return bad("max_job_s must be > 0");
        }
        if !(self.max_queue_wait_s > 0.0 && self.max_queue_wait_s.is_finite()) {
            return bad("max_queue_wait_s must be > 0");
        }
        Ok(())
    }

    /// Most samples one Whisper window holds, pieces and gaps included.
    pub fn window_samples(&self) -> usize {
        seconds_to_samples(self.max_window_s)
    }

    /// Silence between packed pieces, samples.
    pub fn gap_samples(&self) -> usize {
        seconds_to_samples(self.gap_s)
    }
}

fn seconds_to_samples(s: f32) -> usize {
    (s.max(0.0) * crate::SAMPLE_RATE as f32).round() as usize
}

/// Called once with a job's result, on a pool worker thread: keep it short (send on a
/// channel), do not block on the pool.
pub type AsrReply = Box<dyn FnOnce(Result<Vec<Word>, AsrError>) + Send>;

/// One utterance to transcribe.
pub struct AsrJob {
    /// 16 kHz mono samples.
    pub audio: Vec<f32>,
    /// Receives the words (times relative to the start of `audio`) or the error.
    pub reply: AsrReply,
}

impl AsrJob {
    /// A job replying through `reply`.
    pub fn new(
        audio: Vec<f32>,
        reply: impl FnOnce(Result<Vec<Word>, AsrError>) + Send + 'static,
    ) -> Self {
        AsrJob {
            audio,
            reply: Box::new(reply),
        }
    }

    /// A job together with the receiving end of its reply.
    pub fn with_channel(audio: Vec<f32>) -> (Self, mpsc::Receiver<Result<Vec<Word>, AsrError>>) {
        let (tx, rx) = mpsc::sync_channel(1);
        let job = AsrJob::new(audio, move |r| {
            // The receiver may be gone (caller gave up): nothing to do then.
            let _ = tx.send(r);
        });
        (job, rx)
    }
}

impl std::fmt::Debug for AsrJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsrJob")
            .field("samples", &self.audio.len())
            .finish_non_exhaustive()
    }
}

/// Counters since the pool started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AsrStats {
    /// Jobs answered (with words or an error).
    pub jobs: u64,
    /// whisper.cpp runs (one per packed window or long job).
    pub windows: u64,
    /// Audio transcribed, ms (job audio only, without gaps).
    pub audio_ms: u64,
    /// Time jobs waited in the queue before a worker took them (or found them
    /// expired), summed, µs.
    pub queue_wait_us: u64,
    /// Words dropped because their times straddled the boundary between pieces of two
    /// groups (calls) in one window ([`split_segments_by_group`]).
    pub straddling_words: u64,
    /// Live jobs taken out of a full queue unrun to make room for another call's job
    /// (module docs, "Fair order").
    pub displaced: u64,
    /// Pieces decoded again alone because their window repeated an earlier piece's words
    /// (module docs, "What jobs in one window share").
    pub repeat_redecodes: u64,
    /// Pieces decoded again alone because their words' mean confidence in a shared window
    /// was under [`LOW_CONFIDENCE`] (module docs, "What jobs in one window share").
    pub low_confidence_redecodes: u64,
    /// Windows that held pieces of two or more groups (calls): what packing across calls
    /// ([`AsrConfig::pack_across_calls`]) made. Never counts a window of two
    /// [`PackScope`]s (tenants), which the pool does not make.
    pub shared_windows: u64,
}

#[derive(Default)]
struct Counters {
    jobs: AtomicU64,
    windows: AtomicU64,
    audio_ms: AtomicU64,
    straddling_words: AtomicU64,
    repeat_redecodes: AtomicU64,
    low_confidence_redecodes: AtomicU64,
    displaced: AtomicU64,
    shared_windows: AtomicU64,
}

/// Which jobs may share a Whisper window: only jobs with equal groups are packed together.
/// Use one group per call (or per call leg); `None` is the shared ungrouped group.
pub type PackGroup = Option<u64>;

/// Which live calls may share a window when [`AsrConfig::pack_across_calls`] is on: only
/// calls of equal scope. The server uses the call's tenant, so no tenant's words are
/// another's decoder context; calls without a tenant are in [`SHARED_SCOPE`].
pub type PackScope = Option<Arc<str>>;

/// The scope of live jobs submitted without one ([`AsrPool::try_submit_in`]).
pub const SHARED_SCOPE: PackScope = None;

struct Queued {
    group: PackGroup,
    /// Live jobs of other groups share its window only with an equal scope.
    scope: PackScope,
    job: AsrJob,
    /// A live call's utterance (`try_submit*`): expires at its deadline, may be packed
    /// across calls. Otherwise a recording's, which never expires.
    live: bool,
    /// When it was queued.
    queued: Instant,
    /// `queued` + [`AsrConfig::max_queue_wait_s`]: a live job expires then, a recording
    /// job is taken before live ones from then on.
    deadline: Option<Instant>,
    /// A live job's start tag in fair order, samples of virtual time (module docs); set
    /// by [`QueueState::push`]; 0 for recording jobs.
    tag: u64,
}

impl Queued {
    fn is_due(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }
}

struct QueueState {
    jobs: VecDeque<Queued>,
    closed: bool,
    /// Time taken jobs waited, summed, µs (for [`AsrStats::queue_wait_us`]).
    waited_us: u64,
    /// The last window was a recording's: an overdue recording does not get the next one
    /// while live jobs wait.
    last_was_recording: bool,
    /// Virtual time of fair order: the largest start tag of a live job taken, samples.
    virtual_now: u64,
    /// End tag of each call's last queued live job, while later than `virtual_now`.
    finish: HashMap<PackGroup, u64>,
}

impl QueueState {
    fn new(capacity: usize) -> Self {
        QueueState {
            jobs: VecDeque::with_capacity(capacity),
            closed: false,
            waited_us: 0,
            last_was_recording: false,
            virtual_now: 0,
            finish: HashMap::new(),
        }
    }

    /// Queues `q` at the back, a live job with its start tag in fair order (each piece
    /// costs its samples and the `gap` before it).
    fn push(&mut self, mut q: Queued, gap: usize) {
        if q.live {
            let last = self.finish.get(&q.group).copied().unwrap_or(0);
            q.tag = last.max(self.virtual_now);
            self.finish
                .insert(q.group, q.tag + (gap + q.job.audio.len()) as u64);
        }
        self.jobs.push_back(q);
    }

    /// Makes room for a live job of `group` in a full queue: takes out the waiting live
    /// job with the latest start tag if that is later than the tag `group`'s next job
    /// would get (another call is further ahead in its share), and returns it.
    fn displace_for(&mut self, group: PackGroup) -> Option<Queued> {
        let tag = self
            .finish
            .get(&group)
            .copied()
            .unwrap_or(0)
            .max(self.virtual_now);
        // The last of equal tags in queue order: the newest.
        let (i, latest) = self
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, q)| q.live)
            .max_by_key(|&(i, q)| (q.tag, i))
            .map(|(i, q)| (i, q.tag))?;
        if latest <= tag {
            return None;
        }
        self.jobs.remove(i)
    }

    /// Moves the virtual time on past the live jobs just taken, and forgets the end tags
    /// it has passed (those calls' next jobs start at the virtual time anyway).
    fn advance(&mut self, taken_tags: impl Iterator<Item = u64>) {
        let now = taken_tags.fold(self.virtual_now, u64::max);
        self.virtual_now = now;
        self.finish.retain(|_, f| *f > now);
    }
}

struct Queue {
    state: Mutex<QueueState>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while holding the lock cannot leave the deque inconsistent (push/pop only).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whisper worker threads sharing one model, behind a bounded queue.
pub struct AsrPool {
    queue: Arc<Queue>,
    workers: Vec<JoinHandle<()>>,
    counters: Arc<Counters>,
    cfg: AsrConfig,
    model: Arc<WhisperModel>,
}

impl std::fmt::Debug for AsrPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsrPool")
            .field("cfg", &self.cfg)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// What to say when `workers` recognisers of `threads` whisper.cpp threads each would run on
/// fewer `cores`: ggml's threads spin while they wait for each other at every step of a
/// window, so a thread that has lost its core holds up the others. Measured on 2 cores
/// (docs/measurements.md, "More whisper.cpp threads than cores"): 42 short clips through
/// `analyze` took 28 s with 2 workers of 1 thread and had not finished after 240 s with 2
/// of 2. `None` when the threads fit.
pub fn oversubscription(workers: usize, threads: usize, cores: usize) -> Option<String> {
    let total = workers.saturating_mul(threads);
    (total > cores).then(|| {
        format!(
            "{workers} recogniser worker(s) × {threads} thread(s) = {total} whisper.cpp threads on \
             {cores} core(s): whisper.cpp's threads spin while they wait for each other, so \
             every window can take many times longer; keep workers × threads at or under the \
             cores (--workers, --threads), and give each of several callmood processes on one \
             machine its share"
        )
    })
}

impl AsrPool {
    /// Loads the model once and starts `cfg.workers` threads.
    pub fn new(model_path: &Path, cfg: AsrConfig) -> Result<Self, AsrError> {
        cfg.validate()?;
        let model = WhisperModel::load(model_path)?;
        Self::with_model(model, cfg)
    }

    /// Starts the workers on an already loaded model.
    pub fn with_model(model: Arc<WhisperModel>, cfg: AsrConfig) -> Result<Self, AsrError> {
        cfg.validate()?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(warning) = oversubscription(cfg.workers, cfg.threads_per_worker, cores) {
            tracing::warn!("{warning}");
        }
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::new(cfg.queue_capacity)),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity: cfg.queue_capacity,
        });
        let counters = Arc::new(Counters::default());
        let mut pool = AsrPool {
            queue,
            workers: Vec::with_capacity(cfg.workers),
            counters,
            cfg: cfg.clone(),
            model: model.clone(),
        };
        for i in 0..cfg.workers {
            // Created here so a failure is reported to the caller, not lost in a thread.
            let transcriber = Transcriber::new(model.clone(), cfg.threads_per_worker)?;
            let queue = pool.queue.clone();
            let counters = pool.counters.clone();
            let cfg = cfg.clone();
            let handle = std::thread::Builder::new()
                .name(format!("asr-{i}"))
                .spawn(move || worker_loop(&queue, transcriber, &cfg, &counters))
                .map_err(|e| AsrError::Whisper(format!("cannot start worker thread: {e}")))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// `job` as queued now, with its deadline.
    fn enqueued(&self, group: PackGroup, scope: PackScope, job: AsrJob, live: bool) -> Queued {
        let queued = Instant::now();
        let wait = Duration::from_secs_f32(self.cfg.max_queue_wait_s);
        Queued {
            group,
            scope,
            job,
            live,
            queued,
            deadline: queued.checked_add(wait),
            tag: 0,
        }
    }

    /// Queues a live job in the ungrouped group if there is room; otherwise hands it back
    /// untouched. See the module docs before mixing calls.
    pub fn try_submit(&self, job: AsrJob) -> Result<(), AsrJob> {
        self.try_submit_in(None, job)
    }

    /// Queues a live job of `group` (a call) if there is room, or if it may take the place
    /// of another call's newer job (module docs, "Fair order"); otherwise hands it back
    /// untouched. It expires after [`AsrConfig::max_queue_wait_s`] and shares windows with
    /// other calls' live jobs when [`AsrConfig::pack_across_calls`] is on.
    pub fn try_submit_in(&self, group: PackGroup, job: AsrJob) -> Result<(), AsrJob> {
        self.try_submit_scoped(group, SHARED_SCOPE, job)
    }

    /// [`AsrPool::try_submit_in`] for a call of `scope`: packed across calls only with live
    /// jobs of the same scope (a tenant's calls).
    pub fn try_submit_scoped(
        &self,
        group: PackGroup,
        scope: PackScope,
        job: AsrJob,
    ) -> Result<(), AsrJob> {
        let mut st = self.queue.lock();
        if st.closed {
            return Err(job);
        }
        let mut displaced = None;
        if st.jobs.len() >= self.queue.capacity {
            displaced = st.displace_for(group);
            if displaced.is_none() {
                return Err(job);
            }
        }
        st.push(
            self.enqueued(group, scope, job, true),
            self.cfg.gap_samples(),
        );
        drop(st);
        self.queue.not_empty.notify_one();
        if let Some(q) = displaced {
            self.counters.displaced.fetch_add(1, Ordering::Relaxed);
            answer(q.job, Err(AsrError::Displaced));
        }
        Ok(())
    }

    /// Queues a recording job in the ungrouped group, waiting for room. Fails (without
    /// calling the job's reply) only if the pool is shutting down.
    pub fn submit_blocking(&self, job: AsrJob) -> Result<(), AsrError> {
        self.submit_blocking_in(None, job)
    }

    /// Queues a recording job that may share a window only with jobs of `group`, waiting
    /// for room. Fails (without calling the job's reply) only if the pool is shutting down.
    pub fn submit_blocking_in(&self, group: PackGroup, job: AsrJob) -> Result<(), AsrError> {
        self.submit_all_blocking_in(group, vec![job])
    }

    /// Queues several jobs of one group at once, waiting for room, so that a
    /// worker finds them together: jobs that fit one window
    /// ([`AsrConfig::window_samples`]) are transcribed in one window, in
    /// order, whatever else is queued. Batch callers use this for results
    /// that do not depend on timing. More jobs than the queue holds wait for
    /// an empty queue and then go in together.
    pub fn submit_all_blocking_in(
        &self,
        group: PackGroup,
        jobs: Vec<AsrJob>,
    ) -> Result<(), AsrError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let need = jobs.len().min(self.queue.capacity);
        let mut st = self.queue.lock();
        while !st.closed && st.jobs.len() + need > self.queue.capacity {
            st = self
                .queue
                .not_full
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
        if st.closed {
            return Err(AsrError::PoolClosed);
        }
        for job in jobs {
            st.push(self.enqueued(group, SHARED_SCOPE, job, false), 0);
        }
        drop(st);
        self.queue.not_empty.notify_all();
        Ok(())
    }

    /// Transcribes `audio` through the pool and waits for the result (batch use). Packed
    /// only with other jobs of `group`.
    pub fn transcribe(&self, group: PackGroup, audio: Vec<f32>) -> Result<Vec<Word>, AsrError> {
        let (job, rx) = AsrJob::with_channel(audio);
        self.submit_blocking_in(group, job)?;
        rx.recv().unwrap_or(Err(AsrError::PoolClosed))
    }

    /// Takes every queued job of `group` off the queue unrun, answering each with
    /// [`AsrError::Cancelled`] (its call ended: no one wants the words, and an abandoned
    /// recording must not keep the workers busy); returns how many. A window already being
    /// transcribed finishes.
    pub fn cancel_group(&self, group: PackGroup) -> usize {
        let mut st = self.queue.lock();
        let gone = take_where(&mut st.jobs, |q| q.group == group);
        drop(st);
        self.queue.not_full.notify_all();
        let n = gone.len();
        for q in gone {
            answer(q.job, Err(AsrError::Cancelled));
        }
        n
    }

    /// Jobs waiting (not yet taken by a worker).
    pub fn queued(&self) -> usize {
        self.queue.lock().jobs.len()
    }

    /// Counters since start.
    pub fn stats(&self) -> AsrStats {
        AsrStats {
            jobs: self.counters.jobs.load(Ordering::Relaxed),
            windows: self.counters.windows.load(Ordering::Relaxed),
            audio_ms: self.counters.audio_ms.load(Ordering::Relaxed),
            queue_wait_us: self.queue.lock().waited_us,
            straddling_words: self.counters.straddling_words.load(Ordering::Relaxed),
            displaced: self.counters.displaced.load(Ordering::Relaxed),
            repeat_redecodes: self.counters.repeat_redecodes.load(Ordering::Relaxed),
            low_confidence_redecodes: self
                .counters
                .low_confidence_redecodes
                .load(Ordering::Relaxed),
            shared_windows: self.counters.shared_windows.load(Ordering::Relaxed),
        }
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &AsrConfig {
        &self.cfg
    }
}

impl Drop for AsrPool {
    fn drop(&mut self) {
        let pending: Vec<AsrJob> = {
            let mut st = self.queue.lock();
            st.closed = true;
            st.jobs.drain(..).map(|q| q.job).collect()
        };
        self.queue.not_empty.notify_all();
        self.queue.not_full.notify_all();
        for job in pending {
            answer(job, Err(AsrError::PoolClosed));
        }
        for handle in self.workers.drain(..) {
            // A worker that panicked has already lost its jobs; nothing more to do here.
            let _ = handle.join();
        }
    }
}

/// A job taken off the queue unrun because it waited past its expiry, and how long it waited.
type ExpiredJob = (AsrJob, Duration);

/// Takes the queued jobs that `out` picks off `jobs`, in queue order; the rest stay, in
/// their order.
fn take_where(jobs: &mut VecDeque<Queued>, out: impl Fn(&Queued) -> bool) -> Vec<Queued> {
    let (taken, kept): (Vec<Queued>, Vec<Queued>) = jobs.drain(..).partition(|q| out(q));
    jobs.extend(kept);
    taken
}

/// A window's jobs with their groups, in queue order, and the expired jobs taken out with it.
type Batch = (Vec<(PackGroup, AsrJob)>, Vec<ExpiredJob>);

/// Takes the next window's jobs (see [`plan_window`]) with their groups, and every live job
/// that has waited past its expiry (answered by the caller, never run). `None` once the
/// pool is closed and empty.
fn take_batch(queue: &Queue, cfg: &AsrConfig) -> Option<Batch> {
    let mut st = queue.lock();
    while st.jobs.is_empty() && !st.closed {
        st = queue.not_empty.wait(st).unwrap_or_else(|e| e.into_inner());
    }
    let now = Instant::now();
    let mut waited = Duration::ZERO;
    let expired: Vec<ExpiredJob> = take_where(&mut st.jobs, |q| q.live && q.is_due(now))
        .into_iter()
        .map(|q| {
            let w = now.saturating_duration_since(q.queued);
            waited += w;
            (q.job, w)
        })
        .collect();
    let mut picked = plan_window(&st.jobs, now, cfg, st.last_was_recording);
    if let Some(&first) = picked.first() {
        st.last_was_recording = !st.jobs[first].live;
    }
    let live_tags: Vec<u64> = picked
        .iter()
        .filter(|&&i| st.jobs[i].live)
        .map(|&i| st.jobs[i].tag)
        .collect();
    st.advance(live_tags.into_iter());
    picked.sort_unstable();
    let mut batch = Vec::with_capacity(picked.len());
    // Highest index first, so the lower indices stay valid; then back into queue order.
    for &i in picked.iter().rev() {
        let q = st.jobs.remove(i).expect("planned index in range");
        waited += now.saturating_duration_since(q.queued);
        batch.push((q.group, q.job));
    }
    batch.reverse();
    st.waited_us += waited.as_micros() as u64;
    drop(st);
    queue.not_full.notify_all();
    (!batch.is_empty() || !expired.is_empty()).then_some((batch, expired))
}

/// The queue indices of the next window's jobs, none expired, the first job first.
///
/// The window's first job: an overdue recording job (one past its deadline) unless the last
/// window was a recording's and live jobs wait; else the first live job in fair order (the
/// smallest start tag, the older of equal tags); else the oldest recording job. Then the
/// other jobs that fit: for a live window with [`AsrConfig::pack_across_calls`], live jobs
/// of any group of the first's [`PackScope`] in fair order; otherwise the later jobs of
/// the first's kind and group in queue order. A group's job that does not fit closes the
/// group for this window, so a group's jobs are never reordered (a call's start tags rise
/// in queue order).
fn plan_window(
    jobs: &VecDeque<Queued>,
    now: Instant,
    cfg: &AsrConfig,
    last_was_recording: bool,
) -> Vec<usize> {
    // Live jobs in fair order.
    let mut live: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].live).collect();
    live.sort_by_key(|&i| (jobs[i].tag, i));
    let overdue_recording = jobs.iter().position(|q| !q.live && q.is_due(now));
    let first = match (overdue_recording, live.first().copied()) {
        (Some(r), Some(_)) if !last_was_recording => r,
        (_, Some(l)) => l,
        (Some(r), None) => r,
        (None, None) if jobs.is_empty() => return Vec::new(),
        (None, None) => 0,
    };
    let head = &jobs[first];
    let across = head.live && cfg.pack_across_calls;
    let candidates: Vec<usize> = if across {
        live.into_iter().filter(|&i| i != first).collect()
    } else {
        (first + 1..jobs.len()).collect()
    };
    let window = cfg.window_samples();
    let gap = cfg.gap_samples();
    // Every piece is preceded by a gap of silence (see `pack`).
    let mut total = gap + head.job.audio.len();
    let mut picked = vec![first];
    let mut closed: Vec<PackGroup> = Vec::new();
    for i in candidates {
        let q = &jobs[i];
        if total >= window {
            break;
        }
        let eligible = q.live == head.live
            && if across {
                q.scope == head.scope
            } else {
                q.group == head.group
            };
        if !eligible || closed.contains(&q.group) {
            continue;
        }
        if total + gap + q.job.audio.len() > window {
            closed.push(q.group);
            continue;
        }
        total += gap + q.job.audio.len();
        picked.push(i);
    }
    picked
}

fn worker_loop(queue: &Queue, mut tr: Transcriber, cfg: &AsrConfig, counters: &Counters) {
    let max_job = seconds_to_samples(cfg.max_job_s);
    while let Some((batch, expired)) = take_batch(queue, cfg) {
        for (job, waited) in expired {
            let error = AsrError::Expired {
                waited_s: waited.as_secs_f32(),
                max_s: cfg.max_queue_wait_s,
            };
            answer(job, Err(error));
            counters.jobs.fetch_add(1, Ordering::Relaxed);
        }
        let mut to_run = Vec::with_capacity(batch.len());
        for (group, job) in batch {
            if job.audio.len() > max_job {
                let seconds = job.audio.len() as f32 / crate::SAMPLE_RATE as f32;
                answer(
                    job,
                    Err(AsrError::JobTooLong {
                        seconds,
                        max_seconds: cfg.max_job_s,
                    }),
                );
            } else if is_digital_silence(&job.audio) {
                answer(job, Ok(Vec::new()));
            } else {
                to_run.push((group, job));
            }
            counters.jobs.fetch_add(1, Ordering::Relaxed);
        }
        if to_run.is_empty() {
            continue;
        }
        let clips: Vec<&[f32]> = to_run.iter().map(|(_, j)| j.audio.as_slice()).collect();
        let groups: Vec<PackGroup> = to_run.iter().map(|(g, _)| *g).collect();
        if groups.iter().any(|g| *g != groups[0]) {
            counters.shared_windows.fetch_add(1, Ordering::Relaxed);
        }
        let audio_ms: u64 = clips
            .iter()
            .map(|c| (c.len() * 1000 / crate::SAMPLE_RATE as usize) as u64)
            .sum();
        // A panic must not take the worker (and every later job's reply) down with it.
        let results = catch_unwind(AssertUnwindSafe(|| {
            transcribe_packed_groups(&mut tr, &clips, &groups, cfg.gap_samples())
        }))
        .unwrap_or_else(|_| Err(AsrError::Whisper("transcription panicked".into())));
        counters.windows.fetch_add(1, Ordering::Relaxed);
        counters.audio_ms.fetch_add(audio_ms, Ordering::Relaxed);
        match results {
            Ok(split) => {
                counters
                    .straddling_words
                    .fetch_add(split.straddling, Ordering::Relaxed);
                counters
                    .repeat_redecodes
                    .fetch_add(split.redecoded, Ordering::Relaxed);
                counters
                    .low_confidence_redecodes
                    .fetch_add(split.low_confidence, Ordering::Relaxed);
                counters
                    .windows
                    .fetch_add(split.redecoded + split.low_confidence, Ordering::Relaxed);
                for ((_, job), words) in to_run.into_iter().zip(split.words) {
                    answer(job, Ok(words));
                }
            }
            Err(e) => {
                for (_, job) in to_run {
                    answer(job, Err(e.clone()));
                }
            }
        }
    }
}

/// Calls the job's reply; a panicking reply (a caller bug) is contained to that job.
fn answer(job: AsrJob, result: Result<Vec<Word>, AsrError>) {
    let _ = catch_unwind(AssertUnwindSafe(move || (job.reply)(result)));
}

fn is_digital_silence(audio: &[f32]) -> bool {
    audio.iter().all(|s| s.abs() < SILENCE_PEAK)
}

/// Transcribes several clips in one Whisper run: each preceded by `gap_samples` of silence
/// ([`pack`]), words split back by timestamp ([`split_segments`]) and re-timed to each clip's
/// start. The clips are taken as one group's (one call or recording). The caller keeps the
/// total within one window for the saving to hold.
pub fn transcribe_packed(
    tr: &mut Transcriber,
    clips: &[&[f32]],
    gap_samples: usize,
) -> Result<Vec<Vec<Word>>, AsrError> {
    let groups = vec![None; clips.len()];
    Ok(transcribe_packed_groups(tr, clips, &groups, gap_samples)?.words)
}

/// Words split back per piece of a packed window, and how many were dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    /// Each piece's words, re-timed to the piece's start.
    pub words: Vec<Vec<Word>>,
    /// Words dropped because they straddled a boundary between two groups' pieces.
    pub straddling: u64,
    /// Pieces decoded again alone because the window repeated an earlier piece's words.
    pub redecoded: u64,
    /// Pieces decoded again alone because their words' mean confidence was under
    /// [`LOW_CONFIDENCE`] (whether or not the piece's own run was then kept).
    pub low_confidence: u64,
}

/// Like [`transcribe_packed`], with each clip's group (`groups[i]` for `clips[i]`): words are
/// split back by [`split_segments_by_group`], so none crosses from one group to another.
pub fn transcribe_packed_groups(
    tr: &mut Transcriber,
    clips: &[&[f32]],
    groups: &[PackGroup],
    gap_samples: usize,
) -> Result<Split, AsrError> {
    if clips.is_empty() {
        return Ok(Split::default());
    }
    let (audio, spans) = pack(clips, gap_samples);
    let segments = tr.transcribe_segments(&audio)?;
    let mut split = split_segments_by_group(segments, &spans, groups);
    let repeated = repeated_piece(&split.words, clips);
    if let Some(first) = repeated {
        // Whisper repeated an earlier piece's words here, and tends to stop after doing so:
        // this piece and every later one are decoded again, each alone.
        for (i, clip) in clips.iter().enumerate().skip(first) {
            split.words[i] = transcribe_alone(tr, clip, gap_samples)?;
            split.redecoded += 1;
        }
    }
    if clips.len() > 1 {
        // A piece Whisper was unsure of in company (often one that a neighbour's garbled
        // words spread into) is decoded alone, and keeps whichever run it was surer of.
        let shared = repeated.unwrap_or(clips.len());
        for (i, clip) in clips.iter().enumerate().take(shared) {
            let packed = mean_confidence(&split.words[i]);
            if packed >= LOW_CONFIDENCE {
                continue;
            }
            let alone = transcribe_alone(tr, clip, gap_samples)?;
            split.low_confidence += 1;
            if mean_confidence(&alone) > packed {
                split.words[i] = alone;
            }
        }
    }
    Ok(split)
}

/// One piece decoded alone in its own window, its gap before it, as the two re-decode rules
/// above do.
fn transcribe_alone(
    tr: &mut Transcriber,
    clip: &[f32],
    gap_samples: usize,
) -> Result<Vec<Word>, AsrError> {
    Ok(transcribe_packed(tr, &[clip], gap_samples)?
        .pop()
        .unwrap_or_default())
}

/// Below this mean word confidence, a piece of a shared window is decoded again alone
/// (docs/measurements.md, "A piece Whisper is unsure of in company").
pub const LOW_CONFIDENCE: f32 = 0.5;

/// The mean of the words' confidences; 0 for no words.
fn mean_confidence(words: &[Word]) -> f32 {
    if words.is_empty() {
        return 0.0;
    }
    words.iter().map(|w| w.confidence).sum::<f32>() / words.len() as f32
}

/// Fewest words a piece must have for its repeating an earlier piece to count: short
/// replies ("yes, thank you") are said twice in real calls.
const REPEAT_MIN_WORDS: usize = 3;

/// The first piece of a packed window whose words (lower case, letters and digits only, at
/// least [`REPEAT_MIN_WORDS`]) are those of an earlier piece of the window: Whisper
/// repeating itself across the gap (docs/measurements.md, "A repeated piece in a packed
/// window"). Not when that earlier piece is the same audio ([`same_audio`]: one recorded
/// prompt played twice, or into two calls), whose words are rightly the same.
fn repeated_piece(words: &[Vec<Word>], clips: &[&[f32]]) -> Option<usize> {
    let key = |ws: &[Word]| -> Vec<String> {
        ws.iter()
            .flat_map(|w| {
                w.text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|t| !t.is_empty())
                    .map(str::to_lowercase)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let keys: Vec<Vec<String>> = words.iter().map(|w| key(w)).collect();
    (1..keys.len()).find(|&i| {
        if keys[i].len() < REPEAT_MIN_WORDS {
            return false;
        }
        let same_words: Vec<usize> = (0..i).filter(|&j| keys[j] == keys[i]).collect();
        !same_words.is_empty()
            && !same_words
                .iter()
                .any(|&j| same_audio(clips[i], clips[j], SAME_AUDIO_MIN_CORRELATION))
    })
}

/// Normalised cross-correlation at or above which two pieces are the same audio
/// ([`same_audio`]).
const SAME_AUDIO_MIN_CORRELATION: f32 = 0.9;

/// Whether `a` and `b` are the same recording, perhaps cut a little differently: lengths
/// within 20 % of each other, and a lag at which their cross-correlation, over the
/// square root of the product of their energies, is at least `min`. Copies of one clip cut
/// at other samples give nearly 1; two takes of one sentence, even by one voice, share no
/// waveform and give far less (under 0.3 in the tests), so the test does not take a
/// sentence said twice, or said in two calls, for one recording.
fn same_audio(a: &[f32], b: &[f32], min: f32) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.is_empty() || (short.len() as f32) < 0.8 * long.len() as f32 {
        return false;
    }
    let energy = |x: &[f32]| x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>();
    let norm = (energy(a) * energy(b)).sqrt();
    if norm <= 0.0 {
        return false;
    }
    max_cross_correlation(a, b) / norm >= f64::from(min)
}

/// The largest value of the cross-correlation of `a` and `b` over every lag (by FFT).
fn max_cross_correlation(a: &[f32], b: &[f32]) -> f64 {
    use realfft::num_complex::Complex;
    let n = (a.len() + b.len()).next_power_of_two();
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let spectrum = |x: &[f32]| -> Vec<Complex<f64>> {
        let mut buf = fwd.make_input_vec();
        for (d, s) in buf.iter_mut().zip(x) {
            *d = f64::from(*s);
        }
        let mut out = fwd.make_output_vec();
        // The lengths are the plan's own, so this cannot fail.
        let _ = fwd.process(&mut buf, &mut out);
        out
    };
    let (fa, fb) = (spectrum(a), spectrum(b));
    let mut product: Vec<Complex<f64>> = fa.iter().zip(&fb).map(|(x, y)| x * y.conj()).collect();
    let mut corr = inv.make_output_vec();
    let _ = inv.process(&mut product, &mut corr);
    // The inverse is unnormalised: every value is n times the correlation.
    corr.iter().fold(f64::MIN, |m, v| m.max(*v)) / n as f64
}

/// Concatenates clips, each preceded by `gap_samples` of silence; returns the audio and each
/// clip's sample range in it. The leading silence is measured, not cosmetic: on the WER set
/// (tools/wer_eval.py) it took `analyze` from 27 to 24 errors over 344 words (16 kHz and
/// 8 kHz μ-law), where the bare engine makes 26; tiny.en is steadier when a window does not
/// open on speech.
pub fn pack(clips: &[&[f32]], gap_samples: usize) -> (Vec<f32>, Vec<Range<usize>>) {
    let total = clips.iter().map(|c| c.len()).sum::<usize>() + gap_samples * clips.len();
    let mut audio = Vec::with_capacity(total);
    let mut spans = Vec::with_capacity(clips.len());
    for clip in clips {
        // Silence before every piece, the first too: tiny.en decodes an
        // utterance more steadily when the window does not open on speech.
        audio.resize(audio.len() + gap_samples, 0.0);
        let start = audio.len();
        audio.extend_from_slice(clip);
        spans.push(start..audio.len());
    }
    (audio, spans)
}

/// Gives each clip (sample ranges from [`pack`]) its words, re-timed to the clip's start and
/// clamped to it; the clips are taken as one group's ([`split_segments_by_group`]).
pub fn split_segments(segments: Vec<Segment>, spans: &[Range<usize>]) -> Vec<Vec<Word>> {
    split_segments_by_group(segments, spans, &vec![None; spans.len()]).words
}

/// Gives each clip (sample ranges from [`pack`], `groups[i]` the group of clip `i`) its
/// words, re-timed to the clip's start and clamped to it.
///
/// Whisper's times run late, not early: a segment's start (its own timestamp token) lands on
/// or a little after the speech onset, and word starts (DTW) lag by up to ~0.5 s near the
/// end of a segment. So a segment goes to the clip nearest its start, and a word moves on to
/// a later clip only when its start lies inside that clip, never because it fell into the
/// gap after its own clip. Assignment is monotone: words keep their order.
///
/// That tolerance holds only between clips of one group. Where the neighbouring clip
/// belongs to another group (another call), a word must start inside its own clip or in
/// the first half of the gap after it: one that starts in the gap before its clip, or in
/// the second half of the gap after it, straddles the boundary and is dropped (counted in
/// [`Split::straddling`]), never given to either side. A word starting inside its clip is
/// that clip's whatever its end (kept, clamped): a word's end is its DTW start plus an
/// interpolated duration, late by nature, and a piece's last word often "ends" inside the
/// next piece or starts a little after its own; dropping those cost a live call packed
/// with other calls about one utterance in four its last word (docs/measurements.md, "A
/// word starting inside its piece, or in the first half of the gap after it").
pub fn split_segments_by_group(
    segments: Vec<Segment>,
    spans: &[Range<usize>],
    groups: &[PackGroup],
) -> Split {
    let per_ms = crate::SAMPLE_RATE as f64 / 1000.0;
    let spans_ms: Vec<(f64, f64)> = spans
        .iter()
        .map(|s| (s.start as f64 / per_ms, s.end as f64 / per_ms))
        .collect();
    let mut split = Split {
        words: vec![Vec::new(); spans.len()],
        straddling: 0,
        redecoded: 0,
        low_confidence: 0,
    };
    if spans.is_empty() {
        return split;
    }
    let distance = |t: f64, (a, b): (f64, f64)| {
        if t < a {
            a - t
        } else if t > b {
            t - b
        } else {
            0.0
        }
    };
    let other_group = |i: usize, j: usize| groups.get(i) != groups.get(j);
    let mut current = 0;
    for seg in segments {
        let t = seg.start_ms as f64;
        current = (current..spans_ms.len())
            .min_by(|&x, &y| distance(t, spans_ms[x]).total_cmp(&distance(t, spans_ms[y])))
            .unwrap_or(current);
        for mut w in seg.words {
            let t = w.start_ms as f64;
            if let Some(later) =
                (current + 1..spans_ms.len()).find(|&c| distance(t, spans_ms[c]) == 0.0)
            {
                current = later;
            }
            let (a, b) = spans_ms[current];
            let start = w.start_ms as f64;
            let before = current > 0 && other_group(current - 1, current) && start < a;
            // Into the gap after the clip, before another group's: kept within its first
            // half (a late last word), dropped beyond.
            let after = current + 1 < spans_ms.len()
                && other_group(current, current + 1)
                && start > b + (spans_ms[current + 1].0 - b) / 2.0;
            if before || after {
                split.straddling += 1;
                continue;
            }
            let rel = |t: u32| (t as f64 - a).clamp(0.0, b - a).round() as u32;
            w.start_ms = rel(w.start_ms);
            w.end_ms = rel(w.end_ms);
            split.words[current].push(w);
        }
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, start_ms: u32, end_ms: u32) -> Word {
        Word {
            text: text.into(),
            start_ms,
            end_ms,
            confidence: 0.9,
        }
    }

    #[test]
    fn more_threads_than_cores_is_named_and_fitting_ones_are_not() {
        assert_eq!(oversubscription(1, 2, 2), None);
        assert_eq!(oversubscription(2, 1, 2), None);
        assert_eq!(oversubscription(1, 1, 1), None);
        let w = oversubscription(2, 2, 2).expect("4 threads on 2 cores");
        assert!(w.contains("= 4 whisper.cpp threads on 2 core(s)"), "{w}");
        assert!(w.contains("--workers, --threads"), "{w}");
        assert!(oversubscription(1, 2, 1).is_some());
        assert!(oversubscription(usize::MAX, 2, 64).is_some());
    }

    #[test]
    fn pack_puts_a_gap_before_every_clip() {
        let a = vec![1.0; 3];
        let b = vec![2.0; 2];
        let (audio, spans) = pack(&[&a, &b], 4);
        assert_eq!(
            audio,
            [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 2.0]
        );
        assert_eq!(spans, [4..7, 11..13]);
    }

    fn segment(start_ms: u32, end_ms: u32, words: Vec<Word>) -> Segment {
        Segment {
            start_ms,
            end_ms,
            words,
        }
    }

    #[test]
    fn late_times_stay_with_their_clip() {
        // clip 0: 0..2000 ms, gap, clip 1: 3000..4000 ms, gap, clip 2: 5000..6000 ms
        // (16 samples per ms)
        let spans = [0..32_000, 48_000..64_000, 80_000..96_000];
        let segments = vec![
            segment(
                0,
                3200,
                vec![
                    word("one", 100, 400),
                    word("two", 2500, 2900), // late estimate, in the gap: stays in clip 0
                ],
            ),
            segment(
                3200,
                6000,
                vec![
                    word("three", 3300, 3600),
                    word("four", 3900, 4200), // runs past the end of clip 1
                    word("five", 5100, 5400), // inside clip 2: moves on
                ],
            ),
        ];
        let split = split_segments(segments, &spans);
        assert_eq!(split[0], [word("one", 100, 400), word("two", 2000, 2000)]);
        assert_eq!(split[1], [word("three", 300, 600), word("four", 900, 1000)]);
        assert_eq!(split[2], [word("five", 100, 400)]);
    }

    #[test]
    fn segment_starting_in_a_gap_goes_to_the_nearest_clip() {
        let spans = [0..32_000, 48_000..64_000];
        let segments = vec![segment(2800, 4000, vec![word("x", 2900, 3100)])];
        let split = split_segments(segments, &spans);
        assert!(split[0].is_empty());
        assert_eq!(split[1], [word("x", 0, 100)]);
    }

    /// The default gap, samples (what `AsrPool` queues with).
    const GAP: usize = 16_000;

    fn empty_queue() -> Queue {
        Queue {
            state: Mutex::new(QueueState::new(16)),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity: 16,
        }
    }

    /// A job of `group`, `seconds` long, queued at `queued` with the default deadline.
    fn queued(group: PackGroup, seconds: f32, live: bool, queued: Instant) -> Queued {
        let wait = Duration::from_secs_f32(DEFAULT_MAX_QUEUE_WAIT_S);
        Queued {
            group,
            scope: SHARED_SCOPE,
            job: AsrJob::new(vec![0.1; seconds_to_samples(seconds)], |_| {}),
            live,
            queued,
            deadline: queued.checked_add(wait),
            tag: 0,
        }
    }

    /// A closed queue of jobs queued now, `live` or recording jobs.
    fn queue_of(jobs: &[(PackGroup, f32)], live: bool) -> Queue {
        let q = empty_queue();
        for &(group, seconds) in jobs {
            q.lock()
                .push(queued(group, seconds, live, Instant::now()), GAP);
        }
        q.lock().closed = true;
        q
    }

    /// Each job of a batch as (group, seconds).
    fn pieces((batch, expired): Batch) -> Vec<(PackGroup, f32)> {
        assert!(expired.is_empty());
        batch
            .iter()
            .map(|(g, j)| (*g, j.audio.len() as f32 / crate::SAMPLE_RATE as f32))
            .collect()
    }

    fn per_call() -> AsrConfig {
        AsrConfig {
            pack_across_calls: false,
            ..AsrConfig::default()
        }
    }

    fn across() -> AsrConfig {
        AsrConfig {
            pack_across_calls: true,
            ..AsrConfig::default()
        }
    }

    #[test]
    fn batches_pack_one_group_in_order_within_the_window() {
        let (a, b) = (Some(1), Some(2));
        let jobs = [
            (a, 2.0),
            (b, 2.0),
            (a, 3.0),
            (a, 25.0),
            (a, 1.0),
            (None, 1.0),
        ];
        // Recordings always, and live jobs with packing across calls off.
        for (live, cfg) in [(false, AsrConfig::default()), (true, per_call())] {
            let q = queue_of(&jobs, live);
            // a(2) + 1 + a(3) = 6 s; a(25) would make 32 s: the batch stops there, in order.
            assert_eq!(
                take_batch(&q, &cfg).map(pieces),
                Some(vec![(a, 2.0), (a, 3.0)])
            );
            assert_eq!(take_batch(&q, &cfg).map(pieces), Some(vec![(b, 2.0)]));
            // Recordings in queue order; live calls in fair order: the ungrouped job has
            // had no window yet, `a` has had one (module docs, "Fair order").
            let mut rest = vec![vec![(a, 25.0), (a, 1.0)], vec![(None, 1.0)]];
            if live {
                rest.reverse();
            }
            for window in rest {
                assert_eq!(take_batch(&q, &cfg).map(pieces), Some(window));
            }
            assert!(take_batch(&q, &cfg).is_none());
        }
    }

    /// Live jobs of every call go into one window, in fair order, as many as fit; a call
    /// whose next job does not fit keeps its later jobs for the next window (never
    /// reordered), while smaller jobs of other calls still fill the window.
    #[test]
    fn live_jobs_of_different_calls_share_a_window() {
        let (a, b, c) = (Some(1), Some(2), Some(3));
        let q = queue_of(
            &[
                (a, 4.0),
                (b, 3.0),
                (c, 2.0),
                (a, 16.0),
                (a, 1.0),
                (b, 2.0),
                (c, 5.0),
            ],
            true,
        );
        let cfg = across();
        // 1+4 + 1+3 + 1+2 = 12 s; a(16) would make 29 > 28: call a waits; b(2) makes 15 s;
        // c(5) makes 21 s.
        assert_eq!(
            take_batch(&q, &cfg).map(pieces),
            Some(vec![(a, 4.0), (b, 3.0), (c, 2.0), (b, 2.0), (c, 5.0)])
        );
        assert_eq!(
            take_batch(&q, &cfg).map(pieces),
            Some(vec![(a, 16.0), (a, 1.0)])
        );
        assert!(take_batch(&q, &cfg).is_none());
    }

    /// Packed across calls, a window holds the calls of one scope (tenant) only: the
    /// other tenant's jobs, though they fit and are older, wait for a window of their own.
    /// A tenant's calls share a scope however their names were made.
    #[test]
    fn calls_of_different_scopes_never_share_a_window() {
        let (a, b, c, d) = (Some(1), Some(2), Some(3), Some(4));
        let q = empty_queue();
        for (group, scope) in [
            (a, "acme"),
            (b, "globex"),
            (c, "acme"),
            (d, "globex"),
            (a, "acme"),
        ] {
            let mut job = queued(group, 2.0, true, Instant::now());
            job.scope = Some(Arc::from(scope.to_string()));
            q.lock().push(job, GAP);
        }
        q.lock().closed = true;
        let cfg = across();
        assert_eq!(
            take_batch(&q, &cfg).map(pieces),
            Some(vec![(a, 2.0), (c, 2.0), (a, 2.0)])
        );
        assert_eq!(
            take_batch(&q, &cfg).map(pieces),
            Some(vec![(b, 2.0), (d, 2.0)])
        );
        assert!(take_batch(&q, &cfg).is_none());
    }

    /// Whether the next window holds a job of `group`.
    fn next_window_has(q: &Queue, cfg: &AsrConfig, group: PackGroup) -> bool {
        let batch = take_batch(q, cfg).map(pieces).unwrap_or_default();
        batch.iter().any(|&(g, _)| g == group)
    }

    /// Call `a` queues 40 utterances of 2 s at once (80 s of speech: three windows'
    /// worth and more); call `b` queues one. With one call per window or calls packed
    /// together, `b`'s job goes in the next window whenever `b` queues it, or, queued
    /// at the same instant as `a`'s first job, in the one after `a`'s first window: it
    /// never waits behind `a`'s backlog. `a`'s jobs keep their order.
    #[test]
    fn a_flooding_call_cannot_delay_another_calls_job_beyond_one_window() {
        let (a, b) = (Some(1), Some(2));
        for cfg in [per_call(), across()] {
            for windows_before in 0..4 {
                let q = empty_queue();
                let now = Instant::now();
                for _ in 0..40 {
                    q.lock().push(queued(a, 2.0, true, now), GAP);
                }
                // `a` is being served while `b` is quiet.
                for _ in 0..windows_before {
                    assert!(!next_window_has(&q, &cfg, b));
                }
                q.lock().push(queued(b, 2.0, true, now), GAP);
                let within = if windows_before == 0 && !cfg.pack_across_calls {
                    2
                } else {
                    1
                };
                let waited = (1..=within).find(|_| next_window_has(&q, &cfg, b));
                assert!(
                    waited.is_some(),
                    "across {}: after {windows_before} windows of a's, b's job waited \
                     more than {within} windows",
                    cfg.pack_across_calls
                );
                // What is left is a's, still in its order, and drains.
                q.lock().closed = true;
                while let Some(batch) = take_batch(&q, &cfg).map(pieces) {
                    assert!(batch.iter().all(|&(g, _)| g == a));
                }
            }
        }
    }

    /// Calls take turns in proportion to their audio: `a` (3 s jobs) and `b` (1 s jobs)
    /// both flood the queue; packed together, each window holds about as many seconds
    /// of each call, and with one call per window they alternate.
    #[test]
    fn flooding_calls_take_turns() {
        let (a, b) = (Some(1), Some(2));
        let fill = |q: &Queue| {
            let now = Instant::now();
            for _ in 0..20 {
                q.lock().push(queued(a, 3.0, true, now), GAP);
            }
            for _ in 0..40 {
                q.lock().push(queued(b, 1.0, true, now), GAP);
            }
        };
        let q = empty_queue();
        fill(&q);
        let seconds = |batch: &[(PackGroup, f32)], g: PackGroup| -> f32 {
            batch.iter().filter(|p| p.0 == g).map(|p| p.1 + 1.0).sum()
        };
        // Packed: 28 s a window, gaps included: each call's share within one job of half.
        for _ in 0..3 {
            let batch = take_batch(&q, &across()).map(pieces).unwrap();
            let (sa, sb) = (seconds(&batch, a), seconds(&batch, b));
            assert!((sa - sb).abs() <= 4.0, "a {sa} s, b {sb} s: {batch:?}");
        }
        let q = empty_queue();
        fill(&q);
        let firsts: Vec<PackGroup> = (0..4)
            .map(|_| take_batch(&q, &per_call()).map(pieces).unwrap()[0].0)
            .collect();
        assert_eq!(firsts, [a, b, a, b]);
    }

    /// A full queue takes a live job of a call behind in its share in place of the newest
    /// job of the call furthest ahead, and refuses the flooding call's own next job.
    #[test]
    fn a_full_queue_makes_room_for_a_call_behind_in_its_share() {
        let (a, b) = (Some(1), Some(2));
        let mut st = QueueState::new(16);
        let now = Instant::now();
        for _ in 0..16 {
            st.push(queued(a, 2.0, true, now), GAP);
        }
        let newest = st.jobs.back().map(|q| q.tag);
        assert!(
            st.displace_for(a).is_none(),
            "a's own job displaces nothing"
        );
        let out = st.displace_for(b).expect("room for b");
        assert_eq!((out.group, Some(out.tag)), (a, newest));
        st.push(queued(b, 2.0, true, now), GAP);
        assert_eq!(st.jobs.len(), 16);
        // Recording jobs are never displaced.
        let mut st = QueueState::new(16);
        for _ in 0..16 {
            st.push(queued(a, 2.0, false, now), GAP);
        }
        assert!(st.displace_for(b).is_none());
    }

    /// Live jobs go before recording jobs queued earlier; a recording past its deadline
    /// gets the next window, but not two in a row while live jobs wait; recordings are
    /// never packed with live jobs or other recordings.
    #[test]
    fn live_jobs_first_and_recordings_still_progress() {
        let q = empty_queue();
        let now = Instant::now();
        let fresh = now - Duration::from_secs(1);
        let overdue = now - Duration::from_secs(20);
        {
            let mut st = q.lock();
            st.push(queued(Some(10), 2.0, false, fresh), GAP);
            st.push(queued(Some(1), 2.0, true, fresh), GAP);
            st.push(queued(Some(2), 2.0, true, fresh), GAP);
        }
        let cfg = across();
        assert_eq!(
            take_batch(&q, &cfg).map(pieces),
            Some(vec![(Some(1), 2.0), (Some(2), 2.0)])
        );
        assert_eq!(
            take_batch(&q, &cfg).map(pieces),
            Some(vec![(Some(10), 2.0)])
        );
        // Two overdue recordings and fresh live jobs: recording, live, recording, live.
        {
            let mut st = q.lock();
            st.push(queued(Some(10), 2.0, false, overdue), GAP);
            st.push(queued(Some(11), 2.0, false, overdue), GAP);
            st.push(queued(Some(1), 2.0, true, fresh), GAP);
            st.push(queued(Some(2), 30.0, true, fresh), GAP);
            st.last_was_recording = false;
            st.closed = true;
        }
        let order: Vec<_> = std::iter::from_fn(|| take_batch(&q, &cfg).map(pieces)).collect();
        assert_eq!(
            order,
            [
                vec![(Some(10), 2.0)],
                vec![(Some(1), 2.0)],
                vec![(Some(11), 2.0)],
                vec![(Some(2), 30.0)],
            ]
        );
    }

    /// Live jobs past their deadline leave the queue unrun, wherever they are, with how long
    /// they waited; the others are batched as usual; recording jobs never expire.
    #[test]
    fn expired_jobs_are_taken_out_unrun() {
        let q = empty_queue();
        let long_ago = Instant::now() - Duration::from_secs(30);
        for (group, live, queued_at) in [
            (Some(1), true, long_ago),
            (Some(1), false, long_ago),
            (Some(2), true, long_ago),
            (Some(1), true, Instant::now()),
        ] {
            q.lock().push(queued(group, 1.0, live, queued_at), GAP);
        }
        let (batch, expired) = take_batch(&q, &across()).unwrap();
        assert_eq!(expired.len(), 2);
        assert!(expired.iter().all(|(_, w)| *w >= Duration::from_secs(30)));
        // The fresh live job first; the overdue recording next.
        assert_eq!(batch.len(), 1);
        let (batch, expired) = take_batch(&q, &across()).unwrap();
        assert!(batch.len() == 1 && expired.is_empty());
        assert!(q.lock().jobs.is_empty());
        // Only expired jobs queued: they come back with an empty batch.
        q.lock().push(queued(None, 1.0, true, long_ago), GAP);
        q.lock().closed = true;
        let (batch, expired) = take_batch(&q, &across()).unwrap();
        assert!(batch.is_empty() && expired.len() == 1);
        assert!(take_batch(&q, &across()).is_none());
    }

    /// Speech-like test audio: a voiced sound (harmonics of a pitch that glides from `f0`
    /// by `glide` Hz over the clip) plus noise, under a syllable-rate envelope; `seed`
    /// picks the noise.
    fn voiced(seconds: f32, f0: f32, glide: f32, seed: u64) -> Vec<f32> {
        let mut rng = crate::core::rng::SplitMix64::new(seed);
        let n = (seconds * crate::SAMPLE_RATE as f32) as usize;
        let mut phase = 0.0f32;
        (0..n)
            .map(|i| {
                let t = i as f32 / crate::SAMPLE_RATE as f32;
                let f = f0 + glide * t / seconds;
                phase += 2.0 * std::f32::consts::PI * f / crate::SAMPLE_RATE as f32;
                let tone: f32 = (1..=8).map(|h| (phase * h as f32).sin() / h as f32).sum();
                let envelope = (std::f32::consts::PI * 4.0 * t).sin().abs();
                envelope * (0.2 * tone + 0.05 * rng.normal())
            })
            .collect()
    }

    /// Copies of one clip are the same audio, however they were cut and whatever their
    /// level; other noise, another pitch contour or a clip of another length are not.
    #[test]
    fn the_same_audio_is_told_from_a_sentence_said_again() {
        let a = voiced(2.0, 120.0, 30.0, 1);
        // Cut 37 samples later and 200 samples shorter, at half the level.
        let b: Vec<f32> = a[37..a.len() - 200].iter().map(|v| v * 0.5).collect();
        assert!(same_audio(&a, &b, SAME_AUDIO_MIN_CORRELATION));
        assert!(same_audio(&b, &a, SAME_AUDIO_MIN_CORRELATION));
        // Said again: the same envelope and nearly the same pitch, other breath noise.
        let again = voiced(2.0, 122.0, 26.0, 2);
        assert!(!same_audio(&a, &again, 0.3));
        // The first half of a clip is not the clip.
        assert!(!same_audio(
            &a,
            &a[..a.len() / 2],
            SAME_AUDIO_MIN_CORRELATION
        ));
        assert!(!same_audio(&a, &[], SAME_AUDIO_MIN_CORRELATION));
        assert!(!same_audio(
            &a,
            &vec![0.0; a.len()],
            SAME_AUDIO_MIN_CORRELATION
        ));
    }

    /// A piece whose words are an earlier piece's of the window is a repetition; short
    /// replies and different words are not, nor a piece that is the earlier piece's audio
    /// again (a recorded prompt played twice).
    #[test]
    fn a_piece_repeating_an_earlier_one_is_found() {
        let w = |t: &str| -> Vec<Word> {
            t.split(' ')
                .map(|x| Word {
                    text: x.into(),
                    start_ms: 0,
                    end_ms: 0,
                    confidence: 1.0,
                })
                .collect()
        };
        let audio: Vec<Vec<f32>> = (0..3)
            .map(|k| voiced(1.5, 110.0 + 9.0 * k as f32, 20.0, k))
            .collect();
        let clips: Vec<&[f32]> = audio.iter().map(Vec::as_slice).collect();
        let q = "Please read me the current number.";
        assert_eq!(
            repeated_piece(&[w(q), w("please read me the current number")], &clips[..2]),
            Some(1)
        );
        assert_eq!(
            repeated_piece(&[w(q), w("four one one one"), w(q)], &clips),
            Some(2)
        );
        assert_eq!(
            repeated_piece(&[w("Thank you."), w("thank you")], &clips[..2]),
            None,
            "short"
        );
        assert_eq!(
            repeated_piece(&[w(q), w("five two nine nine")], &clips[..2]),
            None
        );
        assert_eq!(repeated_piece(&[w(q)], &clips[..1]), None);
        // The third piece is the first one's audio again, so its words are its own.
        let replayed = [clips[0], clips[1], &clips[0][80..]];
        assert_eq!(
            repeated_piece(&[w(q), w("four one one one"), w(q)], &replayed),
            None
        );
    }

    #[test]
    fn a_piece_without_words_counts_as_no_confidence() {
        let mut a = word("yes", 0, 100);
        a.confidence = 0.2;
        let mut b = word("no", 100, 200);
        b.confidence = 0.6;
        assert_eq!(mean_confidence(&[]), 0.0);
        assert!((mean_confidence(&[a.clone(), b]) - 0.4).abs() < 1e-6);
        // Under the bar: decoded again alone when it shares a window.
        assert!(mean_confidence(&[a]) < LOW_CONFIDENCE);
    }

    /// Between clips of two groups a word must start inside its clip or in the first half
    /// of the gap after it: one that starts in the gap before its clip or in the second
    /// half of the gap after it is dropped and counted; one that starts inside its clip is
    /// kept whatever its end (a tail in the gap, or an interpolated end inside the next
    /// group's clip). Between clips of one group the late-time tolerance holds as before.
    #[test]
    fn words_straddling_a_boundary_between_groups_are_dropped() {
        // clip 0: 1000..3000 ms, gap, clip 1: 4000..6000 ms, gap, clip 2: 7000..9000 ms.
        let spans = [16_000..48_000, 64_000..96_000, 112_000..144_000];
        let segments = || {
            vec![
                segment(
                    1000,
                    4000,
                    vec![
                        word("alpha", 1100, 1400),
                        word("tail", 2800, 3300), // ends in the gap after clip 0: kept
                        word("soon", 3300, 3450), // starts in the gap's first half: kept
                        word("late", 3600, 3800), // starts in its second half: dropped
                    ],
                ),
                segment(
                    4000,
                    7000,
                    vec![
                        word("bravo", 4200, 4500),
                        word("early", 3900, 4100), // starts before clip 1 (same segment)
                        word("span", 5800, 7100),  // from clip 1 into clip 2: kept
                        word("charlie", 7200, 7500),
                    ],
                ),
            ]
        };
        let (a, b) = (Some(1), Some(2));
        let split = split_segments_by_group(segments(), &spans, &[a, b, a]);
        let texts = |ws: &[Word]| ws.iter().map(|w| w.text.clone()).collect::<Vec<_>>();
        assert_eq!(texts(&split.words[0]), ["alpha", "tail", "soon"]);
        assert_eq!(texts(&split.words[1]), ["bravo", "span"]);
        assert_eq!(texts(&split.words[2]), ["charlie"]);
        assert_eq!(split.straddling, 2);
        // One group: nothing dropped, the tolerant assignment of `split_segments`.
        let same = split_segments_by_group(segments(), &spans, &[a, a, a]);
        assert_eq!(same.straddling, 0);
        assert_eq!(same.words, split_segments(segments(), &spans));
        assert_eq!(texts(&same.words[0]), ["alpha", "tail", "soon", "late"]);
        assert_eq!(texts(&same.words[1]), ["bravo", "early", "span"]);
        // Only the boundary with another group is strict: clips 0 and 1 of one group.
        let mixed = split_segments_by_group(segments(), &spans, &[a, a, b]);
        assert_eq!(texts(&mixed.words[0]), ["alpha", "tail", "soon", "late"]);
        assert_eq!(texts(&mixed.words[1]), ["bravo", "early", "span"]);
        assert_eq!(mixed.straddling, 0);
    }

    #[test]
    fn config_ranges() {
        assert!(AsrConfig::default().validate().is_ok());
        let bad = AsrConfig {
            workers: 0,
            ..AsrConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = AsrConfig {
            max_window_s: 31.0,
            ..AsrConfig::default()
        };
        assert!(bad.validate().is_err());
        for wait in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let bad = AsrConfig {
                max_queue_wait_s: wait,
                ..AsrConfig::default()
            };
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains("max_queue_wait_s"), "{e}");
        }
    }

    #[test]
    fn config_rejects_unknown_keys() {
        let ok: AsrConfig = serde_json::from_str(r#"{"workers": 3}"#).expect("valid");
        assert_eq!(ok.workers, 3);
        assert_eq!(ok.gap_s, DEFAULT_GAP_S);
        assert!(serde_json::from_str::<AsrConfig>(r#"{"wrokers": 3}"#).is_err());
    }
}
