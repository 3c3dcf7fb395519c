//! Training and measuring the voice model (sans-I/O: takes feature vectors, returns models
//! and figures). The shell side (`callmood train` / `callmood eval`) feeds it.
//!
//! Three protocols, all speaker-independent:
//! - **cold**: each clip alone, with no speaker baseline;
//! - **running**: a speaker's clips in a shuffled order (fixed seed) as one call, each
//!   scored with only the earlier ones as baseline, exactly as a live call does;
//! - **calm first**: as running, but the speaker's neutral clips come first (shuffled), then
//!   the rest (shuffled): the baseline is built from calm speech, as in a call that starts
//!   calm and then turns.
//!
//! Calm first measures what the shuffled protocol hides: with a balanced mix
//! of emotions in the baseline, a neutral clip sits below the speaker's mean arousal, but
//! in a real call the baseline is mostly neutral, and a neutral utterance sits at it.
//!
//! Training sees all three: every training clip once cold, each training speaker's clips
//! in several shuffled orders with the running baseline, and in calm-first orders (neutral
//! here includes calm, which maps to it). Cross-validation holds out whole speakers:
//! each corpus's speakers sorted by gender, then id, are dealt round robin into the folds, so
//! every fold holds out both genders where it can, no training set lacks the held-out
//! speakers' gender, and a corpus's folds are the same whatever is trained beside it.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::core::rng::SplitMix64;
use crate::emotion::features::{VoiceVector, N_VOICE};
use crate::emotion::linear::{fit_weighted, FitConfig, Softmax};
use crate::emotion::metrics::{argmax, confusion, ece, fit_temperature, recalls, uar};
use crate::emotion::voice::{
    embedding_distance, Familiarity, FeatureStats, SpeakerBaseline, VoiceModel,
};
use crate::emotion::{CLASSES, N_CLASSES};

/// One clip in one condition: its label and its utterances' raw voice features.
#[derive(Clone, Debug)]
pub struct ClipData {
    /// Speaker id.
    pub speaker: String,
    /// Gender as written in the manifest.
    pub gender: String,
    /// Class index.
    pub class: usize,
    /// The corpus it came from (empty for a corpus trained alone).
    pub corpus: String,
    /// Unlabelled calm speech taken as neutral ([`TrainConfig::neutral_share`]).
    pub assumed_neutral: bool,
    /// Raw voice features of each utterance the call core found in the clip.
    pub utterances: Vec<VoiceVector>,
}

/// Training settings.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Cross-validation folds (each corpus's speakers by gender then id, round robin).
    pub folds: usize,
    /// Shuffled orders of each training speaker's clips.
    pub permutations: usize,
    /// Calm-first orders of each training speaker's clips ([`calm_first_order`]).
    pub calm_first: usize,
    /// Orders each held-out speaker is scored in by the cross-validation's call protocols
    /// (the first, from `seed`, gives the headline figures; the others their spread).
    pub eval_orders: usize,
    /// Weight of the population prior in the speaker baseline, utterances.
    pub prior_weight: f32,
    /// Classifier settings.
    pub fit: FitConfig,
    /// Seed of the shuffles (training) and of the running protocol's order (evaluation).
    pub seed: u64,
    /// How the classifier weighs the clips of its speakers.
    pub weighting: Weighting,
    /// Share of the neutral class's weight that clips taken as neutral
    /// ([`ClipData::assumed_neutral`]) hold together, 0..1 (0 leaves them out of the fit).
    pub neutral_share: f32,
}

/// How the classifier weighs training clips (within each class: classes are balanced
/// either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Every clip the same: a speaker with many clips counts for more.
    #[default]
    Clip,
    /// Every speaker the same (in each condition), however many clips they recorded: two
    /// voices with 1400 clips each count for as much as two with 50.
    Speaker,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            folds: 6,
            permutations: 3,
            calm_first: 1,
            eval_orders: 5,
            prior_weight: 4.0,
            fit: FitConfig {
                l2: 0.03,
                ..FitConfig::default()
            },
            seed: 2024,
            weighting: Weighting::Clip,
            neutral_share: 0.25,
        }
    }
}

/// Figures of one protocol over a set of clips.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Scored {
    /// Unweighted average recall over the five classes.
    pub uar: f32,
    /// Recall per class.
    pub per_class: BTreeMap<String, f32>,
    /// UAR per gender.
    pub per_gender: BTreeMap<String, f32>,
    /// UAR per speaker.
    pub per_speaker: BTreeMap<String, f32>,
    /// Highest minus lowest UAR per gender (0 with fewer than two genders).
    pub gender_gap: f32,
    /// How far UAR and the gender gap could move with other speakers of the same genders:
    /// a speaker bootstrap ([`speaker_interval`]). `None` when no gender has two speakers.
    pub interval: Option<SpeakerInterval>,
    /// Confusion counts, `[true][predicted]`, [`CLASSES`] order.
    pub confusion: Vec<Vec<u32>>,
    /// Expected calibration error of the top label (10 bins).
    pub ece: f32,
    /// Mean probability of the top label: above `accuracy` means overconfident.
    pub confidence: f32,
    /// Share of clips whose top label is right.
    pub accuracy: f32,
    /// Clips scored.
    pub n: usize,
    /// How the calm (neutral-labelled) clips were misread; `None` without any.
    pub calm_false_angry: Option<CalmFalseAlarms>,
    /// How well `arousal` and `valence` rank a speaker's clips; `None` when no speaker has
    /// clips of two labels that differ on either.
    pub dimensions: Option<Dimensions>,
}

/// Within-speaker rank agreement of the predicted dimensions with the labels': for each
/// speaker, Spearman's ρ between the `arousal` (`valence`) the service reports for each clip
/// (probability-weighted [`crate::emotion::CIRCUMPLEX`]) and that of the clip's labelled
/// class, then the mean over speakers (those whose labels all sit at one value are left
/// out of that dimension).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Dimensions {
    /// Mean within-speaker ρ of arousal.
    pub arousal_spearman: f32,
    /// Mean within-speaker ρ of valence.
    pub valence_spearman: f32,
    /// Speakers behind the arousal figure.
    pub speakers: usize,
}

