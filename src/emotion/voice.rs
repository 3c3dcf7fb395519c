//! The voice model: speaker-normalised voice features into a softmax-linear classifier.
//!
//! # Speaker normalisation
//!
//! Each feature is compared with the speaker's own running baseline (the earlier utterances
//! of that channel in the call), shrunk toward the training population so that the first
//! utterance, with no baseline, still gets a sensible score:
//!
//! ```text
//! mean = (n·m_speaker + k·m_population) / (n + k)
//! var  = (SS_speaker + k·sd_population²) / (n + k)
//! z    = clamp((x − mean) / sqrt(var), ±Z_CLAMP)      (NaN features → 0)
//! ```
//!
//! with `n` earlier utterances, `SS` their sum of squared deviations and `k` the model's
//! `prior_weight`. With no baseline, `z` is the population z-score; as the call goes on it
//! becomes the speaker's own. Training simulates exactly this on sequences of each training
//! speaker's clips, shuffled and calm first (see [`crate::train::voice`]), so the model learns from
//! the inputs it will see.
//!
//! # Calibration to a line
//!
//! A model file may carry a [`Calibration`]: the mean and SD of every feature over calm
//! speech of the line it serves (`callmood calibrate`), and the same over the training's
//! own neutral clips ([`NeutralReference`], written by `callmood train`). Every utterance's
//! features are then mapped, feature by feature, from the line's calm distribution onto the
//! training's neutral one before anything else sees them ([`VoiceModel::input`]):
//!
//! ```text
//! x' = m_neutral + (x − m_calm) · sd_neutral / sd_calm
//! ```
//!
//! so a calm voice of that line (its microphones, levels and codecs) reaches the model where
//! the training's calm voices sat. Without a calibration the map is the identity. Why and
//! what it costs are measured in models/README.md ("Calm-speech calibration").
//!
//! # The encoder
//!
//! Part of the vector is the pooled output of Whisper's encoder ([`super::embed`]); a model
//! file names the GGML file whose weights it was trained on (relative to the model file's
//! own directory) and their fingerprint, and [`VoiceModel::load`] loads those weights and
//! refuses any others.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::embed::Encoder;
use super::features::{is_embedding, voice_feature_names, VoiceVector, N_VOICE};
use super::linear::Softmax;
use super::{CLASSES, N_CLASSES};

/// Format tag of voice model files. `/3`: the encoder numbers are taken from level-normalised
/// audio ([`super::embed::TARGET_RMS`]), so `/2` files (unnormalised) are refused.
pub const VOICE_MODEL_FORMAT: &str = "callmood-voice-emotion/3";
/// Default location of the shipped voice model.
pub const DEFAULT_VOICE_MODEL: &str = "models/emotion-voice.json";
/// z-scores are clamped to this magnitude: one wild feature cannot swamp the rest.
pub const Z_CLAMP: f32 = 6.0;

/// A speaker's running statistics of every voice feature (Welford, NaN skipped).
#[derive(Clone, Debug)]
pub struct SpeakerBaseline {
    n: [u32; N_VOICE],
    mean: [f64; N_VOICE],
    ss: [f64; N_VOICE],
    utterances: u32,
}

impl Default for SpeakerBaseline {
    fn default() -> Self {
        Self {
            n: [0; N_VOICE],
            mean: [0.0; N_VOICE],
            ss: [0.0; N_VOICE],
            utterances: 0,
        }
    }
}

impl SpeakerBaseline {
    /// Adds an utterance (after it has been scored).
    pub fn push(&mut self, x: &VoiceVector) {
        self.utterances += 1;
        for (j, &v) in x.iter().enumerate() {
            if v.is_finite() {
                self.n[j] += 1;
                let d = v as f64 - self.mean[j];
                self.mean[j] += d / self.n[j] as f64;
                self.ss[j] += d * (v as f64 - self.mean[j]);
            }
        }
    }

    /// Utterances in the baseline.
    pub fn utterances(&self) -> u32 {
        self.utterances
    }
}

/// Where a model came from and how it was measured (written by `callmood train`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Corpus the model was trained on.
    pub corpus: String,
    /// Licence the model inherits from its data.
    pub licence: String,
    /// The command that produced the file.
    pub command: String,
    /// Clips and speakers used.
    pub clips: usize,
    /// Number of speakers.
    pub speakers: usize,
    /// Conditions the training data was seen in (`clean`, `telephony`).
    pub conditions: Vec<String>,
}

