//! The emotional course of a call, for its summary: every utterance's emotion in
//! call order, the mean emotion per role (weighted by utterance length), and the few
//! strongest negative moments. Sans-I/O: told each finished utterance.
use crate::emotion::{class_prob, probs, voice_emotion, NEGATIVE, N_CLASSES};
use crate::proto;

/// Peak moments kept in the summary.
pub const MAX_PEAKS: usize = 3;
/// A negative class must reach this probability for its utterance to be a peak.
pub const PEAK_MIN_SCORE: f32 = 0.4;

#[derive(Default)]
struct RoleMean {
    role: i32,
    weighted: [f64; N_CLASSES],
    ms: f64,
}

/// An utterance's strongest negative class (the first of [`NEGATIVE`] on a tie) as a
/// [`proto::PeakMoment`]; `None` when it has no emotion.
pub fn peak_moment(u: &proto::Utterance) -> Option<proto::PeakMoment> {
    let e = u.emotion.as_ref()?;
    let (label, score) = NEGATIVE
        .iter()
        .map(|&name| (name, class_prob(e, name)))
        .reduce(|best, x| if x.1 > best.1 { x } else { best })?;
    Some(proto::PeakMoment {
        utterance_id: u.utterance_id.clone(),
        role: u.role,
        start_ms: u.start_ms,
        end_ms: u.end_ms,
        label: label.to_string(),
        score,
        transcript: u.transcript.clone(),
    })
}

/// Collects a call's emotion profile, per-role means and peaks.
#[derive(Default)]
pub struct Profile {
    points: Vec<proto::EmotionPoint>,
    means: Vec<RoleMean>,
    peaks: Vec<proto::PeakMoment>,
}

impl Profile {
    /// A finished utterance (already redacted as it will be sent).
    pub fn push(&mut self, u: &proto::Utterance) {
        let Some(e) = u.emotion.as_ref() else {
            return;
        };
        self.points.push(proto::EmotionPoint {
            utterance_id: u.utterance_id.clone(),
            role: u.role,
            start_ms: u.start_ms,
            end_ms: u.end_ms,
            emotion: Some(e.clone()),
        });
        let p = probs(e);
        let ms = u.end_ms.saturating_sub(u.start_ms).max(1) as f64;
        let idx = match self.means.iter().position(|m| m.role == u.role) {
            Some(i) => i,
            None => {
                self.means.push(RoleMean {
                    role: u.role,
                    ..RoleMean::default()
                });
                self.means.len() - 1
            }
        };
        let m = &mut self.means[idx];
        for (w, x) in m.weighted.iter_mut().zip(p) {
            *w += x as f64 * ms;
        }
        m.ms += ms;

        if let Some(peak) = peak_moment(u).filter(|p| p.score >= PEAK_MIN_SCORE) {
            self.peaks.push(peak);
            // Strongest first; ties keep call order.
            self.peaks.sort_by(|a, b| b.score.total_cmp(&a.score));
            self.peaks.truncate(MAX_PEAKS);
        }
    }

    /// The mean emotion of `role`'s utterances, weighted by their length; `None`
    /// when none of them was scored.
    pub fn role_mean(&self, role: i32) -> Option<proto::Emotion> {
        self.means
            .iter()
            .find(|m| m.role == role)
            .map(|m| voice_emotion(&m.weighted.map(|w| (w / m.ms) as f32)))
    }

    /// Writes the profile, peaks and per-role means into the summary.
    pub fn fill(&self, s: &mut proto::CallSummary) {
        s.emotion_profile = self.points.clone();
        s.peaks = self.peaks.clone();
        for m in &self.means {
            let Some(mean) = self.role_mean(m.role) else {
                continue;
            };
            match s.roles.iter_mut().find(|r| r.role == m.role) {
                Some(r) => r.emotion_mean = Some(mean),
                None => s.roles.push(proto::RoleSummary {
                    role: m.role,
                    emotion_mean: Some(mean),
                    ..Default::default()
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Role;

    fn utt(id: &str, role: Role, start: u32, end: u32, p: [f32; 5]) -> proto::Utterance {
        proto::Utterance {
            utterance_id: id.into(),
            role: role as i32,
            start_ms: start,
            end_ms: end,
            transcript: format!("text of {id}"),
            emotion: Some(voice_emotion(&p)),
            ..Default::default()
        }
    }

    #[test]
    fn profile_means_and_peaks() {
        let mut prof = Profile::default();
        // CLASSES order: neutral, happy, angry, sad, fearful.
        prof.push(&utt(
            "u0",
            Role::Caller,
            0,
            1000,
            [0.8, 0.1, 0.05, 0.03, 0.02],
        ));
        prof.push(&utt(
            "u1",
            Role::Agent,
            1200,
            2200,
            [0.6, 0.3, 0.05, 0.03, 0.02],
        ));
        prof.push(&utt(
            "u2",
            Role::Caller,
            2500,
            5500,
            [0.1, 0.0, 0.7, 0.1, 0.1],
        ));
        prof.push(&utt(
            "u3",
            Role::Caller,
            6000,
            7000,
            [0.2, 0.0, 0.1, 0.2, 0.5],
        ));
        prof.push(&proto::Utterance {
            emotion: None,
            ..utt("u4", Role::Caller, 8000, 9000, [1.0, 0.0, 0.0, 0.0, 0.0])
        });
        let mut s = proto::CallSummary {
            roles: vec![proto::RoleSummary {
                role: Role::Caller as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        prof.fill(&mut s);
        assert_eq!(s.emotion_profile.len(), 4, "no emotion, no point");
        let ids: Vec<&str> = s.peaks.iter().map(|p| p.utterance_id.as_str()).collect();
        assert_eq!(ids, vec!["u2", "u3"]);
        assert_eq!(s.peaks[0].label, "angry");
        assert_eq!(s.peaks[1].label, "fearful");
        assert_eq!(s.peaks[0].transcript, "text of u2");
        let caller = s
            .roles
            .iter()
            .find(|r| r.role == Role::Caller as i32)
            .unwrap();
        let m = caller.emotion_mean.as_ref().unwrap();
        // Weighted by length: (0.05*1 + 0.7*3 + 0.1*1) / 5 s.
        assert!((m.angry - 0.45).abs() < 1e-3, "{m:?}");
        let sum = m.neutral + m.happy + m.angry + m.sad + m.fearful;
        assert!((sum - 1.0).abs() < 1e-4);
        assert_eq!(s.roles.len(), 2, "the agent gets a row too");
    }
}