impl Dimensions {
    fn of(y: &[usize], probs: &[Vec<f32>], speaker: &[String]) -> Option<Self> {
        use crate::emotion::CIRCUMPLEX;
        let mut by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, s) in speaker.iter().enumerate() {
            by.entry(s.as_str()).or_default().push(i);
        }
        let dim = |i: usize, d: usize| -> (f64, f64) {
            let pick = |c: usize| {
                let (v, a) = CIRCUMPLEX[c];
                if d == 0 {
                    a as f64
                } else {
                    v as f64
                }
            };
            let pred = probs[i]
                .iter()
                .enumerate()
                .map(|(c, p)| *p as f64 * pick(c))
                .sum();
            (pred, pick(y[i]))
        };
        let mut sums = [(0.0f64, 0usize); 2];
        for idx in by.values() {
            for (d, sum) in sums.iter_mut().enumerate() {
                let (pred, truth): (Vec<f64>, Vec<f64>) = idx.iter().map(|&i| dim(i, d)).unzip();
                if truth.iter().any(|t| *t != truth[0]) {
                    sum.0 += crate::train::text::spearman(&pred, &truth);
                    sum.1 += 1;
                }
            }
        }
        if sums[0].1 == 0 && sums[1].1 == 0 {
            return None;
        }
        let mean = |(s, n): (f64, usize)| if n == 0 { 0.0 } else { (s / n as f64) as f32 };
        Some(Self {
            arousal_spearman: mean(sums[0]),
            valence_spearman: mean(sums[1]),
            speakers: sums[0].1,
        })
    }
}

/// The calm clips' false alarms: the product's worst mistake is calling a calm caller angry.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CalmFalseAlarms {
    /// Calm clips scored.
    pub n: usize,
    /// Calm clips whose top label is angry.
    pub angry: usize,
    /// Share of calm clips whose top label is angry.
    pub angry_share: f32,
    /// Share of calm clips whose top label is fearful.
    pub fearful_share: f32,
    /// Share of calm clips with `angry` at or above 0.5, the default `escalate` threshold
    /// (`contact::alerts::DEFAULT_ESCALATE_ANGRY`).
    pub angry_over_half_share: f32,
}

impl CalmFalseAlarms {
    /// Of the clips with true class neutral (class 0); `None` when there are none.
    pub(crate) fn of(y: &[usize], probs: &[Vec<f32>]) -> Option<Self> {
        let calm: Vec<&Vec<f32>> = y
            .iter()
            .zip(probs)
            .filter(|(y, _)| **y == 0)
            .map(|(_, p)| p)
            .collect();
        if calm.is_empty() {
            return None;
        }
        let n = calm.len();
        let share = |k: usize| k as f32 / n as f32;
        let angry = calm.iter().filter(|p| argmax(p) == 2).count();
        let fearful = calm.iter().filter(|p| argmax(p) == 4).count();
        let over = calm.iter().filter(|p| p[2] >= 0.5).count();
        Some(Self {
            n,
            angry,
            angry_share: share(angry),
            fearful_share: share(fearful),
            angry_over_half_share: share(over),
        })
    }
}

/// Per-clip predictions of one protocol.
#[derive(Clone, Debug, Default)]
pub struct Predictions {
    /// True class per clip.
    pub y: Vec<usize>,
    /// Probabilities per clip.
    pub probs: Vec<Vec<f32>>,
    /// Gender per clip.
    pub gender: Vec<String>,
    /// Speaker per clip.
    pub speaker: Vec<String>,
}

impl Predictions {
    /// Adds one clip.
    pub fn push(&mut self, y: usize, probs: Vec<f32>, gender: &str, speaker: &str) {
        self.y.push(y);
        self.probs.push(probs);
        self.gender.push(gender.to_string());
        self.speaker.push(speaker.to_string());
    }

    /// The clips whose speaker `keep` accepts.
    pub fn filter(&self, keep: impl Fn(&str) -> bool) -> Predictions {
        let mut out = Predictions::default();
        for i in (0..self.y.len()).filter(|&i| keep(&self.speaker[i])) {
            out.push(
                self.y[i],
                self.probs[i].clone(),
                &self.gender[i],
                &self.speaker[i],
            );
        }
        out
    }

    /// Each probability vector sharpened or softened by `temperature` (on its log).
    fn calibrate(&mut self, temperature: f32) {
        for q in self.probs.iter_mut() {
            q.iter_mut()
                .for_each(|v| *v = v.max(1e-9).ln() / temperature);
            crate::emotion::softmax_in_place(q);
        }
    }

    /// Adds all of `other`.
    pub fn extend(&mut self, other: Predictions) {
        self.y.extend(other.y);
        self.probs.extend(other.probs);
        self.gender.extend(other.gender);
        self.speaker.extend(other.speaker);
    }

    /// The figures.
    pub fn score(&self) -> Scored {
        let pred: Vec<usize> = self.probs.iter().map(|p| argmax(p)).collect();
        let conf = confusion(&self.y, &pred, N_CLASSES);
        let per_class = CLASSES
            .iter()
            .zip(recalls(&conf))
            .filter_map(|(c, r)| Some((c.to_string(), r?)))
            .collect();
        // UAR of the clips of each value of `key` (one per clip).
        let uar_by = |key: &[String]| -> BTreeMap<String, f32> {
            grouped(&self.y, &pred, key.iter().map(String::as_str))
                .into_iter()
                .map(|(k, (y, p))| (k.to_string(), uar(&confusion(&y, &p, N_CLASSES))))
                .collect()
        };
        let per_gender = uar_by(&self.gender);
        let by_gender: Vec<f32> = per_gender.values().copied().collect();
        let (_, lo, hi) = mean_min_max(&by_gender);
        Scored {
            uar: uar(&conf),
            interval: speaker_interval(&self.y, &pred, &self.speaker, &self.gender, &per_gender),
            gender_gap: hi - lo,
            per_class,
            per_gender,
            per_speaker: uar_by(&self.speaker),
            confusion: conf,
            ece: ece(&self.probs, &self.y, 10),
            confidence: mean(self.probs.iter().map(|p| p[argmax(p)])),
            accuracy: mean(
                self.y
                    .iter()
                    .zip(&pred)
                    .map(|(y, p)| f32::from(u8::from(y == p))),
            ),
            n: self.y.len(),
            calm_false_angry: CalmFalseAlarms::of(&self.y, &self.probs),
            dimensions: Dimensions::of(&self.y, &self.probs, &self.speaker),
        }
    }
}

/// True and predicted classes of the clips with each key (`keys` has one per clip).
fn grouped<K: Ord>(
    y: &[usize],
    pred: &[usize],
    keys: impl Iterator<Item = K>,
) -> BTreeMap<K, (Vec<usize>, Vec<usize>)> {
    let mut groups: BTreeMap<K, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for ((y, p), k) in y.iter().zip(pred).zip(keys) {
        let g = groups.entry(k).or_default();
        g.0.push(*y);
        g.1.push(*p);
    }
    groups
}