/// The encoder weights a model was trained with (module docs, "The encoder").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EncoderSpec {
    /// The Whisper GGML file, relative to the model file's directory, or absolute.
    pub file: String,
    /// [`Encoder::fingerprint`] of the weights the model was trained with.
    pub fingerprint: String,
}

/// A loaded encoder shared by every call; equal when the fingerprints are.
#[derive(Clone, Debug)]
pub struct SharedEncoder(pub Arc<Encoder>);

impl PartialEq for SharedEncoder {
    fn eq(&self, other: &Self) -> bool {
        self.0.fingerprint() == other.0.fingerprint()
    }
}

/// A trained voice model (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoiceModel {
    /// Always [`VOICE_MODEL_FORMAT`].
    pub format: String,
    /// Class names, in [`CLASSES`] order.
    pub classes: Vec<String>,
    /// Feature names, in [`voice_feature_names`] order.
    pub features: Vec<String>,
    /// Population mean of each raw feature (the prior of the speaker baseline).
    pub population_mean: Vec<f32>,
    /// Population SD of each raw feature.
    pub population_sd: Vec<f32>,
    /// Weight `k` of the population prior, in utterances.
    pub prior_weight: f32,
    /// The classifier over the z-scores.
    pub softmax: Softmax,
    /// Provenance.
    pub provenance: Provenance,
    /// Cross-validated figures measured by `callmood train` (free-form JSON).
    #[serde(default)]
    pub evaluation: serde_json::Value,
    /// The encoder weights the embedding part was trained with.
    pub encoder: EncoderSpec,
    /// Those weights, once loaded ([`VoiceModel::load`] or [`VoiceModel::with_encoder`]);
    /// without them the embedding part reads as "at the baseline".
    #[serde(skip)]
    pub encoder_weights: Option<SharedEncoder>,
    /// How far the training utterances' sound lay from the training population
    /// ([`VoiceModel::unfamiliarity`]); absent in older files: every voice reads as familiar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub familiarity: Option<Familiarity>,
    /// The training's neutral clips' statistics per condition (absent in older files, which
    /// cannot be calibrated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neutral: Vec<NeutralReference>,
    /// The line this model is calibrated to ([`VoiceModel::input`]); None: not calibrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// Confidence that falls with unfamiliarity ([`UnfamiliarTemperature`]); None: the
    /// temperature is the same for every voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfamiliar_temperature: Option<UnfamiliarTemperature>,
}

/// On a voice unlike the training's the model says less: its logits are divided by
/// `T · (1 + v · (a + cold · w))`, with `v = max(0, u − floor) / (1 − floor)`, `u` the
/// utterance's [`VoiceModel::unfamiliarity`], and `w = prior_weight / (prior_weight + n)`
/// the population's share of the speaker baseline after `n` utterances (1 on a cold
/// start). Dividing all five by one positive number keeps their order, so the top label
/// never changes; only `top_confidence` and the probabilities do. Fitted by `callmood
/// calibrate-confidence` (models/README.md, "Confidence that falls with unfamiliarity").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnfamiliarTemperature {
    /// How much a wholly unfamiliar voice's temperature grows (0: not at all).
    pub a: f32,
    /// How much more it grows while the speaker baseline is still the population's (0 in
    /// files written before this term: the same at every point of a call).
    #[serde(default)]
    pub cold: f32,
    /// Unfamiliarity below which the temperature stays as it is (0..1).
    pub floor: f32,
    /// What `a` was fitted on, for the record.
    pub fitted_on: String,
}

impl UnfamiliarTemperature {
    /// The factor the temperature is multiplied by at unfamiliarity `u`, with `population`
    /// the population's share of the speaker baseline (1 on a cold start, toward 0 as the
    /// baseline fills: [`VoiceModel::population_share`]).
    pub fn scale(&self, u: f32, population: f32) -> f32 {
        let over = (u.clamp(0.0, 1.0) - self.floor).max(0.0) / (1.0 - self.floor);
        1.0 + over * (self.a + self.cold * population.clamp(0.0, 1.0))
    }

