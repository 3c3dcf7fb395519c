//! Fusion of the voice and the words into the final `Emotion`, and the cues that explain it.
//!
//! # The fusion rule
//!
//! Both sides output class posteriors. Treating voice and words as conditionally independent
//! given the emotion, Bayes' rule gives `p(c | voice, words) ∝ p(c | voice) · p(c | words) /
//! p(c)`. The fusion is a weighted form of that product ([`FusionParams`]):
//!
//! `logit(c) = (1 − γ·u) · ln((1 − e·u) · p(c | voice) + e·u / 5) + β · w(c)`
//!
//! with `u` the voice's unfamiliarity, `n` its own `neutral` probability, the words' weight
//! `β = b0 + b1·u + b2·n`, and `w(c)` their log-ratio `ln p(c | words) − ln r(c)` against a
//! reference `r` ([`WordsReference`]), counted in full or (one-sided) only as evidence for an
//! emotional class: `max(0, ·)` for those, `k ·` it for neutral.
//!
//! The service uses [`FUSION`]: the words against 1/5, one-sided with k = 0, weighed by
//! `u + n`, and an unfamiliar voice mixed with uniform by `0.5 · u`. So the words decide when
//! the voice is unsure, unfamiliar or hears nothing (a flat voice reads `neutral`), count less
//! as the voice hears an emotion of its own, and can say that an utterance is emotional but
//! never, by themselves, that it is calm. It was chosen by the eleventh to thirteenth fusion
//! rounds (models/README.md, "A thirteenth round"); the fusion before it,
//! [`EMPTY_TRANSCRIPT_FUSION`], pushed every transcript away from neutral and cost RAVDESS's
//! held-out actors 5 points. A transcript with no words (empty, or Whisper's annotations
//! alone) adds nothing. How it does is measured and reported (README, "Emotion model").

use crate::proto::{Cue, Emotion};

use super::features::{is_embedding, N_PROSODIC, N_VOICE, PROSODIC_FEATURES};
use super::voice::{VoiceModel, VoiceScore};
use super::{metrics::argmax, softmax_in_place, voice_emotion, N_CLASSES};

/// What the words' probabilities are compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WordsReference {
    /// The words model's output for an empty transcript (its intercept alone: 0.90
    /// neutral for the shipped model), so every transcript pushes away from neutral.
    EmptyTranscript,
    /// The class-balanced training prior of both models, 1/5 each: Bayes' rule as written.
    Uniform,
}

/// The fusion's weights (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusionParams {
    /// What the words are read against.
    pub reference: WordsReference,
    /// b0: the words' weight whatever the voice.
    pub words_weight: f32,
    /// b1: added to the words' weight per unit of the voice's unfamiliarity.
    pub words_weight_unfamiliar: f32,
    /// b2: added to the words' weight per unit of the voice's own `neutral` probability.
    pub words_weight_neutral: f32,
    /// `None`: the words' log-ratio counts in full. `Some(k)`: the words count only as
    /// evidence for an emotional class (the positive part of their log-ratio), and `k` times
    /// their log-ratio for `neutral`.
    pub one_sided: Option<f32>,
    /// e: a voice of unfamiliarity `u` has its probabilities mixed with uniform by `e·u`
    /// (its top label kept, its confidence lowered).
    pub unfamiliar_mix: f32,
    /// γ: how much a wholly unfamiliar voice's log-probabilities are scaled down (0 = not).
    pub unfamiliar_damping: f32,
}

/// The fusion the service uses (see the module documentation; models/README.md, "A
/// thirteenth round", for how it was chosen and what it was measured against).
pub const FUSION: FusionParams = FusionParams {
    reference: WordsReference::Uniform,
    words_weight: 0.0,
    words_weight_unfamiliar: 1.0,
    words_weight_neutral: 1.0,
    one_sided: Some(0.0),
    unfamiliar_mix: 0.5,
    unfamiliar_damping: 0.0,
};