/// Mean of `v` (0 when empty).
fn mean(v: impl Iterator<Item = f32>) -> f32 {
    let (sum, n) = v.fold((0.0f64, 0usize), |(s, n), x| (s + x as f64, n + 1));
    if n == 0 {
        0.0
    } else {
        (sum / n as f64) as f32
    }
}

/// Resamples drawn by [`speaker_interval`].
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// A 95% speaker-bootstrap interval: the 2.5th and 97.5th percentiles over
/// [`BOOTSTRAP_RESAMPLES`] resamples.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct SpeakerInterval {
    /// Interval of the UAR.
    pub uar: [f32; 2],
    /// Interval of the gender gap, taken as the UAR of the gender highest in the figures
    /// minus that of the lowest: below 0 where resamples reverse the two.
    pub gender_gap: [f32; 2],
    /// Speakers behind the figures.
    pub speakers: usize,
}

/// Speaker bootstrap of UAR and gender gap: each resample draws, within each gender, as
/// many speakers as it has, with replacement, and pools their clips. Clips of one speaker
/// are not independent (same voice, same baseline), so resampling clips would claim far
/// more certainty than a few speakers give; this says how much the figures depend on which
/// speakers were recorded. A gender with one speaker contributes that speaker to every
/// resample, so its uncertainty is not seen. `None` when no gender has two speakers.
pub fn speaker_interval(
    y: &[usize],
    pred: &[usize],
    speaker: &[String],
    gender: &[String],
    per_gender: &BTreeMap<String, f32>,
) -> Option<SpeakerInterval> {
    // gender -> each speaker's confusion counts.
    let mut groups: BTreeMap<&str, Vec<Vec<Vec<u32>>>> = BTreeMap::new();
    let keys = gender
        .iter()
        .zip(speaker)
        .map(|(g, s)| (g.as_str(), s.as_str()));
    for ((g, _), (y, p)) in grouped(y, pred, keys) {
        groups
            .entry(g)
            .or_default()
            .push(confusion(&y, &p, N_CLASSES));
    }
    if groups.values().all(|s| s.len() < 2) {
        return None;
    }
    let groups: Vec<(&str, Vec<Vec<Vec<u32>>>)> = groups.into_iter().collect();
    let by_uar = |a: &&(&str, _), b: &&(&str, _)| {
        let u = |g: &str| per_gender.get(g).copied().unwrap_or(0.0);
        u(a.0).total_cmp(&u(b.0))
    };
    let low = groups.iter().min_by(by_uar).map(|g| g.0);
    let high = groups.iter().max_by(by_uar).map(|g| g.0);
    let mut rng = SplitMix64::new(0xB007_57AB);
    let (mut uars, mut gaps) = (Vec::new(), Vec::new());
    let add = |into: &mut Vec<Vec<u32>>, m: &Vec<Vec<u32>>| {
        for (a, b) in into.iter_mut().zip(m) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    };
    for _ in 0..BOOTSTRAP_RESAMPLES {
        let mut all = vec![vec![0u32; N_CLASSES]; N_CLASSES];
        let mut gender_uar = BTreeMap::new();
        for (g, speakers) in &groups {
            let mut pooled = vec![vec![0u32; N_CLASSES]; N_CLASSES];
            for _ in 0..speakers.len() {
                add(&mut pooled, &speakers[rng.below(speakers.len())]);
            }
            add(&mut all, &pooled);
            gender_uar.insert(*g, uar(&pooled));
        }
        uars.push(uar(&all));
        let u = |g: Option<&str>| g.and_then(|g| gender_uar.get(g).copied()).unwrap_or(0.0);
        gaps.push(u(high) - u(low));
    }
    Some(SpeakerInterval {
        uar: percentiles_95(&mut uars),
        gender_gap: percentiles_95(&mut gaps),
        speakers: groups.iter().map(|(_, s)| s.len()).sum(),
    })
}

/// The 2.5th and 97.5th percentiles of `v` (nearest rank; sorts `v`).
pub(crate) fn percentiles_95(v: &mut [f32]) -> [f32; 2] {
    v.sort_by(f32::total_cmp);
    let at = |q: f32| v[((q * (v.len() - 1) as f32).round() as usize).min(v.len() - 1)];
    [at(0.025), at(0.975)]
}

/// The [`FeatureStats`] of every utterance of `clips`, heard in `condition`; None without
/// any utterance.
pub fn feature_stats(condition: &str, clips: &[&ClipData]) -> Option<FeatureStats> {
    let utterances = clips.iter().map(|c| c.utterances.len()).sum();
    if utterances == 0 {
        return None;
    }
    let (mean, sd) = population(clips);
    Some(FeatureStats {
        condition: condition.to_string(),
        utterances,
        mean,
        sd,
    })
}

/// The training's [`NeutralReference`] in `condition`: the labelled neutral (and calm) clips,
/// not those only taken as neutral.
pub fn neutral_reference(condition: &str, clips: &[&ClipData]) -> Option<FeatureStats> {
    let neutral: Vec<&ClipData> = clips
        .iter()
        .copied()
        .filter(|c| c.class == 0 && !c.assumed_neutral)
        .collect();
    feature_stats(condition, &neutral)
}

/// Population mean and SD of each feature over every utterance (NaN skipped; SD floored).
fn population(clips: &[&ClipData]) -> (Vec<f32>, Vec<f32>) {
    let mut stats = vec![(0u64, 0.0f64, 0.0f64); N_VOICE];
    for u in clips.iter().flat_map(|c| &c.utterances) {
        for (j, &v) in u.iter().enumerate() {
            if v.is_finite() {
                let s = &mut stats[j];
                s.0 += 1;
                s.1 += v as f64;
                s.2 += v as f64 * v as f64;
            }
        }
    }
    stats
        .iter()
        .map(|&(n, s, s2)| {
            if n == 0 {
                return (0.0, 1.0);
            }
            let m = s / n as f64;
            let sd = (s2 / n as f64 - m * m).max(0.0).sqrt();
            (m as f32, (sd as f32).max(1e-3))
        })
        .unzip()
}

/// The normalised inputs of a speaker's clips fed in `order`: `(clip, z)` per utterance,
/// each against the baseline of the utterances before it (none when `cold`).
fn sequence_inputs(
    model: &VoiceModel,
    clips: &[&ClipData],
    order: &[usize],
    cold: bool,
) -> Vec<(usize, VoiceVector)> {
    let mut b = SpeakerBaseline::default();
    let mut out = Vec::new();
    for &i in order {
        for u in &clips[i].utterances {
            let u = model.input(u);
            let z = model.normalise(&u, &b).0;
            out.push((i, z));
            if !cold {
                b.push(&u);
            }
        }
    }
    out
}

