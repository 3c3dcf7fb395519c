//! A labelled corpus turned into voice features, clip by clip, through the service's own
//! call core (shell side: reads the audio files, uses all cores).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::call::CallSettings;
use crate::corpus::{load_audio, run_as_call, to_16k, ClipUtterance, Corpus};
use crate::degrade::LineConfig;
use crate::dsp::DspPlan;

use super::embed::Encoder;
use super::features::VoiceVector;
use super::train::{eval_calm_first_order, running_order, ClipData, Predictions, Scored};
use super::voice::VoiceModel;
use super::{CLASSES, N_CLASSES};

/// The conditions a clip can be heard in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The recording as it is.
    Clean,
    /// Through the simulated phone line (8 kHz μ-law, band-limited, light noise).
    Telephony,
    /// Through a simulated other microphone and room ([`crate::degrade::recording`]).
    Room,
}

impl Condition {
    /// Name used in reports and model files.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Clean => "clean",
            Condition::Telephony => "telephony",
            Condition::Room => "room",
        }
    }

    /// The clip's 16 kHz audio as this condition hears it before the call (the phone line
    /// is applied by [`Condition::line`] inside the call instead).
    pub fn audio(self, x: &[f32], seed: u64) -> std::borrow::Cow<'_, [f32]> {
        match self {
            Condition::Room => {
                crate::degrade::recording(x, crate::degrade::RoomConfig { seed }).into()
            }
            _ => x.into(),
        }
    }

    /// The line simulation for a clip (seeded by the clip's index, so reproducible).
    pub fn line(self, seed: u64) -> Option<LineConfig> {
        match self {
            Condition::Clean => None,
            Condition::Telephony => Some(LineConfig { seed }),
            Condition::Room => None,
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
            .and_then(|a| {
                to_16k(&a).map_err(|e| format!("{}: {e}", corpus.clips[i].path.display()))
            })
    });
    let mut failed = Vec::new();
    let audio = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.map_err(|e| failed.push((i, e))).ok())
        .collect();
    LoadedAudio { audio, failed }
}

/// Each clip alone through the call core (no model, `encoder` set): the raw voice
/// features of its utterances. Empty for clips that failed to load or held no utterance.
pub fn clip_features(
    plan: &Arc<DspPlan>,
    encoder: &Arc<Encoder>,
    audio: &[Option<Vec<f32>>],
    condition: Condition,
) -> Vec<Vec<VoiceVector>> {
    par_map(audio.len(), |i| match &audio[i] {
        Some(a) => run_as_call(
            plan.clone(),
            &[&condition.audio(a, i as u64)],
            condition.line(i as u64),
            CallSettings::default(),
            |core| core.set_voice_encoder(Some(encoder.clone())),
        )
        .into_iter()
        .map(|u: ClipUtterance| u.ended.voice)
        .collect(),
        None => Vec::new(),
    })
}

/// Pairs each clip's features with its labels; clips without utterances are kept (with
/// none) so that indices still match the corpus.
pub fn clip_data(corpus: &Corpus, features: Vec<Vec<VoiceVector>>) -> Vec<ClipData> {
    corpus
        .clips
        .iter()
        .zip(features)
        .map(|(c, utterances)| ClipData {
            speaker: c.speaker.clone(),
            gender: c.gender.clone(),
            class: c.class,
            utterances,
        })
        .collect()
}