    fn validate(&self) -> Result<(), String> {
        let slope = |v: f32| v.is_finite() && v >= 0.0;
        if !(slope(self.a) && slope(self.cold) && (0.0..1.0).contains(&self.floor)) {
            return Err(format!(
                "unfamiliar_temperature: a {} and cold {} must be ≥ 0 and floor {} within 0..1",
                self.a, self.cold, self.floor
            ));
        }
        Ok(())
    }
}

/// Where the training utterances lay by [`embedding_distance`]: a voice at `median` or
/// closer is familiar (unfamiliarity 0), one at `q99` or beyond wholly unfamiliar (1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Familiarity {
    /// Median distance of the training utterances.
    pub median: f32,
    /// 99th percentile of the training utterances' distances.
    pub q99: f32,
}

impl Familiarity {
    /// The quantiles of the distances of training utterances (NaN-free); None when there
    /// are too few to say (under 100) or they do not spread.
    pub fn of(mut distances: Vec<f32>) -> Option<Self> {
        distances.retain(|d| d.is_finite());
        if distances.len() < 100 {
            return None;
        }
        distances.sort_by(f32::total_cmp);
        let at = |q: f32| distances[((distances.len() - 1) as f32 * q).round() as usize];
        let (median, q99) = (at(0.5), at(0.99));
        (q99 > median).then_some(Self { median, q99 })
    }
}

/// Mean and SD of every feature over a set of utterances (NaN skipped), one condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// Condition or line the utterances were heard in (`clean`, `telephony`).
    pub condition: String,
    /// Utterances the statistics are over.
    pub utterances: usize,
    /// Mean of each feature ([`voice_feature_names`] order).
    pub mean: Vec<f32>,
    /// SD of each feature (floored, positive).
    pub sd: Vec<f32>,
}

/// The training speakers' neutral (and calm) clips' [`FeatureStats`], one per condition:
/// where a calibration maps a line's calm speech to.
pub type NeutralReference = FeatureStats;

impl FeatureStats {
    fn validate(&self, what: &str) -> Result<(), String> {
        if self.mean.len() != N_VOICE || self.sd.len() != N_VOICE {
            return Err(format!("{what} must have {N_VOICE} means and SDs"));
        }
        let ok = self.mean.iter().all(|v| v.is_finite())
            && self.sd.iter().all(|v| v.is_finite() && *v > 0.0);
        if !ok {
            return Err(format!(
                "{what}: a mean or SD is not finite or an SD is not positive"
            ));
        }
        Ok(())
    }
}

