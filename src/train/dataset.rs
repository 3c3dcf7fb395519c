//! A labelled corpus turned into voice features, clip by clip, through the service's own
//! call core (shell side: reads the audio files, uses all cores).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::call::CallSettings;
use crate::core::dsp::DspPlan;
use crate::train::corpus::{load_audio, run_as_call, to_16k, ClipUtterance, Corpus};
use crate::train::degrade::LineConfig;

use crate::emotion::embed::Encoder;
use crate::emotion::features::VoiceVector;
use crate::emotion::voice::VoiceModel;
use crate::emotion::{CLASSES, N_CLASSES};
use crate::train::voice::{eval_calm_first_order, running_order, ClipData, Predictions, Scored};

/// The conditions a clip can be heard in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The recording as it is.
    Clean,
    /// Through the simulated phone line (8 kHz μ-law, band-limited, light noise).
    Telephony,
    /// Through a simulated other microphone and room ([`crate::train::degrade::recording`]).
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
                crate::train::degrade::recording(x, crate::train::degrade::RoomConfig { seed })
                    .into()
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

/// Reads and resamples every clip of the corpus.
pub fn load(corpus: &Corpus) -> LoadedAudio {
    let results: Vec<Result<Vec<f32>, String>> = corpus
        .clips
        .par_iter()
        .map(|clip| {
            load_audio(&clip.path)
                .map_err(|e| e.to_string())
                .and_then(|a| to_16k(&a).map_err(|e| format!("{}: {e}", clip.path.display())))
        })
        .collect();
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
/// With `crop` set, each clip is first cut to an excerpt of its speech
/// ([`crate::train::degrade::crop_speech`], seeded by `crop` and the clip's index). Clips
/// are numbered from `first` (the number seeds each clip's line noise and crop), so that a
/// corpus read a part at a time gives the features it gives read at once.
pub fn clip_features(
    plan: &Arc<DspPlan>,
    encoder: &Arc<Encoder>,
    audio: &[Option<Vec<f32>>],
    condition: Condition,
    crop: Option<u64>,
    first: usize,
) -> Vec<Vec<VoiceVector>> {
    audio
        .par_iter()
        .enumerate()
        .map(|(k, a)| (first + k, a))
        .map(|(i, a)| match a {
            Some(a) => run_as_call(
                plan.clone(),
                &[&condition.audio(&cropped(a, i, crop), i as u64)],
                condition.line(i as u64),
                CallSettings::default(),
                |core| core.set_voice_encoder(Some(encoder.clone())),
            )
            .into_iter()
            .map(|u: ClipUtterance| u.ended.voice)
            .collect(),
            None => Vec::new(),
        })
        .collect()
}

/// Clip `i`'s audio, or with `crop` set its excerpt for crop set `crop`.
fn cropped(a: &[f32], i: usize, crop: Option<u64>) -> std::borrow::Cow<'_, [f32]> {
    match crop {
        Some(k) => crate::train::degrade::crop_speech(
            a,
            (i as u64) ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )
        .into(),
        None => a.into(),
    }
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
            corpus: c.corpus.clone(),
            assumed_neutral: c.assumed_neutral,
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

/// The per-clip predictions of [`predict`], one set per protocol.
#[derive(Clone, Debug, Default)]
pub struct EvalPredictions {
    /// Each clip alone.
    pub cold: Predictions,
    /// Each speaker's clips as one call, shuffled.
    pub running: Predictions,
    /// Each speaker's clips as one call, neutral first (empty unless asked for).
    pub calm_first: Predictions,
    /// Readable clips without any utterance in the running protocol.
    pub no_utterance: usize,
    /// Every utterance of the cold and running protocols (not calm first), one by one.
    pub utterances: Vec<UtteranceScore>,
}

/// One utterance as [`predict`] scored it.
#[derive(Clone, Debug)]
pub struct UtteranceScore {
    /// The label of its clip.
    pub class: usize,
    /// The voice's probabilities.
    pub probs: [f32; N_CLASSES],
    /// Its unfamiliarity (0..1).
    pub unfamiliarity: f32,
    /// Utterances of its speaker scored before it in the same call (its speaker baseline's
    /// count; 0 for a clip's first utterance heard alone).
    pub baseline_n: u32,
}

/// Scores every clip of a corpus through the service's own path ([`run_as_call`] with
/// the model set on the call core): each clip alone (cold) and each speaker's clips as one
/// call in a shuffled order (running), and, when `calm_first` is set, as one call with the
/// neutral clips first (calm first; see [`crate::train::voice`]; left empty otherwise,
/// saving a third pass). A clip's probabilities are the mean of its utterances'
/// `UtteranceProsody.emotion`. [`evaluate`] turns them into `callmood eval`'s report.
pub fn predict(
    plan: &Arc<DspPlan>,
    corpus: &Corpus,
    loaded: &LoadedAudio,
    model: &Arc<VoiceModel>,
    condition: Condition,
    seed: u64,
    calm_first: bool,
) -> EvalPredictions {
    fn emotion_of(u: &ClipUtterance) -> Option<&crate::proto::Emotion> {
        u.ended.prosody.emotion.as_ref()
    }
    let probs_of = |e: &crate::proto::Emotion| -> [f32; N_CLASSES] {
        [e.neutral, e.happy, e.angry, e.sad, e.fearful]
    };
    let mean_by_clip = |utts: &[ClipUtterance], n: usize| {
        let mut sums = vec![([0.0f32; N_CLASSES], 0u32); n];
        for u in utts {
            if let Some(p) = emotion_of(u).map(probs_of) {
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
    // Each scored utterance of a call of `clips` (indices into the corpus), one by one.
    // Every call here has one speaker, and every scored utterance fills the speaker
    // baseline, so an utterance's count is the scored utterances before it.
    let each = |utts: &[ClipUtterance], clips: &[usize]| -> Vec<UtteranceScore> {
        utts.iter()
            .filter_map(|u| emotion_of(u).map(|e| (u, e)))
            .zip(0u32..)
            .map(|((u, e), n)| UtteranceScore {
                class: corpus.clips[clips[u.clip]].class,
                probs: probs_of(e),
                unfamiliarity: e.unfamiliarity,
                baseline_n: n,
            })
            .collect()
    };

    // Cold: every clip alone.
    let (cold, mut utterances): (Vec<Option<Vec<f32>>>, Vec<Vec<UtteranceScore>>) =
        (0..corpus.clips.len())
            .into_par_iter()
            .map(|i| {
                let Some(a) = loaded.audio[i].as_ref() else {
                    return (None, Vec::new());
                };
                let utts = run_as_call(
                    plan.clone(),
                    &[&condition.audio(a, i as u64)],
                    condition.line(i as u64),
                    CallSettings::default(),
                    with_model,
                );
                (mean_by_clip(&utts, 1).pop().flatten(), each(&utts, &[i]))
            })
            .unzip();

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
        groups
            .par_iter()
            .enumerate()
            .map(|(g, (speaker, idx))| {
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
                let scores = each(&utts, &clips);
                let means = clips
                    .into_iter()
                    .zip(mean_by_clip(&utts, audio.len()))
                    .collect::<Vec<_>>();
                (means, scores)
            })
            .collect::<Vec<_>>()
    };
    let (running_groups, running_scores): (Vec<_>, Vec<_>) =
        as_calls(&|speaker, idx| running_order(idx.len(), seed, speaker))
            .into_iter()
            .unzip();
    utterances.extend(running_scores);
    let calm_groups: Vec<_> = if calm_first {
        as_calls(&|speaker, idx| {
            let classes: Vec<usize> = idx.iter().map(|&i| corpus.clips[i].class).collect();
            eval_calm_first_order(&classes, seed, speaker)
        })
        .into_iter()
        .map(|(means, _)| means)
        .collect()
    } else {
        Vec::new()
    };

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
    EvalPredictions {
        cold: p_cold,
        running: p_run,
        calm_first: p_calm,
        no_utterance,
        utterances: utterances.into_iter().flatten().collect(),
    }
}

/// `callmood eval`'s report of the predictions of [`predict`] (run with `calm_first`).
pub fn evaluate(
    corpus: &Corpus,
    loaded: &LoadedAudio,
    condition: Condition,
    p: EvalPredictions,
) -> EvalReport {
    let no_utterance = p.no_utterance;
    let (cold, running, calm_first) = (p.cold.score(), p.running.score(), p.calm_first.score());
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
    if let Some(c) = &s.calm_false_angry {
        writeln!(
            out,
            "  calm clips read as angry: {} of {} ({:.1} %), angry >= 0.5 {:.1} %, fearful {:.1} %",
            c.angry,
            c.n,
            100.0 * c.angry_share,
            100.0 * c.angry_over_half_share,
            100.0 * c.fearful_share
        )?;
    }
    if let Some(d) = &s.dimensions {
        writeln!(
            out,
            "  within-speaker Spearman: arousal {:.3}, valence {:.3} ({} speakers)",
            d.arousal_spearman, d.valence_spearman, d.speakers
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

/// Leading columns of a feature dump, before the voice features by name.
const DUMP_COLUMNS: [&str; 7] = [
    "condition",
    "file",
    "speaker",
    "gender",
    "class",
    "utterance",
    "encoder",
];

/// The header of a feature dump: [`DUMP_COLUMNS`], then this build's voice features by name.
fn dump_header() -> impl Iterator<Item = &'static str> {
    DUMP_COLUMNS.into_iter().chain(
        crate::emotion::features::voice_feature_names()
            .iter()
            .map(String::as_str),
    )
}

/// The manifest's `file` of a clip: its path relative to the corpus directory.
fn manifest_file(dir: &Path, clip: &crate::train::corpus::Clip) -> String {
    clip.path
        .strip_prefix(dir)
        .unwrap_or(&clip.path)
        .to_string_lossy()
        .into_owned()
}

/// Writes every utterance's raw voice features as CSV, one row per utterance: condition,
/// the manifest's `file`, speaker, gender, class index, utterance index within the clip,
/// the encoder's fingerprint, then the features by name (`NaN` where undefined).
/// [`read_feature_dump`] reads it back.
pub fn write_feature_dump(
    w: impl std::io::Write,
    dir: &Path,
    corpus: &Corpus,
    encoder: &str,
    sets: &[(Condition, &[ClipData])],
) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(w);
    w.write_record(dump_header())?;
    for (cond, set) in sets {
        for (clip, d) in corpus.clips.iter().zip(set.iter()) {
            let file = manifest_file(dir, clip);
            for (k, v) in d.utterances.iter().enumerate() {
                let head = [
                    cond.name().to_string(),
                    file.clone(),
                    d.speaker.clone(),
                    d.gender.clone(),
                    d.class.to_string(),
                    k.to_string(),
                    encoder.to_string(),
                ];
                w.write_record(head.into_iter().chain(v.iter().map(|x| x.to_string())))?;
            }
        }
    }
    w.flush()?;
    Ok(())
}

/// Why a feature dump cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct DumpError {
    /// The dump.
    pub path: String,
    /// What is wrong, with the line where there is one.
    pub reason: String,
}

/// A feature dump read back for training: the clips of each condition asked for, in corpus
/// order (clips with no row have no utterances, as when extracted), and the number of rows
/// left out because their file is not in this corpus's manifest (a dump of a larger corpus
/// serves a subset of it).
pub struct FeatureDump {
    /// One set per condition asked for.
    pub sets: Vec<Vec<ClipData>>,
    /// Rows whose file the manifest does not list.
    pub rows_not_in_corpus: usize,
}

/// Reads a dump [`write_feature_dump`] wrote. Refused, with the line named, when its
/// columns are not this build's voice features, when it was made with other encoder
/// weights than `encoder` (a fingerprint), when a row's speaker, gender or class disagrees
/// with the manifest, when a feature does not parse, or when it holds no row of a condition
/// asked for.
pub fn read_feature_dump(
    path: &Path,
    dir: &Path,
    corpus: &Corpus,
    encoder: &str,
    conditions: &[Condition],
) -> Result<FeatureDump, DumpError> {
    let fail = |reason: String| DumpError {
        path: path.display().to_string(),
        reason,
    };
    let mut rdr = csv::Reader::from_path(path).map_err(|e| fail(e.to_string()))?;
    let headers = rdr.headers().map_err(|e| fail(e.to_string()))?.clone();
    let names = crate::emotion::features::voice_feature_names();
    let expected: Vec<&str> = dump_header().collect();
    if let Some(i) =
        (0..expected.len().max(headers.len())).find(|&i| headers.get(i) != expected.get(i).copied())
    {
        return Err(fail(format!(
            "column {} is `{}`, this build expects `{}` (a dump of another version or encoder \
             size: dump the features again)",
            i + 1,
            headers.get(i).unwrap_or("(none)"),
            expected.get(i).unwrap_or(&"(none)")
        )));
    }
    let by_file: std::collections::HashMap<String, usize> = corpus
        .clips
        .iter()
        .enumerate()
        .map(|(i, c)| (manifest_file(dir, c), i))
        .collect();
    let mut sets: Vec<Vec<ClipData>> = conditions
        .iter()
        .map(|_| clip_data(corpus, vec![Vec::new(); corpus.clips.len()]))
        .collect();
    let mut seen = vec![false; conditions.len()];
    let mut rows_not_in_corpus = 0;
    for rec in rdr.records() {
        let rec = rec.map_err(|e| fail(e.to_string()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let at = |reason: String| fail(format!("line {line}: {reason}"));
        let Some(ci) = conditions.iter().position(|c| c.name() == &rec[0]) else {
            continue;
        };
        if &rec[6] != encoder {
            return Err(at(format!(
                "made with encoder weights {}, training uses {encoder} (dump the features \
                 again with this --encoder)",
                &rec[6]
            )));
        }
        let Some(&clip) = by_file.get(&rec[1]) else {
            rows_not_in_corpus += 1;
            continue;
        };
        let c = &corpus.clips[clip];
        if rec[2] != c.speaker || rec[3] != c.gender || rec[4] != c.class.to_string() {
            return Err(at(format!(
                "`{}` is speaker {}, gender {}, class {} in the dump but {}, {}, {} in the \
                 manifest",
                &rec[1], &rec[2], &rec[3], &rec[4], c.speaker, c.gender, c.class
            )));
        }
        let mut v: VoiceVector = [0.0; crate::emotion::features::N_VOICE];
        for (j, (x, s)) in v
            .iter_mut()
            .zip(rec.iter().skip(DUMP_COLUMNS.len()))
            .enumerate()
        {
            *x = s
                .parse()
                .map_err(|_| at(format!("`{}` is not a number: `{s}`", names[j])))?;
        }
        sets[ci][clip].utterances.push(v);
        seen[ci] = true;
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(fail(format!(
            "no row of condition `{}` for a file of this corpus",
            conditions[i].name()
        )));
    }
    Ok(FeatureDump {
        sets,
        rows_not_in_corpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emotion::features::N_VOICE;

    fn corpus(dir: &Path) -> Corpus {
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::write(
            dir.join("manifest.csv"),
            "file,speaker,gender,emotion\na/x,1.wav,s1,F,angry\nb.wav,s2,M,sad\n"
                .replace("a/x,1.wav", "\"a/x,1.wav\""),
        )
        .unwrap();
        crate::train::corpus::read_manifest(dir).unwrap()
    }

    fn vector(seed: f32) -> VoiceVector {
        let mut v = [0.0f32; N_VOICE];
        for (i, x) in v.iter_mut().enumerate() {
            *x = seed / (i as f32 + 3.0);
        }
        v[1] = f32::NAN;
        v
    }

    fn dump(dir: &Path, c: &Corpus, encoder: &str) -> Vec<u8> {
        let mut clean = clip_data(c, vec![vec![vector(1.0), vector(-2.5)], vec![]]);
        clean[1].utterances.push(vector(1e-7));
        let tel = clip_data(c, vec![vec![vector(0.3)], vec![]]);
        let mut out = Vec::new();
        write_feature_dump(
            &mut out,
            dir,
            c,
            encoder,
            &[(Condition::Clean, &clean), (Condition::Telephony, &tel)],
        )
        .unwrap();
        out
    }

    fn same(a: &VoiceVector, b: &VoiceVector) -> bool {
        a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn feature_dump_reads_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let c = corpus(dir.path());
        let path = dir.path().join("dump.csv");
        std::fs::write(&path, dump(dir.path(), &c, "fnv1a64:1")).unwrap();
        let conds = [Condition::Clean, Condition::Telephony];
        let d = read_feature_dump(&path, dir.path(), &c, "fnv1a64:1", &conds).unwrap();
        assert_eq!(d.rows_not_in_corpus, 0);
        let clean = &d.sets[0];
        assert_eq!(clean[0].utterances.len(), 2);
        assert!(same(&clean[0].utterances[0], &vector(1.0)));
        assert!(same(&clean[0].utterances[1], &vector(-2.5)));
        assert!(same(&clean[1].utterances[0], &vector(1e-7)));
        assert_eq!(
            (clean[1].speaker.as_str(), clean[1].class),
            ("s2", c.clips[1].class)
        );
        let tel = &d.sets[1];
        assert!(same(&tel[0].utterances[0], &vector(0.3)));
        assert!(
            tel[1].utterances.is_empty(),
            "a clip with no row has no utterances"
        );

        // A corpus holding only the second clip: the other clip's rows are counted, not used.
        let sub = tempfile::tempdir().unwrap();
        std::fs::write(
            sub.path().join("manifest.csv"),
            "file,speaker,gender,emotion\nb.wav,s2,M,sad\n",
        )
        .unwrap();
        let c2 = crate::train::corpus::read_manifest(sub.path()).unwrap();
        let d = read_feature_dump(&path, sub.path(), &c2, "fnv1a64:1", &conds[..1]).unwrap();
        assert_eq!(d.rows_not_in_corpus, 2);
        assert_eq!(d.sets[0].len(), 1);
        assert!(same(&d.sets[0][0].utterances[0], &vector(1e-7)));
    }

    #[test]
    fn feature_dump_refuses_what_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let c = corpus(dir.path());
        let path = dir.path().join("dump.csv");
        let text = String::from_utf8(dump(dir.path(), &c, "fnv1a64:1")).unwrap();
        let conds = [Condition::Clean, Condition::Telephony];
        let err = |text: &str, encoder: &str, conds: &[Condition]| {
            std::fs::write(&path, text).unwrap();
            match read_feature_dump(&path, dir.path(), &c, encoder, conds) {
                Ok(_) => panic!("accepted"),
                Err(e) => e.to_string(),
            }
        };
        let e = err(&text, "fnv1a64:2", &conds);
        assert!(e.contains("line 2") && e.contains("fnv1a64:1"), "{e}");
        let e = err(&text.replacen(",s1,F,", ",s1,M,", 1), "fnv1a64:1", &conds);
        assert!(e.contains("line 2") && e.contains("gender M"), "{e}");
        let e = err(&text.replacen(",encoder,", ",enc,", 1), "fnv1a64:1", &conds);
        assert!(e.contains("column 7 is `enc`"), "{e}");
        let e = err(&text.replacen(",NaN,", ",loud,", 1), "fnv1a64:1", &conds);
        assert!(
            e.contains("line 2") && e.contains("not a number: `loud`"),
            "{e}"
        );
        let e = err(&text, "fnv1a64:1", &[Condition::Room]);
        assert!(e.contains("no row of condition `room`"), "{e}");
    }
}