/// What `callmood eval` prints (as JSON with `--format json`).
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Condition the clips were heard in (`clean` or `telephony`).
    pub condition: String,
    /// UAR of the running-baseline protocol (the headline figure).
    pub uar: f32,
    /// UAR with each clip alone (cold start).
    pub uar_cold: f32,
    /// Same as `uar`.
    pub uar_running: f32,
    /// UAR with each speaker's neutral clips fed first, then the rest (calm-first protocol).
    pub uar_calm_first: f32,
    /// Highest minus lowest UAR per gender, running protocol (`running.interval` says how
    /// far it could move with other speakers).
    pub gender_gap: f32,
    /// Recall per class, running protocol.
    pub per_class: BTreeMap<String, f32>,
    /// UAR per gender, running protocol.
    pub per_gender: BTreeMap<String, f32>,
    /// Confusion matrix `[true][predicted]`, running protocol, classes in `classes` order.
    pub confusion: Vec<Vec<u32>>,
    /// Class order of `confusion`.
    pub classes: Vec<String>,
    /// Expected calibration error, running protocol.
    pub ece: f32,
    /// Clips scored (running protocol).
    pub n_scored: usize,
    /// Clips not scored: unreadable audio, no utterance found, or a label outside the five
    /// classes.
    pub n_skipped: usize,
    /// Why clips were skipped.
    pub skipped: BTreeMap<String, usize>,
    /// Full figures of the cold protocol.
    pub cold: Scored,
    /// Full figures of the running protocol.
    pub running: Scored,
    /// Full figures of the calm-first protocol.
    pub calm_first: Scored,
}

/// Scores every clip of a corpus through the service's own path ([`run_as_call`] with
/// the model set on the call core): each clip alone (cold) and each speaker's clips as one
/// call in a shuffled order (running), and as one call with the neutral clips first
/// (calm first; see [`super::train`]). A clip's probabilities are the mean of its
/// utterances' `UtteranceProsody.emotion`.
pub fn evaluate(
    plan: &Arc<DspPlan>,
    corpus: &Corpus,
    loaded: &LoadedAudio,
    model: &Arc<VoiceModel>,
    condition: Condition,
    seed: u64,
) -> EvalReport {
    let probs_of = |u: &ClipUtterance| -> Option<[f32; N_CLASSES]> {
        let e = u.ended.prosody.emotion.as_ref()?;
        Some([e.neutral, e.happy, e.angry, e.sad, e.fearful])
    };
    let mean_by_clip = |utts: &[ClipUtterance], n: usize| {
        let mut sums = vec![([0.0f32; N_CLASSES], 0u32); n];
        for u in utts {
            if let Some(p) = probs_of(u) {
                let s = &mut sums[u.clip];
                s.0.iter_mut().zip(p).for_each(|(a, b)| *a += b);
                s.1 += 1;
            }
        }
        sums.into_iter()
            .map(|(s, k)| (k > 0).then(|| s.iter().map(|v| v / k as f32).collect::<Vec<f32>>()))
            .collect::<Vec<_>>()
    };
    let with_model = |core: &mut crate::call::CallCore| core.set_voice_model(Some(model.clone()));

    // Cold: every clip alone.
    let cold: Vec<Option<Vec<f32>>> = par_map(corpus.clips.len(), |i| {
        let a = loaded.audio[i].as_ref()?;
        let utts = run_as_call(
            plan.clone(),
            &[&condition.audio(a, i as u64)],
            condition.line(i as u64),
            CallSettings::default(),
            with_model,
        );
        mean_by_clip(&utts, 1).pop().flatten()
    });

    // Running: each speaker's readable clips, shuffled, as one call.
    let mut speakers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in corpus.clips.iter().enumerate() {
        if loaded.audio[i].is_some() {
            speakers.entry(c.speaker.as_str()).or_default().push(i);
        }
    }
    let groups: Vec<(&str, Vec<usize>)> = speakers.into_iter().collect();
    // One call per speaker in `order_of(speaker, clips)`'s order.
    let as_calls = |order_of: &(dyn Fn(&str, &[usize]) -> Vec<usize> + Sync)| {
        par_map(groups.len(), |g| {
            let (speaker, idx) = &groups[g];
            let order = order_of(speaker, idx);
            let clips: Vec<usize> = order.iter().map(|&k| idx[k]).collect();
            // Each clip in the same simulated room as in its cold run.
            let heard: Vec<std::borrow::Cow<'_, [f32]>> = clips
                .iter()
                .filter_map(|&i| Some(condition.audio(loaded.audio[i].as_deref()?, i as u64)))
                .collect();
            let audio: Vec<&[f32]> = heard.iter().map(|a| a.as_ref()).collect();
            let line = condition.line(seed ^ g as u64);
            let utts = run_as_call(
                plan.clone(),
                &audio,
                line,
                CallSettings::default(),
                with_model,
            );
            clips
                .into_iter()
                .zip(mean_by_clip(&utts, audio.len()))
                .collect::<Vec<_>>()
        })
    };
    let running_groups = as_calls(&|speaker, idx| running_order(idx.len(), seed, speaker));
    let calm_groups = as_calls(&|speaker, idx| {
        let classes: Vec<usize> = idx.iter().map(|&i| corpus.clips[i].class).collect();
        eval_calm_first_order(&classes, seed, speaker)
    });

    // The predictions of `(clip, probabilities)` pairs, and how many clips had none.
    let collect = |pairs: Vec<(usize, Option<Vec<f32>>)>| {
        let (mut preds, mut missing) = (Predictions::default(), 0);
        for (i, p) in pairs {
            let c = &corpus.clips[i];
            match p {
                Some(p) => preds.push(c.class, p, &c.gender, &c.speaker),
                None => missing += 1,
            }
        }
        (preds, missing)
    };
    let (p_cold, _) = collect(cold.into_iter().enumerate().collect());
    let (p_run, no_utterance) = collect(running_groups.into_iter().flatten().collect());
    let (p_calm, _) = collect(calm_groups.into_iter().flatten().collect());
    let (cold, running, calm_first) = (p_cold.score(), p_run.score(), p_calm.score());
    let mut skipped = BTreeMap::new();
    skipped.insert("unreadable".to_string(), loaded.failed.len());
    skipped.insert("no_utterance".to_string(), no_utterance);
    skipped.insert("excluded_label".to_string(), corpus.excluded);
    skipped.insert(
        "unknown_label".to_string(),
        corpus.unknown_labels.values().sum(),
    );
    EvalReport {
        condition: condition.name().into(),
        uar: running.uar,
        uar_cold: cold.uar,
        uar_running: running.uar,
        uar_calm_first: calm_first.uar,
        gender_gap: running.gender_gap,
        per_class: running.per_class.clone(),
        per_gender: running.per_gender.clone(),
        confusion: running.confusion.clone(),
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        ece: running.ece,
        n_scored: running.n,
        n_skipped: skipped.values().sum(),
        skipped,
        cold,
        running,
        calm_first,
    }
}