/// Groups clip indices by (speaker, condition index), in sorted speaker order.
fn by_speaker<'a>(sets: &[Vec<&'a ClipData>]) -> Vec<Vec<&'a ClipData>> {
    let mut groups: BTreeMap<(String, usize), Vec<&ClipData>> = BTreeMap::new();
    for (k, set) in sets.iter().enumerate() {
        for c in set {
            groups.entry((c.speaker.clone(), k)).or_default().push(c);
        }
    }
    groups.into_values().collect()
}

/// Trains a model on `sets` (one set of clips per condition; the population statistics
/// and the classifier see all of them). The temperature is left at 1.
pub fn fit_voice(sets: &[Vec<&ClipData>], cfg: &TrainConfig) -> VoiceModel {
    let all: Vec<&ClipData> = sets.iter().flatten().copied().collect();
    let (population_mean, population_sd) = population(&all);
    let mut model = VoiceModel::new(
        population_mean,
        population_sd,
        cfg.prior_weight,
        Softmax {
            weights: vec![vec![0.0; N_VOICE]; N_CLASSES],
            bias: vec![0.0; N_CLASSES],
            temperature: 1.0,
        },
    );
    let (mut x, mut y) = (Vec::new(), Vec::new());
    // Per row: the weight of its speaker's group spread over its rows, and whether it is
    // taken as neutral.
    let (mut row_w, mut assumed) = (Vec::new(), Vec::new());
    for (g, clips) in by_speaker(sets).iter().enumerate() {
        let first_row = y.len();
        let ident: Vec<usize> = (0..clips.len()).collect();
        let mut rng = SplitMix64::new(cfg.seed ^ (g as u64).wrapping_mul(0x9E37_79B9));
        let mut orders = vec![(ident.clone(), true)];
        for _ in 0..cfg.permutations {
            let mut o = ident.clone();
            rng.shuffle(&mut o);
            orders.push((o, false));
        }
        let classes: Vec<usize> = clips.iter().map(|c| c.class).collect();
        for _ in 0..cfg.calm_first {
            orders.push((calm_first_order(&classes, &mut rng), false));
        }
        for (order, cold) in orders {
            for (i, z) in sequence_inputs(&model, clips, &order, cold) {
                x.push(z.to_vec());
                y.push(clips[i].class);
                assumed.push(clips[i].assumed_neutral);
            }
        }
        let rows = (y.len() - first_row).max(1) as f32;
        row_w.resize(y.len(), 1.0 / rows);
    }
    if cfg.weighting == Weighting::Clip {
        row_w.iter_mut().for_each(|w| *w = 1.0);
    }
    let weighted = cfg.weighting != Weighting::Clip || assumed.iter().any(|&a| a);
    if weighted {
        share_assumed_neutral(&mut row_w, &y, &assumed, cfg.neutral_share);
    }
    model.softmax = fit_weighted(
        &x,
        &y,
        weighted.then_some(row_w.as_slice()),
        N_CLASSES,
        &cfg.fit,
    );
    // Where the training utterances lay, for how unfamiliar a voice sounds in service.
    let distances = all
        .iter()
        .flat_map(|c| &c.utterances)
        .map(|u| embedding_distance(u, &model.population_mean, &model.population_sd))
        .collect();
    model.familiarity = Familiarity::of(distances);
    model
}

/// Scales the rows taken as neutral so that together they hold `share` of the neutral
/// class's weight (all of it when no labelled neutral row exists; none when `share` is 0).
fn share_assumed_neutral(row_w: &mut [f32], y: &[usize], assumed: &[bool], share: f32) {
    let (mut labelled, mut taken) = (0.0f64, 0.0f64);
    for ((w, &c), &a) in row_w.iter().zip(y).zip(assumed) {
        match (c, a) {
            (_, true) => taken += *w as f64,
            (0, false) => labelled += *w as f64,
            _ => {}
        }
    }
    if taken == 0.0 || labelled == 0.0 {
        return;
    }
    let share = share.clamp(0.0, 0.99) as f64;
    let scale = (share / (1.0 - share) * labelled / taken) as f32;
    for (w, &a) in row_w.iter_mut().zip(assumed) {
        if a {
            *w *= scale;
        }
    }
}

/// The order the running protocol feeds a speaker's `n` clips in.
pub fn running_order(n: usize, seed: u64, speaker: &str) -> Vec<usize> {
    let h = speaker_hash(speaker);
    let mut o: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed ^ h).shuffle(&mut o);
    o
}

/// A calm-first order of clips with labels `classes`: the neutral ones (class 0) first,
/// then the others, each group shuffled by `rng`.
pub fn calm_first_order(classes: &[usize], rng: &mut SplitMix64) -> Vec<usize> {
    let (mut calm, mut rest): (Vec<usize>, Vec<usize>) =
        (0..classes.len()).partition(|&i| classes[i] == 0);
    rng.shuffle(&mut calm);
    rng.shuffle(&mut rest);
    calm.extend(rest);
    calm
}

/// The calm-first order the evaluation feeds a speaker's clips in (fixed by `seed` and the
/// speaker, independent of [`running_order`]'s).
pub fn eval_calm_first_order(classes: &[usize], seed: u64, speaker: &str) -> Vec<usize> {
    let h = speaker_hash(speaker);
    calm_first_order(classes, &mut SplitMix64::new(seed ^ h ^ CALM_FIRST_SALT))
}

const CALM_FIRST_SALT: u64 = 0x5bd1_e995_c0ff_ee00;

