//! `callmood train` and `eval`: the voice emotion model on a labelled corpus.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use super::args::ReportFormat;
use crate::core::dsp::DspPlan;
use crate::emotion::voice::DEFAULT_VOICE_MODEL;
use crate::train::voice::TrainConfig;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Corpus directory with manifest.csv (file,speaker,gender,emotion; WAV or FLAC).
    /// Repeat to train on several; their speakers are then named `DIR-NAME/speaker`.
    #[arg(long, required = true)]
    pub corpus: Vec<PathBuf>,
    /// Corpus of unlabelled calm speech (manifest.csv with file,speaker,gender) whose every
    /// clip is taken as neutral; repeatable. Its clips hold --neutral-share of the neutral
    /// class's weight, and the cross-validation scores its held-out speakers too (their
    /// `calm_false_angry` is the share of ordinary calm speech read as angry).
    #[arg(long)]
    pub neutral_corpus: Vec<PathBuf>,
    /// Share of the neutral class's weight that the --neutral-corpus clips hold, 0..1.
    #[arg(long, default_value_t = TrainConfig::default().neutral_share)]
    pub neutral_share: f32,
    /// How the classifier weighs the clips: each clip the same, or each speaker the same
    /// (so that a corpus of two voices with many clips each does not dominate).
    #[arg(long, value_enum, default_value_t = TrainConfig::default().weighting)]
    pub weighting: crate::train::voice::Weighting,
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

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// Voice model to calibrate; it must carry the training's neutral statistics (every
    /// model this version of `callmood train` writes does, the shipped one included).
    #[arg(long, env = "CALLMOOD_EMOTION_MODEL", default_value = DEFAULT_VOICE_MODEL)]
    pub model: PathBuf,
    /// Calm speech of the line: a directory with manifest.csv (file,speaker,gender; WAV or
    /// FLAC), every clip taken as calm, whatever else the manifest says. Repeatable. Use
    /// calls or turns you know to be calm, from many speakers.
    #[arg(long, required_unless_present = "calm_calls")]
    pub calm: Vec<PathBuf>,
    /// Calm recorded calls of the line: a recording (WAV, FLAC, MP3, Ogg Vorbis or Opus,
    /// one channel per party, as `analyze` reads calls) or a directory of them (its files
    /// with those extensions, not its subdirectories). Each channel of each file counts as
    /// one speaker. Repeatable; with or without --calm.
    #[arg(long)]
    pub calm_calls: Vec<PathBuf>,
    /// The training's neutral speech the line is mapped onto: `telephony` (a phone line)
    /// or `clean` (wideband audio).
    #[arg(long, default_value = "telephony")]
    pub onto: String,
    /// Hear the calm clips through the simulated phone line first (wideband recordings of
    /// voices that will reach the service over a phone line); without it they are heard
    /// as recorded, which is right for recordings of the line itself.
    #[arg(long)]
    pub telephony: bool,
    /// Fewest utterances to calibrate from; fewer is refused.
    #[arg(long, default_value_t = 100)]
    pub min_utterances: usize,
    /// Calibrated model file to write (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct CalibrateConfidenceArgs {
    /// Voice model to fit; any `unfamiliar_temperature` it has is replaced.
    #[arg(long, env = "CALLMOOD_EMOTION_MODEL", default_value = DEFAULT_VOICE_MODEL)]
    pub model: PathBuf,
    /// Labelled corpus the model was not trained on (manifest.csv with
    /// file,speaker,gender,emotion): its clips are scored each alone and each speaker's as
    /// one call, clean and through the simulated phone line. Repeatable.
    #[arg(long, required = true)]
    pub corpus: Vec<PathBuf>,
    /// Unfamiliarity below which the temperature stays as trained (0..1).
    #[arg(long, default_value_t = 0.25)]
    pub floor: f32,
    /// Seed of the running protocol's clip order (and of the line noise).
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Model file to write (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

/// Values of `a` that `calibrate-confidence` tries (the grid of the prototype round).
const CONFIDENCE_GRID: [f32; 11] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0];
/// Values of the cold-start term it tries with each (the third round's grid).
const COLD_GRID: [f32; 9] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0];