/// A map of one line's calm speech onto the training's neutral speech (module docs,
/// "Calibration to a line"), written by `callmood calibrate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// What the calm speech was (the directories given to `callmood calibrate`).
    pub source: String,
    /// The line's calm speech.
    pub calm: FeatureStats,
    /// The training's neutral speech it is mapped onto (its `condition` names which).
    pub neutral: NeutralReference,
}

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("cannot read emotion model {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("emotion model {path} is not a valid model file: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A voice-only score of one utterance.
#[derive(Clone, Debug, PartialEq)]
pub struct VoiceScore {
    /// Calibrated class probabilities, [`CLASSES`] order.
    pub probs: [f32; N_CLASSES],
    /// The normalised inputs the classifier saw.
    pub z: VoiceVector,
    /// The baseline mean each feature was compared with (raw units).
    pub reference: VoiceVector,
    /// The raw features.
    pub raw: VoiceVector,
    /// Earlier utterances in the speaker's baseline.
    pub baseline_n: u32,
    /// 0..1: how unlike the training speech the utterance sounds.
    pub unfamiliar: f32,
}

impl VoiceScore {
    /// The voice-only `Emotion` (the fast-path estimate), with its unfamiliarity.
    pub fn emotion(&self) -> crate::proto::Emotion {
        let mut e = super::voice_emotion(&self.probs);
        e.unfamiliarity = self.unfamiliar;
        e
    }
}

/// How far an utterance's sound lies from a population: the root mean square of the
/// population z-scores (each clamped to ±[`Z_CLAMP`]) of its Whisper-encoder features,
/// which carry the voice, microphone, line and room rather than the emotion alone. NaN when
/// the utterance has no encoder features. Measured on held-out RAVDESS actors against
/// ordinary read speech, it tells them apart with ROC AUC 0.96–0.97 (models/README.md).
pub fn embedding_distance(x: &VoiceVector, mean: &[f32], sd: &[f32]) -> f32 {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for j in (0..N_VOICE).filter(|&j| is_embedding(j)) {
        let (v, m, s) = (x[j], mean[j], sd[j]);
        if v.is_finite() && s > 0.0 {
            let z = ((v - m) / s).clamp(-Z_CLAMP, Z_CLAMP) as f64;
            sum += z * z;
            n += 1;
        }
    }
    if n == 0 {
        f32::NAN
    } else {
        (sum / n as f64).sqrt() as f32
    }
}

impl VoiceModel {
    /// A model over this build's features and classes, with no provenance, figures or
    /// encoder reference yet (training fills those in).
    pub fn new(
        population_mean: Vec<f32>,
        population_sd: Vec<f32>,
        prior_weight: f32,
        softmax: Softmax,
    ) -> Self {
        Self {
            format: VOICE_MODEL_FORMAT.into(),
            classes: CLASSES.iter().map(|s| s.to_string()).collect(),
            features: voice_feature_names().to_vec(),
            population_mean,
            population_sd,
            prior_weight,
            softmax,
            provenance: Provenance::default(),
            evaluation: serde_json::Value::Null,
            encoder: EncoderSpec::default(),
            encoder_weights: None,
            familiarity: None,
            neutral: Vec::new(),
            calibration: None,
            unfamiliar_temperature: None,
        }
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let invalid = |reason: String| ModelError::Invalid {
            path: path.display().to_string(),
            reason,
        };
        let model: Self = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        model.validate().map_err(invalid)?;
        let weights = model.encoder_file(path);
        let encoder = Encoder::load(&weights).map_err(|e| {
            invalid(format!(
                "it needs the Whisper encoder weights in {}: {e} (models/fetch.sh makes them)",
                weights.display()
            ))
        })?;
        model.with_encoder(Arc::new(encoder)).map_err(invalid)
    }

    /// Where the encoder weights of this model, read from `path`, are: the file names them
    /// relative to its own directory, or absolutely.
    pub fn encoder_file(&self, path: &Path) -> std::path::PathBuf {
        let file = Path::new(&self.encoder.file);
        if file.is_absolute() {
            file.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new(".")).join(file)
        }
    }

    /// Attaches loaded encoder weights; refused unless they are the ones the model was
    /// trained with.
    pub fn with_encoder(mut self, encoder: Arc<Encoder>) -> Result<Self, String> {
        if encoder.fingerprint() != self.encoder.fingerprint {
            return Err(format!(
                "encoder weights {} are {}, but the model was trained with {}",
                self.encoder.file,
                encoder.fingerprint(),
                self.encoder.fingerprint
            ));
        }
        self.encoder_weights = Some(SharedEncoder(encoder));
        Ok(self)
    }

    /// The loaded encoder, if any.
    pub fn encoder(&self) -> Option<&Arc<Encoder>> {
        self.encoder_weights.as_ref().map(|e| &e.0)
    }

    /// Checks the format tag, the class and feature lists against this build, and shapes.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != VOICE_MODEL_FORMAT {
            return Err(format!(
                "format `{}`, expected `{VOICE_MODEL_FORMAT}`",
                self.format
            ));
        }
        if self.classes != CLASSES {
            return Err(format!("classes {:?}, expected {CLASSES:?}", self.classes));
        }
        if self.features != voice_feature_names() {
            return Err(
                "feature list differs from this build's (retrain with `callmood train`)".into(),
            );
        }
        if self.population_mean.len() != N_VOICE || self.population_sd.len() != N_VOICE {
            return Err(format!("population statistics must have {N_VOICE} values"));
        }
        let ok = self.population_mean.iter().all(|v| v.is_finite())
            && self.population_sd.iter().all(|v| v.is_finite() && *v > 0.0)
            && self.prior_weight.is_finite()
            && self.prior_weight > 0.0;
        if !ok {
            return Err("population statistics or prior weight out of range".into());
        }
        for n in &self.neutral {
            n.validate(&format!("neutral reference `{}`", n.condition))?;
        }
        if let Some(c) = &self.calibration {
            c.calm.validate("calibration's calm statistics")?;
            c.neutral.validate("calibration's neutral statistics")?;
        }
        if let Some(t) = &self.unfamiliar_temperature {
            t.validate()?;
        }
        self.softmax.validate(N_VOICE, N_CLASSES)
    }

    /// A line for the start of `serve` and `analyze` when this model, loaded from `path`,
    /// could be calibrated to the line and is not: a line whose calm voices sound unlike the
    /// training's can read them as angry (a model trained on RAVDESS alone read 4 in 10
    /// ordinary calm readers as angry; models/README.md, "Calm-speech calibration").
    pub fn uncalibrated_note(&self, path: &std::path::Path) -> Option<String> {
        (self.calibration.is_none() && !self.neutral.is_empty()).then(|| {
            format!(
                "voice emotion model {} not calibrated to this line (calm voices unlike the \
                 training's can read as angry); if calm callers read as angry, calibrate it \
                 from calm calls of the line: `callmood calibrate --model {} --calm-calls DIR \
                 --out FILE`, then --emotion-model FILE (README, Calibrating to a line)",
                path.display(),
                path.display()
            )
        })
    }

    /// What the model reads of an utterance's raw features: mapped by the model's
    /// [`Calibration`] (module docs), or the features as they are without one. NaN stays NaN.
    /// Both [`VoiceModel::score`] and the speaker's baseline take this, not the raw vector.
    pub fn input(&self, x: &VoiceVector) -> VoiceVector {
        let Some(c) = &self.calibration else {
            return *x;
        };
        let mut out = *x;
        for (j, v) in out.iter_mut().enumerate() {
            let (mc, sc) = (c.calm.mean[j], c.calm.sd[j]);
            let (mn, sn) = (c.neutral.mean[j], c.neutral.sd[j]);
            *v = mn + (*v - mc) * (sn / sc);
        }
        out
    }

    /// The neutral reference of `condition`, if the model file has one.
    pub fn neutral_reference(&self, condition: &str) -> Option<&NeutralReference> {
        self.neutral.iter().find(|n| n.condition == condition)
    }

    /// Normalises raw features against a speaker baseline (module docs); returns the
    /// z-scores and the reference mean of each feature.
    pub fn normalise(&self, x: &VoiceVector, b: &SpeakerBaseline) -> (VoiceVector, VoiceVector) {
        let k = self.prior_weight as f64;
        let mut z = [0.0f32; N_VOICE];
        let mut reference = [0.0f32; N_VOICE];
        for j in 0..N_VOICE {
            let (mu, sd) = (self.population_mean[j] as f64, self.population_sd[j] as f64);
            let n = b.n[j] as f64;
            let mean = (n * b.mean[j] + k * mu) / (n + k);
            let var = (b.ss[j] + k * sd * sd) / (n + k);
            reference[j] = mean as f32;
            let v = x[j];
            z[j] = if v.is_finite() && var > 0.0 {
                (((v as f64 - mean) / var.sqrt()) as f32).clamp(-Z_CLAMP, Z_CLAMP)
            } else {
                0.0
            };
        }
        (z, reference)
    }

    /// Scores one utterance's [`VoiceModel::input`] against the speaker's baseline (which the
    /// caller then updates with [`SpeakerBaseline::push`] of the same input), with how
    /// unfamiliar the voice sounds
    /// ([`VoiceModel::unfamiliarity`]). The top label does not depend on it (pulling the
    /// probabilities toward a typical voice's answer was tried and cost more in-domain UAR
    /// than its rule allowed, models/README.md); with an [`UnfamiliarTemperature`] the
    /// confidence does.
    pub fn score(&self, x: &VoiceVector, b: &SpeakerBaseline) -> VoiceScore {
        let (z, reference) = self.normalise(x, b);
        let unfamiliar = self.unfamiliarity(x);
        let scale = self.unfamiliar_temperature.as_ref().map_or(1.0, |t| {
            t.scale(unfamiliar, self.population_share(b.utterances))
        });
        let p = self.softmax.probs_scaled(&z, scale);
        let mut probs = [0.0; N_CLASSES];
        probs.copy_from_slice(&p[..N_CLASSES]);
        VoiceScore {
            probs,
            z,
            reference,
            raw: *x,
            baseline_n: b.utterances,
            unfamiliar,
        }
    }

    /// The population's share of a speaker baseline built from `n` utterances:
    /// `prior_weight / (prior_weight + n)`, 1 on a cold start.
    pub fn population_share(&self, n: u32) -> f32 {
        let k = self.prior_weight.max(0.0);
        if k + n as f32 > 0.0 {
            k / (k + n as f32)
        } else {
            0.0
        }
    }

    /// 0..1: how unlike the training speech this utterance sounds, from
    /// [`embedding_distance`] against the model's [`Familiarity`] (0 without one, or
    /// without the encoder's features).
    pub fn unfamiliarity(&self, x: &VoiceVector) -> f32 {
        let Some(f) = &self.familiarity else {
            return 0.0;
        };
        let d = embedding_distance(x, &self.population_mean, &self.population_sd);
        if !d.is_finite() {
            return 0.0;
        }
        ((d - f.median) / (f.q99 - f.median)).clamp(0.0, 1.0)
    }

    /// Each feature's push on the log-probability of `class`: `(w_class − Σ p_c w_c)·z`,
    /// the exact gradient-times-input of a softmax-linear model (it sums, with the bias
    /// terms, to the log-odds of `class` against the mix).
    pub fn contributions(&self, s: &VoiceScore, class: usize) -> VoiceVector {
        let w = &self.softmax.weights;
        let t = self.softmax.temperature.max(1e-3);
        let mut out = [0.0f32; N_VOICE];
        for (j, o) in out.iter_mut().enumerate() {
            let mix: f32 = (0..N_CLASSES).map(|c| s.probs[c] * w[c][j]).sum();
            *o = (w[class][j] - mix) * s.z[j] / t;
        }
        out
    }
}