fn speaker_hash(speaker: &str) -> u64 {
    speaker.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Predictions of one speaker's clips under the three protocols.
#[derive(Clone, Debug, Default)]
pub struct ProtocolPredictions {
    /// Each clip alone.
    pub cold: Predictions,
    /// Shuffled, with the running baseline.
    pub running: Predictions,
    /// Calm first, with the running baseline.
    pub calm_first: Predictions,
}

impl ProtocolPredictions {
    /// Adds all of `other`.
    pub fn extend(&mut self, other: ProtocolPredictions) {
        self.cold.extend(other.cold);
        self.running.extend(other.running);
        self.calm_first.extend(other.calm_first);
    }

    /// Each protocol's name and predictions.
    pub fn named_mut(&mut self) -> [(&'static str, &mut Predictions); 3] {
        [
            ("cold", &mut self.cold),
            ("running", &mut self.running),
            ("calm_first", &mut self.calm_first),
        ]
    }
}

/// Scores one speaker's clips (one condition) under the three protocols, with the feature
/// path of [`sequence_inputs`]; a clip's probabilities are the mean over its utterances.
/// Clips without utterances are left out.
pub fn predict_speaker(model: &VoiceModel, clips: &[&ClipData], seed: u64) -> ProtocolPredictions {
    let mut out = ProtocolPredictions::default();
    let Some(first) = clips.first() else {
        return out;
    };
    let ident: Vec<usize> = (0..clips.len()).collect();
    let running = running_order(clips.len(), seed, &first.speaker);
    let classes: Vec<usize> = clips.iter().map(|c| c.class).collect();
    let calm = eval_calm_first_order(&classes, seed, &first.speaker);
    for (order, cold, preds) in [
        (&ident, true, &mut out.cold),
        (&running, false, &mut out.running),
        (&calm, false, &mut out.calm_first),
    ] {
        let mut sums = vec![(vec![0.0f32; N_CLASSES], 0u32); clips.len()];
        for (i, z) in sequence_inputs(model, clips, order, cold) {
            let p = model.softmax.probs(&z);
            sums[i].0.iter_mut().zip(&p).for_each(|(s, v)| *s += v);
            sums[i].1 += 1;
        }
        for &i in order {
            let (s, n) = &sums[i];
            if *n > 0 {
                preds.push(
                    clips[i].class,
                    s.iter().map(|v| v / *n as f32).collect(),
                    &clips[i].gender,
                    &clips[i].speaker,
                );
            }
        }
    }
    out
}

/// The cross-validation fold of each speaker: each corpus's speakers sorted by (gender, id)
/// and dealt round robin into `folds` folds from the first, so that a speaker's fold does not
/// depend on which other corpora are trained with it (adding calm readers to RAVDESS leaves
/// RAVDESS's folds, and so its figures, comparable with RAVDESS trained alone).
pub fn speaker_folds(sets: &[Vec<&ClipData>], folds: usize) -> BTreeMap<String, usize> {
    let mut by_corpus: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for c in sets.iter().flatten() {
        by_corpus
            .entry(c.corpus.as_str())
            .or_default()
            .push((c.gender.as_str(), c.speaker.as_str()));
    }
    let mut out = BTreeMap::new();
    for mut speakers in by_corpus.into_values() {
        speakers.sort();
        speakers.dedup();
        for (i, (_, s)) in speakers.into_iter().enumerate() {
            out.insert(s.to_string(), i % folds.max(1));
        }
    }
    out
}

/// Cross-validated figures per condition and protocol.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CvReport {
    /// Folds.
    pub folds: usize,
    /// `condition → protocol (cold, running, calm_first) → figures`, after temperature
    /// calibration.
    pub results: BTreeMap<String, BTreeMap<String, Scored>>,
    /// The temperature fitted on the out-of-fold predictions.
    pub temperature: f32,
    /// `condition → protocol (running, calm_first) → ` the figures of each order, over the
    /// labelled corpora's speakers only: a --neutral-corpus's speakers (one class, many
    /// voices) would swamp the UAR and gender gap of the emotional ones.
    pub order_spread: BTreeMap<String, BTreeMap<String, OrderSpread>>,
    /// With two or more labelled corpora: `condition → corpus → protocol →` the figures of
    /// each order, each corpus's speakers alone.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub order_spread_by_corpus: BTreeMap<String, BTreeMap<String, BTreeMap<String, OrderSpread>>>,
    /// With several corpora: `condition → corpus → protocol → figures` of the same
    /// out-of-fold predictions, each corpus's speakers alone.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_corpus: BTreeMap<String, BTreeMap<String, BTreeMap<String, Scored>>>,
    /// With two or more labelled corpora: `corpus → condition → protocol → figures` of a
    /// model trained on every other corpus (and the --neutral-corpus clips) and scored on
    /// this one, which it never saw, at the cross-validation's temperature.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub leave_one_corpus_out: BTreeMap<String, BTreeMap<String, BTreeMap<String, Scored>>>,
}

/// The corpus part of a merged speaker id (`corpus/speaker`); empty for a corpus alone.
pub fn corpus_of(speaker: &str) -> &str {
    speaker.split_once('/').map_or("", |(c, _)| c)
}

/// Adds `p`'s figures to the spread of `protocol` in a condition's (or corpus's) entry.
fn push_spread(
    entry: std::collections::btree_map::Entry<'_, String, BTreeMap<String, OrderSpread>>,
    protocol: &str,
    p: &Predictions,
) {
    let spread = entry.or_default().entry(protocol.to_string()).or_default();
    spread.push(&p.score());
}

/// The corpora with labelled clips (not a --neutral-corpus's), sorted; `""` for one corpus
/// alone.
fn labelled_corpora<'a>(sets: &[Vec<&'a ClipData>]) -> Vec<&'a str> {
    let mut labelled: Vec<&str> = sets
        .iter()
        .flatten()
        .filter(|c| !c.assumed_neutral)
        .map(|c| c.corpus.as_str())
        .collect();
    labelled.sort();
    labelled.dedup();
    labelled
}

/// Scores every labelled corpus with a model trained without it: `corpus → condition →
/// protocol → figures`, at `temperature`. Empty with fewer than two labelled corpora.
pub fn leave_one_corpus_out(
    sets: &[Vec<&ClipData>],
    names: &[&str],
    cfg: &TrainConfig,
    temperature: f32,
) -> BTreeMap<String, BTreeMap<String, BTreeMap<String, Scored>>> {
    let labelled = labelled_corpora(sets);
    if labelled.len() < 2 {
        return BTreeMap::new();
    }
    labelled
        .par_iter()
        .map(|&held| {
            let train: Vec<Vec<&ClipData>> = sets
                .iter()
                .map(|s| s.iter().copied().filter(|c| c.corpus != held).collect())
                .collect();
            let model = fit_voice(&train, cfg);
            let mut by_cond = BTreeMap::new();
            for (k, set) in sets.iter().enumerate() {
                let test = vec![set.iter().copied().filter(|c| c.corpus == held).collect()];
                let mut preds = ProtocolPredictions::default();
                for clips in by_speaker(&test) {
                    preds.extend(predict_speaker(&model, &clips, cfg.seed));
                }
                let mut scored = BTreeMap::new();
                for (name, p) in preds.named_mut() {
                    p.calibrate(temperature);
                    scored.insert(name.to_string(), p.score());
                }
                by_cond.insert(names[k].to_string(), scored);
            }
            (held.to_string(), by_cond)
        })
        .collect()
}

/// How the figures of a call protocol move with the order of the clips alone: one value
/// per order, the first being the order of the headline figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OrderSpread {
    /// UAR of each order.
    pub uar: Vec<f32>,
    /// Highest minus lowest UAR per gender, of each order.
    pub gender_gap: Vec<f32>,
}