pub(super) fn calibrate_confidence(a: CalibrateConfidenceArgs) -> anyhow::Result<()> {
    use crate::emotion::voice::{UnfamiliarTemperature, VoiceModel};
    use crate::train::dataset::{self, Condition};
    if !(0.0..1.0).contains(&a.floor) {
        bail!("--floor {}: must be within 0..1", a.floor);
    }
    let mut model = VoiceModel::load(&a.model)?;
    model.unfamiliar_temperature = None;
    let scoring = Arc::new(model.clone());
    let plan = DspPlan::new();
    let mut scores = Vec::new();
    for dir in &a.corpus {
        let (corpus, loaded) = read_corpus(dir)?;
        for condition in [Condition::Clean, Condition::Telephony] {
            let p = dataset::predict(&plan, &corpus, &loaded, &scoring, condition, a.seed, false);
            eprintln!(
                "callmood: {} {}: {} utterances",
                dir.display(),
                condition.name(),
                p.utterances.len()
            );
            scores.extend(p.utterances);
        }
    }
    if scores.len() < 100 {
        bail!(
            "{} utterances scored: too few to fit on (at least 100)",
            scores.len()
        );
    }
    // Mean negative log-likelihood with the temperature scaled at each utterance: the
    // probabilities carry the trained temperature, so ln p is the logits over T (less a
    // constant), and dividing it by the scale is dividing the logits by T · scale.
    let y: Vec<usize> = scores.iter().map(|s| s.class).collect();
    let nll = |t: &UnfamiliarTemperature| {
        let logits: Vec<Vec<f32>> = scores
            .iter()
            .map(|s| {
                let scale = t.scale(s.unfamiliarity, model.population_share(s.baseline_n));
                s.probs.iter().map(|p| p.max(1e-12).ln() / scale).collect()
            })
            .collect();
        crate::emotion::metrics::nll(&logits, &y, 1.0)
    };
    let fitted_on = format!(
        "{} (clean and telephony, each clip alone and each speaker as one call; {} utterances)",
        a.corpus
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        scores.len()
    );
    let mut best: Option<(f32, UnfamiliarTemperature)> = None;
    for value in CONFIDENCE_GRID {
        for cold in COLD_GRID {
            let t = UnfamiliarTemperature {
                a: value,
                cold,
                floor: a.floor,
                fitted_on: fitted_on.clone(),
            };
            let v = nll(&t);
            if cold == 0.0 {
                eprintln!("callmood: a {value}: NLL {v:.4}");
            }
            if best.as_ref().is_none_or(|(b, _)| v < *b) {
                best = Some((v, t));
            }
        }
    }
    let (v, t) = best.expect("the grid is not empty");
    eprintln!(
        "callmood: a {}, cold {} (floor {}), NLL {v:.4}",
        t.a, t.cold, t.floor
    );
    model.unfamiliar_temperature = (t.a > 0.0 || t.cold > 0.0).then_some(t);
    write_derived_model(model, &a.model, &a.out, "fitted")
}

