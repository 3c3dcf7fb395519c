//! A labelled corpus turned into voice features, clip by clip, through the service's own
//! call core (shell side: reads the audio files, uses all cores).

use std::sync::Arc;

use crate::call::CallSettings;
use crate::corpus::{load_audio, run_as_call, to_16k, ClipUtterance, Corpus};
use crate::degrade::LineConfig;
use crate::dsp::DspPlan;

use super::features::VoiceVector;

/// The two conditions every clip is measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The recording as it is.
    Clean,
    /// Through the simulated phone line (8 kHz μ-law, band-limited, light noise).
    Telephony,
}

impl Condition {
    /// Name used in reports and model files.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Clean => "clean",
            Condition::Telephony => "telephony",
        }
    }

    /// The line simulation for a clip (seeded by the clip's index, so reproducible).
    pub fn line(self, seed: u64) -> Option<LineConfig> {
        match self {
            Condition::Clean => None,
            Condition::Telephony => Some(LineConfig { seed }),
        }
    }
}

/// Clips' 16 kHz audio, `None` where a file failed (with the reasons listed).
pub struct LoadedAudio {
    /// One entry per corpus clip.
    pub audio: Vec<Option<Vec<f32>>>,
    /// `(clip index, reason)` of each clip that could not be read.
    pub failed: Vec<(usize, String)>,
}

/// Number of worker threads for corpus work: the machine's cores.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `f` over `0..n` on all cores; results in index order.
pub fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let workers = threads().min(n.max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<(usize, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            break mine;
                        }
                        mine.push((i, f(i)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|x| x.0);
    out.into_iter().map(|x| x.1).collect()
}

/// Reads and resamples every clip of the corpus.
pub fn load(corpus: &Corpus) -> LoadedAudio {
    let results = par_map(corpus.clips.len(), |i| {
        load_audio(&corpus.clips[i].path)
            .map_err(|e| e.to_string())
            .and_then(|a| to_16k(&a).map_err(|e| format!("{}: {e}", corpus.clips[i].path.display())))
    });
    let mut failed = Vec::new();
    let audio = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.map_err(|e| failed.push((i, e))).ok())
        .collect();
    LoadedAudio { audio, failed }
}

/// Each clip alone through the call core (no model): the raw voice features of its
/// utterances. Empty for clips that failed to load or held no utterance.
pub fn clip_features(
    plan: &Arc<DspPlan>,
    audio: &[Option<Vec<f32>>],
    condition: Condition,
) -> Vec<Vec<VoiceVector>> {
    par_map(audio.len(), |i| match &audio[i] {
        Some(a) => run_as_call(
            plan.clone(),
            &[a.as_slice()],
            condition.line(i as u64),
            CallSettings::default(),
            |_| {},
        )
        .into_iter()
        .map(|u: ClipUtterance| u.ended.voice)
        .collect(),
        None => Vec::new(),
    })
}