impl OrderSpread {
    fn push(&mut self, s: &Scored) {
        self.uar.push(s.uar);
        self.gender_gap.push(s.gender_gap);
    }
}

/// Mean, smallest and largest of `v` (zeros when empty).
pub fn mean_min_max(v: &[f32]) -> (f32, f32, f32) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mean = mean(v.iter().copied());
    let min = v.iter().copied().fold(f32::MAX, f32::min);
    let max = v.iter().copied().fold(f32::MIN, f32::max);
    (mean, min, max)
}

/// Speaker-grouped cross-validation. `sets[k]` holds condition `names[k]`'s clips;
/// `train_only` holds sets that are trained on but never scored (augmented copies of the
/// clips). Each fold trains on the other speakers in every set and scores the held-out
/// speakers in each condition under both protocols. Returns the figures (with the
/// temperature fitted on all out-of-fold predictions applied) and that temperature.
pub fn cross_validate(
    sets: &[Vec<&ClipData>],
    names: &[&str],
    train_only: &[Vec<&ClipData>],
    cfg: &TrainConfig,
) -> CvReport {
    let folds = speaker_folds(sets, cfg.folds);
    let fold_of = |s: &str| folds.get(s).copied().unwrap_or(0);
    let extra_orders = cfg.eval_orders.max(1) - 1;
    // Folds are independent: fitted on all cores, merged in fold order, so the result is
    // the same as one after the other.
    let per_fold: Vec<_> = (0..cfg.folds.max(1))
        .into_par_iter()
        .map(|fold| {
            let train: Vec<Vec<&ClipData>> = sets
                .iter()
                .chain(train_only)
                .map(|s| {
                    s.iter()
                        .copied()
                        .filter(|c| fold_of(&c.speaker) != fold)
                        .collect()
                })
                .collect();
            let model = fit_voice(&train, cfg);
            let mut preds = vec![ProtocolPredictions::default(); sets.len()];
            let mut extra = vec![vec![ProtocolPredictions::default(); extra_orders]; sets.len()];
            for (k, set) in sets.iter().enumerate() {
                let test: Vec<Vec<&ClipData>> = vec![set
                    .iter()
                    .copied()
                    .filter(|c| fold_of(&c.speaker) == fold)
                    .collect()];
                for clips in by_speaker(&test) {
                    preds[k].extend(predict_speaker(&model, &clips, cfg.seed));
                    for (j, e) in extra[k].iter_mut().enumerate() {
                        let seed = cfg.seed.wrapping_add(1 + j as u64);
                        e.extend(predict_speaker(&model, &clips, seed));
                    }
                }
            }
            (preds, extra)
        })
        .collect();
    let mut preds = vec![ProtocolPredictions::default(); sets.len()];
    // extra[condition][order - 1]: the call protocols in the other orders.
    let mut extra = vec![vec![ProtocolPredictions::default(); extra_orders]; sets.len()];
    for (fold_preds, fold_extra) in per_fold {
        for (k, (p, e)) in fold_preds.into_iter().zip(fold_extra).enumerate() {
            preds[k].extend(p);
            for (j, o) in e.into_iter().enumerate() {
                extra[k][j].extend(o);
            }
        }
    }
    // Temperature on the out-of-fold predictions of the cold and shuffled protocols (log of
    // the averaged probabilities).
    let (mut logits, mut y) = (Vec::new(), Vec::new());
    for pp in &preds {
        for p in [&pp.cold, &pp.running] {
            logits.extend(
                p.probs
                    .iter()
                    .map(|q| q.iter().map(|v| v.max(1e-9).ln()).collect()),
            );
            y.extend(&p.y);
        }
    }
    let temperature = fit_temperature(&logits, &y);
    let mut report = CvReport {
        folds: cfg.folds,
        temperature,
        ..CvReport::default()
    };
    // The temperature moves no top label, so the spread is taken before it.
    let labelled = labelled_corpora(sets);
    for (k, (pp, ee)) in preds.iter().zip(&extra).enumerate() {
        let cond = names[k].to_string();
        for p in std::iter::once(pp).chain(ee) {
            for (name, q) in [("running", &p.running), ("calm_first", &p.calm_first)] {
                let of_labelled = q.filter(|s| labelled.contains(&corpus_of(s)));
                push_spread(report.order_spread.entry(cond.clone()), name, &of_labelled);
                if labelled.len() > 1 {
                    for &c in &labelled {
                        let by = report.order_spread_by_corpus.entry(cond.clone());
                        let of = q.filter(|s| corpus_of(s) == c);
                        push_spread(by.or_default().entry(c.to_string()), name, &of);
                    }
                }
            }
        }
    }
    let mut corpora: Vec<&str> = sets.iter().flatten().map(|c| c.corpus.as_str()).collect();
    corpora.sort();
    corpora.dedup();
    for (k, mut pp) in preds.into_iter().enumerate() {
        let entry = report.results.entry(names[k].to_string()).or_default();
        for (name, p) in pp.named_mut() {
            p.calibrate(temperature);
            entry.insert(name.into(), p.score());
            if corpora.len() > 1 {
                for &c in &corpora {
                    let of = p.filter(|s| corpus_of(s) == c);
                    report
                        .by_corpus
                        .entry(names[k].to_string())
                        .or_default()
                        .entry(c.to_string())
                        .or_default()
                        .insert(name.into(), of.score());
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synthetic speakers whose class `c` shows as a rise of feature `c` over the speaker's
    /// own (random, larger) offset of it: only speaker normalisation reads it reliably.
    fn synthetic(speakers: usize) -> Vec<ClipData> {
        let mut rng = SplitMix64::new(5);
        let mut out = Vec::new();
        for s in 0..speakers {
            let offsets: Vec<f32> = (0..N_CLASSES).map(|_| 4.0 * rng.normal()).collect();
            for k in 0..30 {
                let class = k % N_CLASSES;
                // A few noise features; the rest are missing (NaN reads as the baseline).
                let mut v = [f32::NAN; N_VOICE];
                v[..4 * N_CLASSES]
                    .iter_mut()
                    .for_each(|x| *x = rng.normal());
                for (c, o) in offsets.iter().enumerate() {
                    v[c] = o + 0.5 * rng.normal() + if c == class { 2.5 } else { 0.0 };
                }
                out.push(ClipData {
                    speaker: format!("s{s:02}"),
                    gender: if s % 2 == 0 { "M".into() } else { "F".into() },
                    class,
                    corpus: String::new(),
                    assumed_neutral: false,
                    utterances: vec![v],
                });
            }
        }
        out
    }

    /// Four folds, `permutations` shuffled orders, `iterations` steps: a small test setup.
    fn four_fold_config(permutations: usize, iterations: usize) -> TrainConfig {
        TrainConfig {
            folds: 4,
            permutations,
            fit: FitConfig {
                iterations,
                ..TrainConfig::default().fit
            },
            ..TrainConfig::default()
        }
    }

    #[test]
    fn running_baseline_learns_what_cold_start_cannot() {
        let data = synthetic(12);
        let set: Vec<&ClipData> = data.iter().collect();
        let cfg = four_fold_config(2, 300);
        let r = cross_validate(&[set], &["clean"], &[], &cfg);
        let res = &r.results["clean"];
        assert!(res["running"].uar > 0.45, "{res:?}");
        assert!(res["running"].uar > res["cold"].uar + 0.15, "{res:?}");
        assert_eq!(res["running"].n, 12 * 30);
        assert_eq!(res["calm_first"].n, 12 * 30);
        let spread = &r.order_spread["clean"]["running"];
        assert_eq!(spread.uar.len(), cfg.eval_orders);
        assert_eq!(spread.uar[0], res["running"].uar);
        assert!(spread.gender_gap.iter().all(|g| (0.0..=1.0).contains(g)));
        assert_eq!(res["running"].per_gender.len(), 2);
        assert_eq!(res["running"].per_speaker.len(), 12);
        assert!(r.temperature > 0.0);
    }

    /// Clips of speakers in `genders`, each speaker right on its first `right[k]` of 10
    /// clips per class and wrong (class + 1) on the rest.
    fn predictions_of(right: &[usize], genders: &[&str]) -> Predictions {
        let mut p = Predictions::default();
        for (k, (&r, g)) in right.iter().zip(genders).enumerate() {
            for c in 0..N_CLASSES {
                for i in 0..10 {
                    let guess = if i < r { c } else { (c + 1) % N_CLASSES };
                    let mut probs = vec![0.0; N_CLASSES];
                    probs[guess] = 1.0;
                    p.push(c, probs, g, &format!("s{k}"));
                }
            }
        }
        p
    }

    #[test]
    fn speaker_interval_follows_the_spread_between_speakers() {
        let genders = ["F", "F", "F", "M", "M", "M"];
        // Every speaker alike: resampling speakers changes nothing.
        let s = predictions_of(&[8, 8, 8, 8, 8, 8], &genders).score();
        let i = s.interval.expect("two genders of three speakers");
        assert_eq!(i.speakers, 6);
        assert!((i.uar[0] - 0.8).abs() < 1e-6 && (i.uar[1] - 0.8).abs() < 1e-6);
        assert!(i.gender_gap[0].abs() < 1e-6 && i.gender_gap[1].abs() < 1e-6);

        // Same pooled figures per gender (F 0.9, M 0.7) from alike or from unlike speakers.
        let alike = predictions_of(&[9, 9, 9, 7, 7, 7], &genders).score();
        let unlike = predictions_of(&[10, 10, 7, 10, 7, 4], &genders).score();
        for s in [&alike, &unlike] {
            assert!((s.per_gender["F"] - 0.9).abs() < 1e-6, "{:?}", s.per_gender);
            assert!((s.gender_gap - 0.2).abs() < 1e-6);
            let i = s.interval.as_ref().unwrap();
            assert!(i.uar[0] <= s.uar && s.uar <= i.uar[1]);
            assert!(i.gender_gap[0] <= s.gender_gap && s.gender_gap <= i.gender_gap[1]);
        }
        // Only the unlike speakers leave room for doubt, and enough for a reversed gap.
        let (a, u) = (alike.interval.unwrap(), unlike.interval.unwrap());
        assert!((a.gender_gap[1] - a.gender_gap[0]).abs() < 1e-6);
        assert!(u.gender_gap[0] < 0.0 && u.gender_gap[1] > 0.35, "{u:?}");
        assert!(u.uar[1] - u.uar[0] > 0.1, "{u:?}");

        // One speaker per gender: nothing to resample.
        assert!(predictions_of(&[9, 7], &["F", "M"])
            .score()
            .interval
            .is_none());
    }

    /// Speakers whose ids alternate gender (as RAVDESS's do) land in folds that each hold
    /// out both genders; round robin by id alone would give single-gender folds.
    #[test]
    fn folds_mix_genders() {
        let data = synthetic(8);
        let set: Vec<&ClipData> = data.iter().collect();
        let folds = speaker_folds(&[set], 4);
        assert_eq!(folds.len(), 8);
        for f in 0..4 {
            let mut genders: Vec<&str> = data
                .iter()
                .filter(|c| folds[&c.speaker] == f)
                .map(|c| c.gender.as_str())
                .collect();
            genders.sort();
            genders.dedup();
            assert_eq!(genders, ["F", "M"], "fold {f}");
        }
    }

    /// Another corpus trained beside one leaves that one's folds as they were alone.
    #[test]
    fn another_corpus_leaves_the_folds_as_they_were() {
        let data = synthetic(8);
        let alone: Vec<&ClipData> = data.iter().collect();
        let before = speaker_folds(&[alone], 6);
        let mut readers = synthetic(5);
        for c in &mut readers {
            c.corpus = "readers".into();
            c.speaker = format!("readers/{}", c.speaker);
            c.gender = "F".into();
        }
        let both: Vec<&ClipData> = data.iter().chain(readers.iter()).collect();
        let after = speaker_folds(&[both], 6);
        for (s, f) in &before {
            assert_eq!(after[s], *f, "{s}");
        }
        assert_eq!(after.len(), before.len() + 5);
    }

    /// The spread over orders is the labelled corpus's own: readers scored beside it (one
    /// class, many voices) are left out of it.
    #[test]
    fn order_spread_leaves_out_the_neutral_corpus() {
        let mut data = synthetic(8);
        for c in &mut data {
            c.corpus = "acted".into();
            c.speaker = format!("acted/{}", c.speaker);
        }
        let mut readers = synthetic(4);
        for c in &mut readers {
            c.corpus = "readers".into();
            c.speaker = format!("readers/{}", c.speaker);
            c.class = 0;
            c.assumed_neutral = true;
        }
        let set: Vec<&ClipData> = data.iter().chain(readers.iter()).collect();
        let cfg = TrainConfig {
            eval_orders: 2,
            ..four_fold_config(1, 80)
        };
        let r = cross_validate(&[set], &["clean"], &[], &cfg);
        let spread = &r.order_spread["clean"]["running"];
        assert_eq!(spread.uar.len(), 2);
        // The temperature moves no top label: the first order is the acted corpus's figure.
        let acted = &r.by_corpus["clean"]["acted"]["running"];
        assert!(
            (spread.uar[0] - acted.uar).abs() < 1e-6,
            "{spread:?} {acted:?}"
        );
        assert!((spread.gender_gap[0] - acted.gender_gap).abs() < 1e-6);
        let pooled = &r.results["clean"]["running"];
        assert!(
            (pooled.uar - acted.uar).abs() > 1e-6,
            "the readers count in the pooled figure"
        );
        // One labelled corpus: no per-corpus spread.
        assert!(r.order_spread_by_corpus.is_empty());
    }

    #[test]
    fn assumed_neutral_rows_take_their_share_of_the_neutral_class() {
        let y = [0, 0, 2, 0, 0, 0];
        let assumed = [false, false, false, true, true, true];
        let mut w = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5];
        share_assumed_neutral(&mut w, &y, &assumed, 0.25);
        let taken: f32 = w[3..].iter().sum();
        assert!((taken / (taken + 2.0) - 0.25).abs() < 1e-6, "{w:?}");
        assert_eq!(w[..3], [1.0, 1.0, 1.0]);
        share_assumed_neutral(&mut w, &y, &assumed, 0.0);
        assert_eq!(w[3..], [0.0, 0.0, 0.0]);
    }

    /// Speaker weighting: a speaker with many clips of a misleading pattern outvotes several
    /// with fewer clips each less than when every clip weighs the same.
    #[test]
    fn speaker_weighting_keeps_one_loud_speaker_from_dominating() {
        let mut data = synthetic(6);
        // One more speaker, 20 times over, whose feature 0 rises for class 1 instead of 0.
        let mut rng = SplitMix64::new(9);
        for k in 0..240 {
            let class = k % 2;
            let mut v = [f32::NAN; N_VOICE];
            v[0] = if class == 1 { 2.5 } else { 0.0 } + 0.5 * rng.normal();
            v[1] = if class == 0 { 2.5 } else { 0.0 } + 0.5 * rng.normal();
            data.push(ClipData {
                speaker: "loud".into(),
                gender: "F".into(),
                class,
                corpus: "big".into(),
                assumed_neutral: false,
                utterances: vec![v],
            });
        }
        let set: Vec<&ClipData> = data.iter().collect();
        let fit_with = |weighting| {
            let cfg = TrainConfig {
                permutations: 0,
                calm_first: 0,
                weighting,
                fit: FitConfig {
                    iterations: 80,
                    ..TrainConfig::default().fit
                },
                ..TrainConfig::default()
            };
            let m = fit_voice(std::slice::from_ref(&set), &cfg);
            // Weight of feature 0 toward class 0 (the six regular speakers' pattern).
            m.softmax.weights[0][0] - m.softmax.weights[1][0]
        };
        let (by_clip, by_speaker) = (fit_with(Weighting::Clip), fit_with(Weighting::Speaker));
        assert!(by_speaker > by_clip + 0.05, "{by_clip} {by_speaker}");
    }

    #[test]
    fn dimensions_rank_within_speakers() {
        let mut p = Predictions::default();
        // Speaker a: arousal follows the labels exactly; b: exactly reversed on arousal.
        for (s, flip) in [("a", false), ("b", true)] {
            for c in [0usize, 2, 3] {
                let mut probs = vec![0.0; N_CLASSES];
                let guess = match (c, flip) {
                    (_, false) => c,
                    (2, true) => 3,
                    (3, true) => 2,
                    _ => 0,
                };
                probs[guess] = 1.0;
                p.push(c, probs, "F", s);
            }
        }
        let d = p.score().dimensions.unwrap();
        assert_eq!(d.speakers, 2);
        assert!(d.arousal_spearman.abs() < 1e-6, "{d:?}");
        let only_a = p.filter(|s| s == "a").score().dimensions.unwrap();
        assert!((only_a.arousal_spearman - 1.0).abs() < 1e-6);
        assert!((only_a.valence_spearman - 1.0).abs() < 1e-6);
    }

    #[test]
    fn leave_one_corpus_out_scores_each_labelled_corpus_unseen() {
        let mut data = synthetic(8);
        for c in data.iter_mut() {
            let n: usize = c.speaker[1..].parse().unwrap();
            c.corpus = if n < 4 { "one" } else { "two" }.into();
            c.speaker = format!("{}/{}", c.corpus, c.speaker);
        }
        let set: Vec<&ClipData> = data.iter().collect();
        let cfg = TrainConfig {
            permutations: 1,
            calm_first: 0,
            fit: FitConfig {
                iterations: 80,
                ..TrainConfig::default().fit
            },
            ..TrainConfig::default()
        };
        let r = leave_one_corpus_out(std::slice::from_ref(&set), &["clean"], &cfg, 1.0);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["one", "two"]);
        let s = &r["one"]["clean"]["running"];
        assert_eq!(s.n, 4 * 30);
        assert!(s.per_speaker.keys().all(|k| k.starts_with("one/")));
        assert!(s.uar > 0.3, "{s:?}");
        // One labelled corpus: nothing to leave out.
        let one: Vec<&ClipData> = set.into_iter().filter(|c| c.corpus == "one").collect();
        assert!(leave_one_corpus_out(&[one], &["clean"], &cfg, 1.0).is_empty());
    }

    #[test]
    fn calm_first_order_puts_neutral_clips_first() {
        let classes = [2, 0, 1, 0, 4, 3, 0, 2];
        let o = eval_calm_first_order(&classes, 1, "actor01");
        assert_eq!(o, eval_calm_first_order(&classes, 1, "actor01"));
        let mut s = o.clone();
        s.sort();
        assert_eq!(s, (0..classes.len()).collect::<Vec<_>>());
        let labels: Vec<usize> = o.iter().map(|&i| classes[i]).collect();
        assert!(labels[..3].iter().all(|&c| c == 0), "{labels:?}");
        assert!(labels[3..].iter().all(|&c| c != 0), "{labels:?}");
        // Both groups are shuffled: some seed reorders each.
        let orders: Vec<Vec<usize>> = (0..20)
            .map(|seed| eval_calm_first_order(&classes, seed, "actor01"))
            .collect();
        assert!(orders.iter().any(|o| o[..3] != orders[0][..3]));
        assert!(orders.iter().any(|o| o[3..] != orders[0][3..]));
    }

    #[test]
    fn running_order_is_a_fixed_permutation() {
        let a = running_order(20, 1, "actor01");
        assert_eq!(a, running_order(20, 1, "actor01"));
        assert_ne!(a, running_order(20, 1, "actor02"));
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..20).collect::<Vec<_>>());
    }
}