/// The fusion the service used until 2026-12-07: the words' full log-ratio against an
/// empty transcript, weight 1, so every transcript pushed away from neutral.
pub const EMPTY_TRANSCRIPT_FUSION: FusionParams = FusionParams {
    reference: WordsReference::EmptyTranscript,
    words_weight: 1.0,
    words_weight_unfamiliar: 0.0,
    words_weight_neutral: 0.0,
    one_sided: None,
    unfamiliar_mix: 0.0,
    unfamiliar_damping: 0.0,
};

impl FusionParams {
    /// The words' weight β for a voice of unfamiliarity `u` (0..1) and `neutral`
    /// probability `n`.
    fn words_weight_for(&self, u: f32, n: f32) -> f32 {
        self.words_weight + self.words_weight_unfamiliar * u + self.words_weight_neutral * n
    }

    /// What the words add to each class's logit before β: their log-ratio, in full or
    /// one-sided.
    fn words_push(&self, t: &TextEvidence) -> [f32; N_CLASSES] {
        let mut r = t.log_ratio(self.reference);
        if let Some(k) = self.one_sided {
            for (c, x) in r.iter_mut().enumerate() {
                *x = if c == 0 { k * *x } else { x.max(0.0) };
            }
        }
        r
    }
}

/// Voice cues reported per utterance at most.
pub const MAX_VOICE_CUES: usize = 3;

/// The least push a cue must give its label to be listed: one that shows as +0.00 (the
/// QA report's two decimals) explains nothing.
pub const MIN_CUE_WEIGHT: f32 = 0.005;

/// What the words side contributes to one utterance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextEvidence {
    /// `p(c | words)`.
    pub probs: [f32; N_CLASSES],
    /// The words model's output for an empty transcript.
    pub empty_probs: [f32; N_CLASSES],
    /// 0..1: how far the words moved the model from an empty transcript (0 = no words: the
    /// words are ignored).
    pub evidence: f32,
    /// The words or phrases behind it, strongest first.
    pub phrases: Vec<String>,
    /// 0..1: the words model's frustration score of the transcript.
    pub frustration: f32,
}

impl TextEvidence {
    /// The evidence of a words-model score (its hit phrases, strongest first).
    pub fn from_score(s: &super::text::TextScore) -> Self {
        Self {
            probs: s.probs,
            empty_probs: s.baseline_probs,
            evidence: s.evidence,
            phrases: s.hits.iter().map(|h| h.phrase.clone()).collect(),
            frustration: s.frustration,
        }
    }

    /// `ln p(c | words) − ln r(c)` per class.
    pub fn log_ratio(&self, reference: WordsReference) -> [f32; N_CLASSES] {
        let mut out = [0.0; N_CLASSES];
        for (c, r) in out.iter_mut().enumerate() {
            let against = match reference {
                WordsReference::EmptyTranscript => self.empty_probs[c],
                WordsReference::Uniform => 1.0 / N_CLASSES as f32,
            };
            *r = self.probs[c].max(1e-9).ln() - against.max(1e-9).ln();
        }
        out
    }
}

/// The final emotion of an utterance and the cues that explain it, by [`FUSION`]. `who`
/// names the speaker in cue texts ("caller", "agent").
pub fn fuse(
    model: &VoiceModel,
    voice: &VoiceScore,
    text: Option<&TextEvidence>,
    who: &str,
) -> (Emotion, Vec<Cue>) {
    fuse_with(&FUSION, model, voice, text, who)
}