/// Writes a [`Scored`] as a few lines of text: UAR, per class, per gender (with the gap and
/// the speaker-bootstrap interval), per speaker, confusion.
pub fn write_scored(out: &mut impl std::io::Write, s: &Scored) -> std::io::Result<()> {
    // `name value, name value, ...` with `decimals` decimals.
    let listed = |m: &BTreeMap<String, f32>, decimals: usize| {
        m.iter()
            .map(|(k, v)| format!("{k} {v:.decimals$}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(
        out,
        "  UAR {:.3}  ECE {:.3} (mean confidence {:.3}, accuracy {:.3})  clips {}",
        s.uar, s.ece, s.confidence, s.accuracy, s.n
    )?;
    writeln!(out, "  recall: {}", listed(&s.per_class, 2))?;
    writeln!(
        out,
        "  UAR by gender: {}  (gap {:.1} points)",
        listed(&s.per_gender, 3),
        100.0 * s.gender_gap
    )?;
    if let Some(i) = &s.interval {
        writeln!(
            out,
            "  95% over speakers ({} resampled by gender): UAR [{:.3}, {:.3}], \
             gender gap [{:.1}, {:.1}] points",
            i.speakers,
            i.uar[0],
            i.uar[1],
            100.0 * i.gender_gap[0],
            100.0 * i.gender_gap[1]
        )?;
    }
    writeln!(out, "  UAR by speaker: {}", listed(&s.per_speaker, 2))?;
    write!(
        out,
        "  confusion (rows true, columns predicted):\n  {:>8}",
        ""
    )?;
    for c in CLASSES {
        write!(out, " {c:>8}")?;
    }
    writeln!(out)?;
    for (c, row) in CLASSES.iter().zip(&s.confusion) {
        write!(out, "  {c:>8}")?;
        for v in row {
            write!(out, " {v:>8}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}