/// Writes a model derived from the one read at `from` to `out`: its encoder reference made
/// relative to `out`'s folder, checked first (`what`: how it was derived, for the error).
fn write_derived_model(
    mut model: crate::emotion::voice::VoiceModel,
    from: &Path,
    out: &Path,
    what: &str,
) -> anyhow::Result<()> {
    model.encoder.file = encoder_reference(&model.encoder_file(from), out)?;
    model
        .validate()
        .map_err(|e| anyhow::anyhow!("{what} model invalid: {e}"))?;
    std::fs::write(out, serde_json::to_string_pretty(&model)? + "\n")
        .with_context(|| format!("--out {}", out.display()))?;
    eprintln!("callmood: wrote {}", out.display());
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

/// The name a corpus goes by when several are merged: its directory's name.
pub(super) fn corpus_name(dir: &Path) -> String {
    std::path::absolute(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}

/// Reads every `--corpus` and `--neutral-corpus`: one corpus read alone keeps its speaker
/// ids; several are merged, each speaker named `DIR-NAME/speaker`.
pub(super) fn read_training_labels(
    corpora: &[PathBuf],
    neutral: &[PathBuf],
) -> anyhow::Result<crate::train::corpus::Corpus> {
    use crate::train::corpus;
    if corpora.len() == 1 && neutral.is_empty() {
        return read_labels(&corpora[0]);
    }
    let mut parts: Vec<(String, corpus::Corpus)> = Vec::new();
    let dirs = corpora.iter().map(|d| (d, false));
    for (dir, calm) in dirs.chain(neutral.iter().map(|d| (d, true))) {
        let name = corpus_name(dir);
        if parts.iter().any(|(n, _)| *n == name) {
            bail!(
                "{}: two corpora named `{name}`: corpus directories must have different names",
                dir.display()
            );
        }
        let c = if calm {
            let c = corpus::read_neutral_manifest(dir)?;
            if c.clips.is_empty() {
                bail!("{}: no clip in the manifest", dir.display());
            }
            c
        } else {
            read_labels(dir)?
        };
        eprintln!(
            "callmood: {}: {} clips{}",
            dir.display(),
            c.clips.len(),
            if calm { ", taken as neutral" } else { "" }
        );
        parts.push((name, c));
    }
    Ok(corpus::merge(parts))
}

/// Reads a corpus and its audio and says on stderr what was left out and why.
fn read_corpus(
    dir: &Path,
) -> anyhow::Result<(
    crate::train::corpus::Corpus,
    crate::train::dataset::LoadedAudio,
)> {
    let corpus = read_labels(dir)?;
    let loaded = load_audio(&corpus);
    Ok((corpus, loaded))
}

/// Loads a corpus's audio and says on stderr which clips could not be read.
pub(super) fn load_audio(
    corpus: &crate::train::corpus::Corpus,
) -> crate::train::dataset::LoadedAudio {
    let loaded = crate::train::dataset::load(corpus);
    for (i, e) in &loaded.failed {
        eprintln!("callmood: skipped {}: {e}", corpus.clips[*i].path.display());
    }
    loaded
}

pub(super) fn train(a: TrainArgs) -> anyhow::Result<()> {
    use crate::train::dataset::{self, Condition};
    use crate::train::voice::{cross_validate, fit_voice, leave_one_corpus_out, ClipData};
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
        weighting: a.weighting,
        neutral_share: a.neutral_share,
    };
    if !(0.0..1.0).contains(&cfg.neutral_share) {
        bail!(
            "--neutral-share must be at least 0 and below 1, got {}",
            cfg.neutral_share
        );
    }
    let single = a.corpus.len() == 1 && a.neutral_corpus.is_empty();
    if !single && (a.features.is_some() || a.dump_features.is_some()) {
        bail!(
            "--features and --dump-features take one --corpus and no --neutral-corpus: dump \
             each corpus on its own"
        );
    }
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
            let corpus = read_labels(&a.corpus[0])?;
            let dump = dataset::read_feature_dump(
                path,
                &a.corpus[0],
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
            let corpus = read_training_labels(&a.corpus, &a.neutral_corpus)?;
            let loaded = load_audio(&corpus);
            let data: Vec<Vec<ClipData>> = conditions
                .iter()
                .map(|&c| {
                    eprintln!("callmood: extracting voice features ({})", c.name());
                    let features =
                        dataset::clip_features(&plan, &encoder, &loaded.audio, c, None, 0);
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
            &a.corpus[0],
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
                let f =
                    dataset::clip_features(&plan, &encoder, &loaded.audio, c, Some(k as u64), 0);
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
    let mut cv = cross_validate(&sets, &names, &train_only, &cfg);
    cv.leave_one_corpus_out = leave_one_corpus_out(&sets, &names, &cfg, cv.temperature);
    let mut out = std::io::stdout().lock();
    for (cond, protocols) in &cv.results {
        for (protocol, s) in protocols {
            writeln!(out, "{cond}, {protocol} baseline:")?;
            dataset::write_scored(&mut out, s)?;
        }
    }
    for (cond, corpora) in &cv.by_corpus {
        for (corpus, protocols) in corpora {
            for (protocol, s) in protocols {
                writeln!(out, "{cond}, {protocol} baseline, {corpus} only:")?;
                dataset::write_scored(&mut out, s)?;
            }
        }
    }
    for (corpus, conds) in &cv.leave_one_corpus_out {
        for (cond, protocols) in conds {
            for (protocol, s) in protocols {
                writeln!(
                    out,
                    "{corpus} left out (trained on the others), {cond}, {protocol} baseline:"
                )?;
                dataset::write_scored(&mut out, s)?;
            }
        }
    }
    writeln!(out, "calibration temperature {:.3}", cv.temperature)?;
    let scope = if a.neutral_corpus.is_empty() {
        ""
    } else {
        " (labelled corpora; the --neutral-corpus speakers left out)"
    };
    for (cond, protocols) in &cv.order_spread {
        for (protocol, o) in protocols {
            write_order_spread(&mut out, &format!("{cond}, {protocol}{scope}"), o)?;
        }
    }
    for (cond, corpora) in &cv.order_spread_by_corpus {
        for (corpus, protocols) in corpora {
            for (protocol, o) in protocols {
                write_order_spread(&mut out, &format!("{cond}, {protocol}, {corpus} only"), o)?;
            }
        }
    }
    let all: Vec<Vec<&ClipData>> = sets.iter().chain(&train_only).cloned().collect();
    let mut model = fit_voice(&all, &cfg);
    model.softmax.temperature = cv.temperature;
    model.neutral = names
        .iter()
        .zip(&sets)
        .filter_map(|(name, set)| crate::train::voice::neutral_reference(name, set))
        .collect();
    let mut speakers: Vec<&str> = corpus.clips.iter().map(|c| c.speaker.as_str()).collect();
    speakers.sort();
    speakers.dedup();
    let all_dirs: Vec<String> = a
        .corpus
        .iter()
        .chain(&a.neutral_corpus)
        .map(|d| d.display().to_string())
        .collect();
    model.provenance = crate::emotion::voice::Provenance {
        corpus: all_dirs.join(", "),
        licence: if single {
            "inherits the training corpus licence (RAVDESS: CC BY-NC-SA 4.0, non-commercial)".into()
        } else {
            let each: Vec<String> = a
                .corpus
                .iter()
                .chain(&a.neutral_corpus)
                .map(|d| corpus_licence(d))
                .collect();
            format!(
                "inherits the licences of every training corpus: {}; non-commercial where any \
                 of them is (see models/README.md)",
                each.join("; ")
            )
        },
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

/// One training corpus's licence for a model's provenance: the `licence` column of its
/// manifest where it has one (with `source`), else the licence of a corpus this project
/// knows by its directory's name, else "licence not stated".
fn corpus_licence(dir: &Path) -> String {
    let name = dir.display().to_string();
    let stated = crate::train::corpus::open_manifest(dir)
        .ok()
        .and_then(|(_, mut r, h)| {
            let lic = h.iter().position(|c| c == "licence")?;
            let src = h.iter().position(|c| c == "source");
            let mut seen: Vec<String> = Vec::new();
            for row in r.records().flatten() {
                let l = row.get(lic).unwrap_or("");
                let s = src.and_then(|k| row.get(k)).unwrap_or("");
                let one = if s.is_empty() {
                    l.to_string()
                } else {
                    format!("{s} {l}")
                };
                if !l.is_empty() && !seen.contains(&one) {
                    seen.push(one);
                }
            }
            (!seen.is_empty()).then(|| seen.join(", "))
        });
    let lower = name.to_lowercase();
    let known = if lower.contains("ravdess") {
        "RAVDESS CC BY-NC-SA 4.0"
    } else if lower.contains("tess") {
        "TESS CC BY-NC-ND 4.0"
    } else if lower.contains("savee") {
        "SAVEE research use only"
    } else {
        "licence not stated"
    };
    format!("{name}: {}", stated.as_deref().unwrap_or(known))
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

/// The recorded calls `paths` names (recordings, or the recordings of directories, sorted).
fn calm_call_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    use crate::core::codec::audio_file::has_recording_extension;
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut in_dir = Vec::new();
            for entry in std::fs::read_dir(path)
                .with_context(|| format!("--calm-calls {}", path.display()))?
            {
                let p = entry
                    .with_context(|| format!("--calm-calls {}", path.display()))?
                    .path();
                if p.is_file() && has_recording_extension(&p) {
                    in_dir.push(p);
                }
            }
            if in_dir.is_empty() {
                bail!(
                    "--calm-calls {}: no recording (.wav, .flac, .mp3, .ogg, .oga, .opus) in \
                     the directory",
                    path.display()
                );
            }
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The channels of recorded call `file`, each as a calm clip of its own speaker
/// (`PATH#CHANNEL`) with its audio at 16 kHz.
fn calm_call(file: &Path) -> anyhow::Result<Vec<(crate::train::corpus::Clip, Vec<f32>)>> {
    use crate::core::codec::audio_file::read_audio_file;
    use crate::train::corpus::{to_16k, Audio, Clip};
    let wav = read_audio_file(file).with_context(|| format!("--calm-calls {}", file.display()))?;
    let mut out = Vec::new();
    for (i, samples) in wav.samples.into_iter().enumerate() {
        let audio = to_16k(&Audio {
            rate_hz: wav.sample_rate,
            samples,
        })
        .map_err(|e| anyhow::anyhow!("--calm-calls {}: {e}", file.display()))?;
        let clip = Clip {
            path: file.to_path_buf(),
            speaker: format!("{}#{}", file.display(), i + 1),
            gender: String::new(),
            label: "calm".into(),
            class: 0,
            corpus: "calls".into(),
            assumed_neutral: true,
        };
        out.push((clip, audio));
    }
    Ok(out)
}

pub(super) fn calibrate(a: CalibrateArgs) -> anyhow::Result<()> {
    use crate::emotion::voice::{Calibration, VoiceModel};
    use crate::train::dataset::{self, Condition};
    let mut model = VoiceModel::load(&a.model)?;
    let neutral = match model.neutral_reference(&a.onto) {
        Some(n) => n.clone(),
        None if model.neutral.is_empty() => bail!(
            "{}: the model has no neutral statistics to calibrate onto (models written by \
             `callmood train` before calibration existed); train it again",
            a.model.display()
        ),
        None => bail!(
            "--onto {}: the model's neutral statistics are for {}",
            a.onto,
            model
                .neutral
                .iter()
                .map(|n| format!("`{}`", n.condition))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut corpus = if a.calm.is_empty() {
        crate::train::corpus::Corpus::default()
    } else {
        read_training_labels(&[], &a.calm)?
    };
    let loaded = load_audio(&corpus);
    let calls = calm_call_files(&a.calm_calls)?;
    let condition = if a.telephony {
        Condition::Telephony
    } else {
        Condition::Clean
    };
    let encoder = model
        .encoder()
        .cloned()
        .context("the model's encoder weights are not loaded")?;
    let heard = if a.telephony {
        "telephony (simulated line)"
    } else {
        "as recorded"
    };
    eprintln!(
        "callmood: extracting voice features of {} calm clips and {} calm calls ({heard})",
        corpus.clips.len(),
        calls.len()
    );
    let plan = DspPlan::new();
    let mut features = dataset::clip_features(&plan, &encoder, &loaded.audio, condition, None, 0);
    drop(loaded);
    // A call at a time, so that only one call's audio is held; each channel keeps its own
    // place in the clip numbering (the line noise of --telephony is seeded by it).
    for file in &calls {
        let (clips, audio): (Vec<_>, Vec<_>) = calm_call(file)?.into_iter().unzip();
        let audio: Vec<Option<Vec<f32>>> = audio.into_iter().map(Some).collect();
        let first = corpus.clips.len();
        features.extend(dataset::clip_features(
            &plan, &encoder, &audio, condition, None, first,
        ));
        corpus.clips.extend(clips);
    }
    let data = dataset::clip_data(&corpus, features);
    let clips: Vec<&crate::train::voice::ClipData> =
        data.iter().filter(|c| !c.utterances.is_empty()).collect();
    let calm = crate::train::voice::feature_stats(heard, &clips)
        .filter(|s| s.utterances >= a.min_utterances)
        .with_context(|| {
            format!(
                "{} utterances of calm speech found in {} clips; --min-utterances is {}",
                clips.iter().map(|c| c.utterances.len()).sum::<usize>(),
                clips.len(),
                a.min_utterances
            )
        })?;
    let mut speakers: Vec<&str> = clips.iter().map(|c| c.speaker.as_str()).collect();
    speakers.sort();
    speakers.dedup();
    // How far the line's calm voices sit from the training's neutral ones: RMS over the
    // features of the mean's distance in the neutral SDs.
    let shift = (calm
        .mean
        .iter()
        .zip(&neutral.mean)
        .zip(&neutral.sd)
        .map(|((c, n), s)| ((c - n) / s).powi(2) as f64)
        .sum::<f64>()
        / calm.mean.len() as f64)
        .sqrt();
    if model.calibration.is_some() {
        eprintln!(
            "callmood: {} was calibrated already; the new calibration replaces it",
            a.model.display()
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "calibrated from {} utterances of {} speakers ({} clips, {heard}) onto the training's \
         {} neutral speech ({} utterances); the line's calm mean sat {shift:.2} SD from it \
         (RMS over features)",
        calm.utterances,
        speakers.len(),
        clips.len(),
        neutral.condition,
        neutral.utterances
    )?;
    model.calibration = Some(Calibration {
        source: a
            .calm
            .iter()
            .chain(&a.calm_calls)
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        calm,
        neutral,
    });
    write_derived_model(model, &a.model, &a.out, "calibrated")
}

pub(super) fn eval(a: EvalArgs) -> anyhow::Result<()> {
    use crate::train::dataset::{self, Condition};
    let model = Arc::new(crate::emotion::voice::VoiceModel::load(&a.model)?);
    let (corpus, loaded) = read_corpus(&a.corpus)?;
    let condition = if a.telephony {
        Condition::Telephony
    } else if a.room {
        Condition::Room
    } else {
        Condition::Clean
    };
    let plan = DspPlan::new();
    let p = dataset::predict(&plan, &corpus, &loaded, &model, condition, a.seed, true);
    let r = dataset::evaluate(&corpus, &loaded, condition, p);
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

/// One line of how a protocol's figures move with the order of the clips alone.
fn write_order_spread(
    out: &mut impl Write,
    what: &str,
    o: &crate::train::voice::OrderSpread,
) -> std::io::Result<()> {
    use crate::train::voice::mean_min_max;
    let (u, g) = (mean_min_max(&o.uar), mean_min_max(&o.gender_gap));
    writeln!(
        out,
        "{what}, over {} orders: UAR mean {:.3} ({:.3}–{:.3}), \
         gender gap mean {:.1} ({:.1}–{:.1}) points",
        o.uar.len(),
        u.0,
        u.1,
        u.2,
        100.0 * g.0,
        100.0 * g.1,
        100.0 * g.2
    )
}

#[cfg(test)]
mod tests {
    use super::corpus_licence;

    /// A manifest's own `licence` column (with `source`) names the licence; a corpus without
    /// one is named by its directory where the project knows it, and otherwise said so.
    #[test]
    fn a_corpus_licence_comes_from_its_manifest_or_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let readers = dir.path().join("readers");
        std::fs::create_dir(&readers).unwrap();
        std::fs::write(
            readers.join("manifest.csv"),
            "file,speaker,gender,source,licence\n\
             a.flac,s1,F,LibriSpeech,CC BY 4.0\n\
             b.flac,s2,M,LibriSpeech,CC BY 4.0\n\
             c.flac,s3,M,Common Voice,CC0 1.0\n",
        )
        .unwrap();
        let l = corpus_licence(&readers);
        assert!(
            l.ends_with("readers: LibriSpeech CC BY 4.0, Common Voice CC0 1.0"),
            "{l}"
        );
        let ravdess = dir.path().join("ravdess-train");
        std::fs::create_dir(&ravdess).unwrap();
        std::fs::write(
            ravdess.join("manifest.csv"),
            "file,speaker,gender,emotion\n",
        )
        .unwrap();
        assert!(corpus_licence(&ravdess).ends_with("ravdess-train: RAVDESS CC BY-NC-SA 4.0"));
        assert!(corpus_licence(&dir.path().join("elsewhere")).ends_with("licence not stated"));
    }
}