/// A model with the given weights over features of population mean 10 and SD 2 (tests).
#[cfg(test)]
pub(crate) fn toy_model(weights: Vec<Vec<f32>>) -> VoiceModel {
    let softmax = Softmax {
        weights,
        bias: vec![0.0; N_CLASSES],
        temperature: 1.0,
    };
    VoiceModel::new(vec![10.0; N_VOICE], vec![2.0; N_VOICE], 2.0, softmax)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose only non-zero weight reads the first feature.
    fn toy() -> VoiceModel {
        let mut weights = vec![vec![0.0; N_VOICE]; N_CLASSES];
        weights[2][0] = 2.0; // higher f0 → angry
        toy_model(weights)
    }

    #[test]
    fn unfamiliarity_grows_with_the_distance_of_the_encoder_features() {
        let mut m = toy();
        let voice_at = |z: f32| {
            let mut x = [10.0f32; N_VOICE];
            for (j, v) in x.iter_mut().enumerate() {
                if is_embedding(j) {
                    *v = 10.0 + 2.0 * z;
                }
            }
            x
        };
        assert_eq!(
            m.unfamiliarity(&voice_at(3.0)),
            0.0,
            "no familiarity figures: 0"
        );
        m.familiarity = Familiarity::of((0..1000).map(|i| 1.0 + i as f32 / 1000.0).collect());
        let f = m.familiarity.clone().unwrap();
        assert!(
            (f.median - 1.5).abs() < 0.01 && (f.q99 - 1.99).abs() < 0.01,
            "{f:?}"
        );
        assert!(
            (embedding_distance(&voice_at(1.2), &m.population_mean, &m.population_sd) - 1.2).abs()
                < 1e-5
        );
        assert_eq!(m.unfamiliarity(&voice_at(1.0)), 0.0);
        assert!((m.unfamiliarity(&voice_at(1.745)) - 0.5).abs() < 0.02);
        assert_eq!(m.unfamiliarity(&voice_at(-4.0)), 1.0);
        assert_eq!(
            m.unfamiliarity(&[f32::NAN; N_VOICE]),
            0.0,
            "no encoder features: 0"
        );
        // The signal is reported, not applied: the probabilities stay the model's own.
        let b = SpeakerBaseline::default();
        let s = m.score(&voice_at(4.0), &b);
        assert_eq!(s.unfamiliar, 1.0);
        m.familiarity = None;
        assert_eq!(m.score(&voice_at(4.0), &b).probs, s.probs);
        assert!(Familiarity::of(vec![1.0; 99]).is_none(), "too few to say");
        assert!(Familiarity::of(vec![1.0; 500]).is_none(), "no spread");
    }

    /// With an [`UnfamiliarTemperature`], an unfamiliar voice's confidence falls and its
    /// top label stays; a voice under the floor is scored as before.
    #[test]
    fn an_unfamiliar_voice_is_less_sure_of_the_same_answer() {
        let mut m = toy();
        m.familiarity = Familiarity::of((0..1000).map(|i| 1.0 + i as f32 / 1000.0).collect());
        let voice = |z_enc: f32, f0: f32| {
            let mut x = [10.0f32; N_VOICE];
            for (j, v) in x.iter_mut().enumerate() {
                if is_embedding(j) {
                    *v = 10.0 + 2.0 * z_enc;
                }
            }
            x[0] = f0;
            x
        };
        let b = SpeakerBaseline::default();
        let (familiar, strange) = (voice(1.0, 16.0), voice(4.0, 16.0));
        let before = [m.score(&familiar, &b), m.score(&strange, &b)];
        m.unfamiliar_temperature = Some(UnfamiliarTemperature {
            a: 1.5,
            cold: 0.0,
            floor: 0.25,
            fitted_on: "test".into(),
        });
        m.validate().unwrap();
        let after = [m.score(&familiar, &b), m.score(&strange, &b)];
        let top = |p: &[f32; N_CLASSES]| {
            (0..N_CLASSES)
                .max_by(|&i, &j| p[i].total_cmp(&p[j]))
                .unwrap()
        };
        assert_eq!(
            after[0].probs, before[0].probs,
            "under the floor: unchanged"
        );
        assert_eq!(top(&after[1].probs), 2, "still angry");
        assert_eq!(top(&before[1].probs), 2);
        assert!(after[1].probs[2] < before[1].probs[2] - 0.1, "{after:?}");
        // wholly unfamiliar: the temperature is 1 + a times what it was
        let t = m.unfamiliar_temperature.as_ref().unwrap();
        assert_eq!((t.scale(0.25, 1.0), t.scale(1.0, 1.0)), (1.0, 2.5));
        m.unfamiliar_temperature.as_mut().unwrap().floor = 1.0;
        assert!(m.validate().is_err(), "a floor of 1 is refused");
    }

    /// The cold-start term: an unfamiliar voice heard cold says less than the same voice
    /// once its speaker baseline has filled; a familiar voice is scored as before either
    /// way; a file without the term reads as 0.
    #[test]
    fn an_unfamiliar_voice_heard_cold_says_less_still() {
        let mut m = toy();
        m.familiarity = Familiarity::of((0..1000).map(|i| 1.0 + i as f32 / 1000.0).collect());
        let t = UnfamiliarTemperature {
            a: 0.75,
            cold: 2.0,
            floor: 0.25,
            fitted_on: "test".into(),
        };
        assert_eq!(t.scale(1.0, 1.0), 3.75);
        assert_eq!(t.scale(1.0, 0.0), 1.75);
        assert_eq!(t.scale(0.2, 1.0), 1.0, "under the floor");
        assert_eq!(m.population_share(0), 1.0);
        assert!((m.population_share(12) - m.prior_weight / (m.prior_weight + 12.0)).abs() < 1e-6);
        m.unfamiliar_temperature = Some(t);
        m.validate().unwrap();
        let mut x = [10.0f32; N_VOICE];
        for (j, v) in x.iter_mut().enumerate() {
            if is_embedding(j) {
                *v = 18.0;
            }
        }
        x[0] = 16.0;
        let cold = m.score(&x, &SpeakerBaseline::default());
        let mut warm_baseline = SpeakerBaseline::default();
        let mut other = x;
        other[0] = 10.0;
        for _ in 0..40 {
            warm_baseline.push(&other);
        }
        let warm = m.score(&x, &warm_baseline);
        assert!(cold.unfamiliar > 0.9 && warm.unfamiliar > 0.9);
        let top = |p: &[f32; N_CLASSES]| p.iter().copied().fold(0.0, f32::max);
        // the same push from the same voice, read against a fuller baseline
        assert!(top(&cold.probs) < top(&warm.probs), "{cold:?} {warm:?}");
        let json = r#"{"a": 0.75, "floor": 0.25, "fitted_on": "old"}"#;
        let old: UnfamiliarTemperature = serde_json::from_str(json).unwrap();
        assert_eq!(old.cold, 0.0);
    }

    #[test]
    fn cold_start_uses_the_population_then_the_speaker() {
        let m = toy();
        m.validate().unwrap();
        let mut x = [f32::NAN; N_VOICE];
        x[0] = 14.0;
        let mut b = SpeakerBaseline::default();
        let (z, r) = m.normalise(&x, &b);
        assert!((z[0] - 2.0).abs() < 1e-5 && r[0] == 10.0);
        assert_eq!(z[1], 0.0, "NaN reads as at the baseline");
        // A speaker who always sits at 14: after many utterances, 14 is their normal.
        for _ in 0..50 {
            b.push(&x);
        }
        let (z, r) = m.normalise(&x, &b);
        // The prior keeps a little spread: z = 0.15 / sqrt(2·4 / 52) ≈ 0.39.
        assert!(
            z[0] < 0.5 && (r[0] - 13.85).abs() < 0.01,
            "{} {}",
            z[0],
            r[0]
        );
        let s = m.score(&x, &b);
        assert_eq!(s.baseline_n, 50);
        assert!((s.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn contributions_point_the_right_way() {
        let m = toy();
        let mut x = [10.0f32; N_VOICE];
        x[0] = 16.0;
        let s = m.score(&x, &SpeakerBaseline::default());
        assert!(s.probs[2] > 0.5);
        let c = m.contributions(&s, 2);
        assert!(c[0] > 0.0 && c[1..].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        let mut m = toy();
        m.features[3] = "renamed".into();
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let e = VoiceModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("feature list"), "{e}");
        std::fs::write(&p, "{").unwrap();
        assert!(VoiceModel::load(&p).is_err());
        let e = VoiceModel::load(&dir.path().join("none.json")).unwrap_err();
        assert!(e.to_string().contains("none.json"));
        // A valid model whose encoder weights are missing names the file it needs.
        let mut m = toy();
        m.encoder.file = "missing-ggml.bin".into();
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let e = VoiceModel::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("missing-ggml.bin") && e.contains("encoder"),
            "{e}"
        );
    }

    /// A calibration maps the line's calm mean onto the training's neutral mean and scales
    /// by the ratio of their SDs; NaN stays NaN; without one the input is the raw vector.
    #[test]
    fn calibration_maps_the_line_onto_the_training_neutral_speech() {
        let mut m = toy();
        let x = {
            let mut x = [12.0f32; N_VOICE];
            x[1] = f32::NAN;
            x
        };
        let same = m.input(&x);
        assert_eq!(same[0], 12.0);
        assert!(same[1].is_nan());
        let stats = |mean: f32, sd: f32| FeatureStats {
            condition: "telephony".into(),
            utterances: 100,
            mean: vec![mean; N_VOICE],
            sd: vec![sd; N_VOICE],
        };
        m.calibration = Some(Calibration {
            source: "calm calls".into(),
            calm: stats(14.0, 4.0),
            neutral: stats(10.0, 2.0),
        });
        m.validate().unwrap();
        let y = m.input(&x);
        // 12 is half a calm SD below the line's calm mean: half a neutral SD below 10.
        assert_eq!(y[0], 9.0);
        assert!(y[1].is_nan());
        assert_eq!(m.input(&[14.0; N_VOICE])[5], 10.0);
        // A calm voice of the line reads like the training's neutral voices, where the
        // uncalibrated model reads it as raised.
        let loud = [14.0f32; N_VOICE];
        let b = SpeakerBaseline::default();
        assert!(m.score(&m.input(&loud), &b).probs[2] < toy().score(&loud, &b).probs[2]);
        // Statistics of the wrong shape or with a zero SD are refused.
        m.calibration.as_mut().unwrap().calm.sd[3] = 0.0;
        assert!(m.validate().unwrap_err().contains("calm"));
        // Only a model that could be calibrated and is not says so at start.
        let path = std::path::Path::new("models/v.json");
        assert_eq!(m.uncalibrated_note(path), None, "calibrated");
        m.calibration = None;
        assert_eq!(m.uncalibrated_note(path), None, "no neutral statistics");
        m.neutral = vec![stats(10.0, 2.0)];
        let note = m.uncalibrated_note(path).unwrap();
        assert!(
            note.contains("callmood calibrate --model models/v.json"),
            "{note}"
        );
        m.neutral[0].mean.pop();
        assert!(m.validate().unwrap_err().contains("neutral reference"));
    }
}
