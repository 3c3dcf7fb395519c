//! Emotion: the voice model, the words model, their fusion and the cues that explain a
//! score; inference only.
//!
//! Sans-I/O like the rest of the core: models are plain values loaded from readable JSON
//! files, scoring takes feature vectors and returns probabilities.
//!
//! - [`features`]: the voice features of one utterance (functionals of its frames).
//! - [`fusion`]: voice and words into the final scores, and the cues that explain them.
//! - [`linear`]: multinomial logistic regression (the classifier of both sides) and its
//!   trainer.
//! - [`voice`]: the voice model: speaker-normalised features, scores, contributions.
//! - [`metrics`]: unweighted average recall, confusion matrices, calibration error.
//! - [`text`]: the words model: transcript → VADER valence and cue features → probabilities.
//!
//! Training and measuring both models is [`crate::train`]'s work; the service never runs it.

pub mod embed;
pub mod features;
pub mod fusion;
pub mod linear;
pub mod metrics;
pub mod text;
pub mod voice;

/// The words side as the service uses it: the lexicon and the model over its features.
#[derive(Clone, Debug)]
pub struct Words {
    /// Lexicon, negations, boosters and contact-centre cues.
    pub lexicon: text::TextLexicon,
    /// The words model.
    pub model: text::TextModel,
}

impl Words {
    /// Loads the words model and the lexicon directory.
    pub fn load(
        model: &std::path::Path,
        lexicon: &std::path::Path,
    ) -> Result<Self, text::TextError> {
        Ok(Self {
            lexicon: text::TextLexicon::load(lexicon)?,
            model: text::TextModel::load(model)?,
        })
    }

    /// What a transcript's words add to the voice (see [`fusion`]).
    pub fn evidence(&self, transcript: &str) -> fusion::TextEvidence {
        fusion::TextEvidence::from_score(&self.model.score(&self.lexicon, transcript))
    }
}

/// The five classes, in the order of every probability vector in this module.
pub const CLASSES: [&str; 5] = ["neutral", "happy", "angry", "sad", "fearful"];
/// Number of classes.
pub const N_CLASSES: usize = CLASSES.len();

/// Maps a corpus label to a class index: calm→neutral, disgust→angry, the contact-centre
/// words frustration→angry and anxiety→fearful; `None` for surprise and unknown labels
/// (callers tell those two apart with [`is_excluded_label`]).
pub fn class_of_label(label: &str) -> Option<usize> {
    let l = label.trim().to_ascii_lowercase();
    let c = match l.as_str() {
        "neutral" | "calm" => "neutral",
        "happy" | "joy" | "happiness" => "happy",
        "angry" | "anger" | "disgust" | "frustrated" | "frustration" => "angry",
        "sad" | "sadness" => "sad",
        "fearful" | "fear" | "anxious" | "anxiety" => "fearful",
        _ => return None,
    };
    CLASSES.iter().position(|x| *x == c)
}

/// Labels that are known but deliberately left out of the five classes.
pub fn is_excluded_label(label: &str) -> bool {
    matches!(
        label.trim().to_ascii_lowercase().as_str(),
        "surprise" | "surprised"
    )
}

/// Position of each class on the valence–arousal circumplex, [`CLASSES`] order: `(valence,
/// arousal)` in -1..1. These place the categories on Russell's (1980) circumplex as
/// emotion research usually does (e.g. anger: unpleasant and aroused; sadness: unpleasant
/// and low); they are a fixed coordinate map, not learned weights. Valence and arousal of an
/// utterance are the probability-weighted mean of these points.
pub const CIRCUMPLEX: [(f32, f32); N_CLASSES] = [
    (0.0, 0.0),   // neutral
    (0.8, 0.5),   // happy
    (-0.6, 0.8),  // angry
    (-0.7, -0.5), // sad
    (-0.6, 0.7),  // fearful
];

/// The `Emotion` message of a probability vector: the five probabilities, valence and
/// arousal from [`CIRCUMPLEX`], the top label and its probability.
pub fn voice_emotion(probs: &[f32; N_CLASSES]) -> crate::proto::Emotion {
    let (mut valence, mut arousal) = (0.0, 0.0);
    for (p, (v, a)) in probs.iter().zip(CIRCUMPLEX) {
        valence += p * v;
        arousal += p * a;
    }
    let top = metrics::argmax(probs);
    crate::proto::Emotion {
        neutral: probs[0],
        happy: probs[1],
        angry: probs[2],
        sad: probs[3],
        fearful: probs[4],
        valence: valence.clamp(-1.0, 1.0),
        arousal: arousal.clamp(-1.0, 1.0),
        top_label: CLASSES[top].to_string(),
        top_confidence: probs[top],
        frustration: 0.0,
        unfamiliarity: 0.0,
    }
}

/// Probabilities of an `Emotion` in [`CLASSES`] order.
pub fn probs(e: &crate::proto::Emotion) -> [f32; N_CLASSES] {
    CLASSES.map(|c| class_prob(e, c))
}

/// The probability of one class by its name (0 for an unknown name).
pub fn class_prob(e: &crate::proto::Emotion, class: &str) -> f32 {
    match class {
        "neutral" => e.neutral,
        "happy" => e.happy,
        "angry" => e.angry,
        "sad" => e.sad,
        "fearful" => e.fearful,
        _ => 0.0,
    }
}

/// The negative classes, in the order a tie between them is broken (a call's worst
/// moment, its profile's peak).
pub const NEGATIVE: [&str; 3] = ["angry", "fearful", "sad"];

/// Softmax in place (numerically stable); an all-`-inf` or empty input is left uniform.
pub fn softmax_in_place(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        let u = 1.0 / v.len().max(1) as f32;
        v.iter_mut().for_each(|x| *x = u);
        return;
    }
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_five_classes() {
        assert_eq!(class_of_label("calm"), Some(0));
        assert_eq!(class_of_label("Disgust"), Some(2));
        assert_eq!(class_of_label("fearful"), Some(4));
        assert_eq!(class_of_label("surprised"), None);
        assert!(is_excluded_label("surprised"));
        assert_eq!(class_of_label("bored"), None);
        assert!(!is_excluded_label("bored"));
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut v = [1.0, 3.0, -2.0, 1000.0, 0.0];
        softmax_in_place(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[3] > 0.99);
        let mut w = [f32::NEG_INFINITY; 3];
        softmax_in_place(&mut w);
        assert_eq!(w, [1.0 / 3.0; 3]);
    }
}