/// [`fuse`] with other weights.
pub fn fuse_with(
    params: &FusionParams,
    model: &VoiceModel,
    voice: &VoiceScore,
    text: Option<&TextEvidence>,
    who: &str,
) -> (Emotion, Vec<Cue>) {
    // A model file whose familiarity statistics are degenerate must not turn every
    // probability into NaN: such a voice counts as familiar.
    let u = if voice.unfamiliar.is_finite() {
        voice.unfamiliar.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let trust = 1.0 - params.unfamiliar_damping * u;
    let mix = params.unfamiliar_mix * u;
    let mut logp: [f32; N_CLASSES] = voice
        .probs
        .map(|p| trust * ((1.0 - mix) * p + mix / N_CLASSES as f32).max(1e-9).ln());
    let words = text.filter(|t| t.evidence > 0.0);
    let beta = params.words_weight_for(u, voice.probs[0]);
    let push = words.map(|t| params.words_push(t).map(|r| beta * r));
    if let Some(p) = push {
        for (l, p) in logp.iter_mut().zip(p) {
            *l += p;
        }
    }
    softmax_in_place(&mut logp);
    let probs = logp;
    let mut emotion = voice_emotion(&probs);
    // Frustration is read from the words whether or not they moved the five classes.
    emotion.frustration = text.map_or(0.0, |t| t.frustration);
    emotion.unfamiliarity = voice.unfamiliar;
    let top = argmax(&probs);

    let mut cues = voice_cues(model, voice, top, who);
    if let (Some(t), Some(p)) = (words, push) {
        let push = p[top];
        let quoted: Vec<String> = t.phrases.iter().take(4).map(|p| format!("'{p}'")).collect();
        // The words explain the label only where they pushed toward it: calm words (which
        // push nothing) or words of another class are no reason for it.
        if !quoted.is_empty() && push >= MIN_CUE_WEIGHT {
            cues.push(Cue {
                feature: "words".into(),
                value: t.evidence,
                description: format!("words: {}", quoted.join(", ")),
                weight: push,
            });
        }
    }
    cues.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    (emotion, cues)
}

/// The voice features that pushed hardest toward `class`, described in words. The
/// functionals are named one by one; the encoder embedding's dimensions have no meaning
/// one at a time, so their pushes are summed into one cue ("the overall sound of the
/// voice").
pub fn voice_cues(model: &VoiceModel, s: &VoiceScore, class: usize, who: &str) -> Vec<Cue> {
    let contrib = model.contributions(s, class);
    let mut cues: Vec<Cue> = (0..N_PROSODIC)
        .filter(|&j| contrib[j] >= MIN_CUE_WEIGHT && s.raw[j].is_finite())
        .map(|j| Cue {
            feature: PROSODIC_FEATURES[j].to_string(),
            value: s.raw[j],
            description: describe(j, s, who),
            weight: contrib[j],
        })
        .collect();
    let learned: f32 = (0..N_VOICE)
        .filter(|&j| is_embedding(j))
        .map(|j| contrib[j])
        .sum();
    if learned >= MIN_CUE_WEIGHT {
        cues.push(Cue {
            feature: "voice_embedding".into(),
            value: learned,
            description: format!(
                "overall sound of the voice (Whisper encoder features) against {}",
                baseline_name(s, who)
            ),
            weight: learned,
        });
    }
    cues.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    cues.truncate(MAX_VOICE_CUES);
    cues
}

fn baseline_name(s: &VoiceScore, who: &str) -> String {
    if s.baseline_n == 0 {
        "a typical voice".to_string()
    } else {
        format!("this {who}'s baseline")
    }
}

/// One feature's value against the baseline, in words, e.g. "pitch +4.1 semitones above
/// this caller's baseline".
fn describe(j: usize, s: &VoiceScore, who: &str) -> String {
    let name = PROSODIC_FEATURES[j];
    let (x, r, z) = (s.raw[j], s.reference[j], s.z[j]);
    let d = x - r;
    let base = baseline_name(s, who);
    let dir = |up: &'static str, down: &'static str| if d >= 0.0 { up } else { down };
    match name {
        "f0_mean_st" | "f0_p50_st" | "f0_p10_st" | "f0_p90_st" => {
            format!("pitch {d:+.1} semitones {} {base}", dir("above", "below"))
        }
        "f0_sd_st" | "f0_range_st" => format!(
            "pitch range {x:.1} semitones, {} than {base}",
            dir("wider", "narrower")
        ),
        "energy_mean_db" | "energy_p10_db" | "energy_p90_db" | "energy_voiced_db" => {
            format!("loudness {d:+.1} dB {} {base}", dir("above", "below"))
        }
        "energy_sd_db" | "energy_range_db" | "energy_delta_db" => format!(
            "loudness varies {} than {base} ({x:.1} dB)",
            dir("more", "less")
        ),
        "speaking_rate_sps" => format!(
            "speech rate {x:.1} syll/s, {} than {base}",
            dir("faster", "slower")
        ),
        "pause_ratio" | "pause_run_ms" => {
            format!("{} pauses than {base}", dir("longer", "shorter"))
        }
        "hnr_db" => format!(
            "voice {} than {base} (HNR {x:.1} dB)",
            dir("clearer", "breathier or rougher")
        ),
        "jitter_pct" | "shimmer_pct" => format!(
            "voice {} than {base} ({name} {x:.2})",
            dir("shakier", "steadier")
        ),
        "centroid_hz" | "rolloff_hz" | "spectral_slope_db_per_khz" | "band_2000_4000_rel_db" => {
            format!(
                "voice {} than {base} ({name} {x:.0}, {z:+.1} SD)",
                dir("brighter", "darker")
            )
        }
        _ if name.starts_with("mfcc") || name.starts_with("mel") => format!(
            "voice timbre: {name} {z:+.1} SD {} {base}",
            dir("above", "below")
        ),
        _ => format!("{name} {z:+.1} SD {} {base}", dir("above", "below")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emotion::features::VoiceVector;
    use crate::emotion::voice::SpeakerBaseline;

    fn model() -> VoiceModel {
        let mut weights = vec![vec![0.0; N_VOICE]; N_CLASSES];
        weights[2][0] = 1.5; // pitch up → angry
        weights[3][0] = -1.5; // pitch down → sad
        crate::emotion::voice::toy_model(weights)
    }

    fn raised_pitch() -> VoiceVector {
        let mut x = [10.0f32; N_VOICE];
        x[0] = 14.1;
        x
    }

    #[test]
    fn voice_alone_explains_itself() {
        let m = model();
        let s = m.score(&raised_pitch(), &SpeakerBaseline::default());
        let (e, cues) = fuse(&m, &s, None, "caller");
        assert_eq!(e.top_label, "angry");
        assert!((e.neutral + e.happy + e.angry + e.sad + e.fearful - 1.0).abs() < 1e-5);
        assert!(e.arousal > 0.0 && e.valence < 0.0);
        assert_eq!(cues.len(), 1, "{cues:?}");
        assert_eq!(cues[0].feature, "f0_mean_st");
        assert_eq!(
            cues[0].description,
            "pitch +4.1 semitones above a typical voice"
        );
        // With a baseline, the cue names the speaker.
        let mut b = SpeakerBaseline::default();
        b.push(&[10.0; N_VOICE]);
        let s = m.score(&raised_pitch(), &b);
        let (_, cues) = fuse(&m, &s, None, "caller");
        assert!(
            cues[0].description.ends_with("this caller's baseline"),
            "{cues:?}"
        );
    }

    #[test]
    fn words_move_the_score_only_with_evidence() {
        let m = model();
        let s = m.score(&[10.0; N_VOICE], &SpeakerBaseline::default());
        let (plain, _) = fuse(&m, &s, None, "caller");
        let none = TextEvidence {
            probs: [0.1, 0.1, 0.6, 0.1, 0.1],
            empty_probs: [0.2; N_CLASSES],
            evidence: 0.0,
            phrases: vec![],
            frustration: 0.0,
        };
        assert_eq!(fuse(&m, &s, Some(&none), "caller").0, plain);
        let angry_words = TextEvidence {
            evidence: 1.0,
            phrases: vec!["ridiculous".into(), "cancel".into()],
            ..none
        };
        let (e, cues) = fuse(&m, &s, Some(&angry_words), "caller");
        assert_eq!(e.top_label, "angry");
        assert!(e.angry > plain.angry);
        let w = cues.iter().find(|c| c.feature == "words").unwrap();
        assert_eq!(w.description, "words: 'ridiculous', 'cancel'");
        assert!(w.weight > 0.0);
    }

    /// Against the empty transcript (mostly neutral), ordinary words push away from neutral;
    /// against the uniform prior they push toward what the words model says.
    #[test]
    fn the_reference_decides_which_way_ordinary_words_push() {
        let calm = TextEvidence {
            probs: [0.68, 0.02, 0.26, 0.03, 0.01],
            empty_probs: [0.90, 0.03, 0.04, 0.02, 0.01],
            evidence: 0.2,
            ..TextEvidence::default()
        };
        let empty = calm.log_ratio(WordsReference::EmptyTranscript);
        let uniform = calm.log_ratio(WordsReference::Uniform);
        assert!(empty[2] > empty[0], "{empty:?}");
        assert!(uniform[0] > uniform[2], "{uniform:?}");
        assert!((uniform[0] - (0.68f32 / 0.2).ln()).abs() < 1e-5);
        let m = model();
        let s = m.score(&[10.0; N_VOICE], &SpeakerBaseline::default());
        let with = |reference| FusionParams {
            reference,
            ..EMPTY_TRANSCRIPT_FUSION
        };
        let (a, _) = fuse_with(
            &with(WordsReference::EmptyTranscript),
            &m,
            &s,
            Some(&calm),
            "caller",
        );
        let (b, _) = fuse_with(
            &with(WordsReference::Uniform),
            &m,
            &s,
            Some(&calm),
            "caller",
        );
        assert!(b.neutral > a.neutral && b.angry < a.angry, "{a:?} {b:?}");
    }

    /// Damping by unfamiliarity flattens the voice's probabilities, and leaves a familiar
    /// voice (unfamiliarity 0) as it was.
    #[test]
    fn an_unfamiliar_voice_says_less() {
        let m = model();
        let mut s = m.score(&raised_pitch(), &SpeakerBaseline::default());
        let damped = FusionParams {
            reference: WordsReference::Uniform,
            unfamiliar_damping: 0.5,
            ..EMPTY_TRANSCRIPT_FUSION
        };
        let (plain, _) = fuse_with(&FUSION, &m, &s, None, "caller");
        let (same, _) = fuse_with(&damped, &m, &s, None, "caller");
        assert_eq!(plain, same);
        s.unfamiliar = 1.0;
        let (less, _) = fuse_with(&damped, &m, &s, None, "caller");
        assert_eq!(less.top_label, plain.top_label);
        assert!(
            less.top_confidence < plain.top_confidence,
            "{less:?} {plain:?}"
        );
    }

    /// The shipped fusion: words that read as calm never make an utterance calmer than the
    /// voice says (they count only as evidence for an emotion), and emotional words decide
    /// for a voice that hears nothing (`neutral`) but move a voice sure of its own emotion
    /// less.
    #[test]
    fn the_words_count_as_evidence_for_an_emotion_as_the_voice_allows() {
        let m = model();
        let angry_voice = m.score(&raised_pitch(), &SpeakerBaseline::default());
        let (voice_only, _) = fuse(&m, &angry_voice, None, "caller");
        let calm_words = TextEvidence {
            probs: [0.92, 0.02, 0.02, 0.02, 0.02],
            empty_probs: [0.90, 0.03, 0.04, 0.02, 0.01],
            evidence: 0.1,
            phrases: vec!["thank you".into()],
            frustration: 0.1,
        };
        let (e, cues) = fuse(&m, &angry_voice, Some(&calm_words), "caller");
        assert_eq!(
            (e.neutral, e.angry, e.top_label.as_str()),
            (voice_only.neutral, voice_only.angry, "angry")
        );
        assert!(
            cues.iter().all(|c| c.feature != "words"),
            "calm words push nothing, so they are no cue: {cues:?}"
        );

        // A flat voice, half unfamiliar (espeak-ng's is wholly so): it leans to neutral and
        // hears nothing else. Sad words decide.
        let flat = VoiceScore {
            probs: [0.50, 0.125, 0.125, 0.125, 0.125],
            unfamiliar: 0.5,
            ..angry_voice.clone()
        };
        let sad_words = TextEvidence {
            probs: [0.05, 0.03, 0.03, 0.85, 0.04],
            evidence: 0.6,
            phrases: vec!["passed away".into()],
            ..calm_words.clone()
        };
        let (e, _) = fuse(&m, &flat, Some(&sad_words), "caller");
        assert_eq!(e.top_label, "sad", "{e:?}");
        // A voice sure of anger (neutral 0.05) keeps it against the same words.
        let sure = VoiceScore {
            probs: [0.05, 0.05, 0.80, 0.05, 0.05],
            unfamiliar: 0.0,
            ..angry_voice.clone()
        };
        let (e, _) = fuse(&m, &sure, Some(&sad_words), "caller");
        assert_eq!(e.top_label, "angry", "{e:?}");
        assert!(e.sad > 0.05, "{e:?}");
        // The same voice, wholly unfamiliar: the words weigh more, and the voice is mixed
        // with uniform, so the words win.
        let unsure = VoiceScore {
            unfamiliar: 1.0,
            ..sure.clone()
        };
        let (e, _) = fuse(&m, &unsure, Some(&sad_words), "caller");
        assert_eq!(e.top_label, "sad", "{e:?}");
    }

    /// The shipped fusion mixes an unfamiliar voice with uniform: its top label stays, its
    /// confidence falls, and a familiar voice is left as it was.
    #[test]
    fn an_unfamiliar_voice_is_less_sure() {
        let m = model();
        let mut s = m.score(&raised_pitch(), &SpeakerBaseline::default());
        s.unfamiliar = 0.0;
        let (familiar, _) = fuse(&m, &s, None, "caller");
        assert!((familiar.angry - s.probs[2]).abs() < 1e-5, "{familiar:?}");
        s.unfamiliar = 1.0;
        let (unfamiliar, _) = fuse(&m, &s, None, "caller");
        assert_eq!(unfamiliar.top_label, familiar.top_label);
        let want = 0.5 * s.probs[2] + 0.1;
        assert!((unfamiliar.angry - want).abs() < 1e-5, "{unfamiliar:?}");
        s.unfamiliar = f32::NAN;
        let (nan, _) = fuse(&m, &s, None, "caller");
        assert_eq!(nan.angry, familiar.angry, "{nan:?}");
    }

    #[test]
    fn frustration_and_unfamiliarity_reach_the_emotion() {
        let m = model();
        let mut s = m.score(&[10.0; N_VOICE], &SpeakerBaseline::default());
        s.unfamiliar = 0.4;
        let (plain, _) = fuse(&m, &s, None, "caller");
        assert_eq!((plain.frustration, plain.unfamiliarity), (0.0, 0.4));
        // Frustration is read from the words even when they move no class.
        let flat = TextEvidence {
            frustration: 0.7,
            ..TextEvidence::default()
        };
        let (e, _) = fuse(&m, &s, Some(&flat), "caller");
        assert_eq!(e.frustration, 0.7);
        assert_eq!(
            (e.angry, e.top_label.as_str()),
            (plain.angry, plain.top_label.as_str())
        );
        assert_eq!(s.emotion().unfamiliarity, 0.4);
    }

    /// The encoder dimensions have no meaning one by one: their pushes make one cue,
    /// ranked with the named features by the size of its push.
    #[test]
    fn embedding_dimensions_make_one_cue() {
        let mut weights = vec![vec![0.0; N_VOICE]; N_CLASSES];
        weights[2][0] = 0.5;
        for w in &mut weights[2][N_PROSODIC..N_PROSODIC + 10] {
            *w = 0.3;
        }
        let m = crate::emotion::voice::toy_model(weights);
        let mut x = raised_pitch();
        x[N_PROSODIC..N_PROSODIC + 10].fill(13.0);
        let s = m.score(&x, &SpeakerBaseline::default());
        let cues = voice_cues(&m, &s, 2, "caller");
        assert_eq!(cues.len(), 2, "{cues:?}");
        assert_eq!(cues[0].feature, "voice_embedding");
        assert_eq!(
            cues[0].description,
            "overall sound of the voice (Whisper encoder features) against a typical voice"
        );
        assert_eq!(cues[1].feature, "f0_mean_st");
        // Ten dimensions, each pushing less than the pitch does, outweigh it together.
        let one = m.contributions(&s, 2)[N_PROSODIC];
        assert!(one < cues[1].weight && (cues[0].weight - 10.0 * one).abs() < 1e-4);
    }
}
