//! A finished call read back from its events and condensed into what a QA
//! reviewer looks at: talk per role, alerts, the worst moment, mean emotion
//! per role, and a risk score that orders calls for review.
//!
//! The summary is the source where it has the answer; where a field is empty
//! (a summary written by an older build, or emotion switched off) the answer is
//! computed from the utterances, so a report never depends on which build
//! wrote the events.
use crate::contact::profile::Profile;
use crate::emotion::N_CLASSES;
use crate::proto::{self, call_event::Event, CallEvent, Role};

/// Alert kinds the proto names, each with its weight in the risk score's alert part:
/// the ones that need a person now count fully, the ones about the conversation less.
pub const ALERT_KINDS: [(&str, f32); 4] = [
    ("escalate", 1.0),
    ("anxious_caller", 1.0),
    ("cross_talk", 0.6),
    ("long_silence", 0.4),
];
/// Weight of an alert of a kind not in [`ALERT_KINDS`].
pub const OTHER_ALERT_WEIGHT: f32 = 0.5;
/// Share of each part in the risk score: alerts, peak negative emotion, interruptions.
pub const RISK_SHARES: RiskParts = RiskParts {
    alerts: 0.45,
    emotion: 0.35,
    interruptions: 0.20,
};
/// Probability of a class by chance (five classes): a peak at this level adds no risk.
pub const CHANCE: f32 = 1.0 / N_CLASSES as f32;
/// Interruptions per minute of call at which the interruption part is full.
pub const INTERRUPTIONS_FULL_PER_MIN: f32 = 3.0;

/// A call's events did not make a finished call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// No `CallSummary`: the call did not finish (or the file was cut short).
    #[error("no call summary: the call did not finish")]
    NoSummary,
}

/// What one role did in a call.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleDigest {
    pub role: Role,
    /// Utterances of this role.
    pub utterances: u32,
    /// Speech time, ms.
    pub talk_ms: u32,
    /// Mean emotion over the role's utterances, weighted by length; `None`
    /// when no utterance has an emotion (emotion off).
    pub emotion_mean: Option<proto::Emotion>,
}

/// The three parts of the risk score, each 0..1 (or their shares in [`RISK_SHARES`]).
#[derive(Clone, Copy, Debug, PartialEq, Default, serde::Serialize)]
pub struct RiskParts {
    /// Alerts: 1 − Π(1 − weight × severity), so several add up but never pass 1.
    pub alerts: f32,
    /// Peak negative emotion: the worst moment's probability above chance,
    /// (p − 0.2) / 0.8.
    pub emotion: f32,
    /// Interruptions per minute (at least one minute counted) / 3, at most 1.
    pub interruptions: f32,
}

impl RiskParts {
    /// The risk score, 0..100.
    pub fn score(&self) -> f32 {
        100.0
            * (RISK_SHARES.alerts * self.alerts
                + RISK_SHARES.emotion * self.emotion
                + RISK_SHARES.interruptions * self.interruptions)
    }
}

/// A finished call, condensed.
#[derive(Clone, Debug, PartialEq)]
pub struct CallDigest {
    /// The call id of its events.
    pub call_id: String,
    /// Utterances in call order (by start time).
    pub utterances: Vec<proto::Utterance>,
    /// From the summary, or the `Alert` events when the summary has none.
    pub alerts: Vec<proto::Alert>,
    /// Caller first, then agent, then any other role that spoke.
    pub roles: Vec<RoleDigest>,
    /// The strongest negative moment: the summary's first peak, else the
    /// utterance with the highest angry, fearful or sad probability.
    pub worst: Option<proto::PeakMoment>,
    /// The parts of the risk score; [`RiskParts::score`] is the score.
    pub risk: RiskParts,
    /// The call's summary as sent.
    pub summary: proto::CallSummary,
}

impl CallDigest {
    /// Condenses a call's events; they must include its summary.
    pub fn from_events(events: &[CallEvent]) -> Result<Self, DigestError> {
        let mut call_id = String::new();
        let mut utterances = Vec::new();
        let mut alert_events = Vec::new();
        let mut summary = None;
        for ev in events {
            if call_id.is_empty() {
                call_id.clone_from(&ev.call_id);
            }
            match &ev.event {
                Some(Event::Utterance(u)) => utterances.push(u.clone()),
                Some(Event::Alert(a)) => alert_events.push(a.clone()),
                Some(Event::Summary(s)) => summary = Some(s.clone()),
                _ => {}
            }
        }
        let summary = summary.ok_or(DigestError::NoSummary)?;
        utterances.sort_by_key(|u: &proto::Utterance| (u.start_ms, u.channel_id));
        let alerts = if summary.alerts.is_empty() {
            alert_events
        } else {
            summary.alerts.clone()
        };
        let roles = role_digests(&summary, &utterances);
        let worst = summary
            .peaks
            .first()
            .cloned()
            .or_else(|| worst_moment(&utterances));
        let risk = risk_parts(&alerts, worst.as_ref(), &summary);
        Ok(Self {
            call_id,
            utterances,
            alerts,
            roles,
            worst,
            risk,
            summary,
        })
    }

    /// This role's digest, if the role spoke or the summary lists it.
    pub fn role(&self, role: Role) -> Option<&RoleDigest> {
        self.roles.iter().find(|r| r.role == role)
    }

    /// Alerts of `kind`.
    pub fn alert_count(&self, kind: &str) -> usize {
        self.alerts.iter().filter(|a| a.kind == kind).count()
    }

    /// Alerts of kinds not in [`ALERT_KINDS`].
    pub fn other_alert_count(&self) -> usize {
        self.alerts
            .iter()
            .filter(|a| !ALERT_KINDS.iter().any(|(k, _)| *k == a.kind))
            .count()
    }
}

/// The role's name as reports write it.
pub fn role_name(role: i32) -> &'static str {
    match Role::try_from(role) {
        Ok(Role::Caller) => "caller",
        Ok(Role::Agent) => "agent",
        _ => "unspecified",
    }
}

fn role_digests(summary: &proto::CallSummary, utterances: &[proto::Utterance]) -> Vec<RoleDigest> {
    let mut order: Vec<i32> = vec![Role::Caller as i32, Role::Agent as i32];
    for r in summary
        .roles
        .iter()
        .map(|r| r.role)
        .chain(utterances.iter().map(|u| u.role))
    {
        if !order.contains(&r) {
            order.push(r);
        }
    }
    order
        .into_iter()
        .filter_map(|role| {
            let own: Vec<&proto::Utterance> =
                utterances.iter().filter(|u| u.role == role).collect();
            let listed = summary.roles.iter().find(|r| r.role == role);
            if listed.is_none() && own.is_empty() {
                return None;
            }
            let (count, talk) = match listed {
                Some(r) => (r.utterances, r.talk_ms),
                None => (
                    own.len() as u32,
                    own.iter()
                        .map(|u| u.end_ms.saturating_sub(u.start_ms))
                        .sum(),
                ),
            };
            let emotion_mean = listed
                .and_then(|r| r.emotion_mean.clone())
                .or_else(|| mean_emotion(role, &own));
            Some(RoleDigest {
                role: Role::try_from(role).unwrap_or(Role::Unspecified),
                utterances: count,
                talk_ms: talk,
                emotion_mean,
            })
        })
        .collect()
}

/// Mean emotion of one role's utterances weighted by their length, computed
/// exactly as the summary does ([`Profile`]).
fn mean_emotion(role: i32, utterances: &[&proto::Utterance]) -> Option<proto::Emotion> {
    let mut profile = Profile::default();
    for u in utterances {
        profile.push(u);
    }
    profile.role_mean(role)
}

/// The utterance with the highest probability of a negative class; ties keep call order.
fn worst_moment(utterances: &[proto::Utterance]) -> Option<proto::PeakMoment> {
    utterances
        .iter()
        .filter_map(crate::contact::profile::peak_moment)
        .reduce(|best, p| if p.score > best.score { p } else { best })
}

fn risk_parts(
    alerts: &[proto::Alert],
    worst: Option<&proto::PeakMoment>,
    summary: &proto::CallSummary,
) -> RiskParts {
    let calm: f32 = alerts
        .iter()
        .map(|a| {
            let w = ALERT_KINDS
                .iter()
                .find(|(k, _)| *k == a.kind)
                .map_or(OTHER_ALERT_WEIGHT, |(_, w)| *w);
            1.0 - (w * a.severity.clamp(0.0, 1.0))
        })
        .product();
    let emotion = worst.map_or(0.0, |w| {
        ((w.score - CHANCE) / (1.0 - CHANCE)).clamp(0.0, 1.0)
    });
    let minutes = (summary.duration_ms as f32 / 60_000.0).max(1.0);
    let interruptions =
        (summary.interruptions as f32 / minutes / INTERRUPTIONS_FULL_PER_MIN).min(1.0);
    RiskParts {
        alerts: 1.0 - calm,
        emotion,
        interruptions,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::emotion::voice_emotion;

    /// An utterance with these probabilities (CLASSES order).
    pub fn utt(id: &str, role: Role, start: u32, end: u32, p: [f32; 5]) -> proto::Utterance {
        proto::Utterance {
            utterance_id: id.into(),
            role: role as i32,
            channel_id: u32::from(role == Role::Agent),
            start_ms: start,
            end_ms: end,
            transcript: format!("text of {id}"),
            emotion: Some(voice_emotion(&p)),
            ..Default::default()
        }
    }

    pub fn ev(e: Event) -> CallEvent {
        CallEvent {
            call_id: "c".into(),
            event: Some(e),
        }
    }

    #[test]
    fn role_names() {
        assert_eq!(role_name(Role::Agent as i32), "agent");
    }

    #[test]
    fn without_summary_fields_everything_comes_from_the_utterances() {
        let events = vec![
            ev(Event::Utterance(utt(
                "u1",
                Role::Agent,
                3000,
                4000,
                [0.7, 0.1, 0.1, 0.05, 0.05],
            ))),
            ev(Event::Utterance(utt(
                "u0",
                Role::Caller,
                0,
                3000,
                [0.2, 0.0, 0.6, 0.1, 0.1],
            ))),
            ev(Event::Utterance(utt(
                "u2",
                Role::Caller,
                4000,
                5000,
                [0.6, 0.0, 0.2, 0.1, 0.1],
            ))),
            ev(Event::Summary(proto::CallSummary {
                duration_ms: 30_000,
                interruptions: 3,
                ..Default::default()
            })),
        ];
        let d = CallDigest::from_events(&events).unwrap();
        assert_eq!(d.call_id, "c");
        let ids: Vec<&str> = d
            .utterances
            .iter()
            .map(|u| u.utterance_id.as_str())
            .collect();
        assert_eq!(ids, ["u0", "u1", "u2"]);
        let caller = d.role(Role::Caller).unwrap();
        assert_eq!((caller.utterances, caller.talk_ms), (2, 4000));
        // Weighted by length: (3 × 0.6 + 1 × 0.2) / 4.
        let m = caller.emotion_mean.as_ref().unwrap();
        assert!((m.angry - 0.5).abs() < 1e-6, "{m:?}");
        assert_eq!(d.role(Role::Agent).unwrap().utterances, 1);
        let w = d.worst.as_ref().unwrap();
        assert_eq!((w.utterance_id.as_str(), w.label.as_str()), ("u0", "angry"));
        assert!((d.risk.emotion - 0.5).abs() < 1e-6);
        // 3 interruptions in one minute (30 s counts as one) = full.
        assert_eq!(d.risk.interruptions, 1.0);
        assert_eq!(d.risk.alerts, 0.0);
        assert!((d.risk.score() - (35.0 * 0.5 + 20.0)).abs() < 1e-3);
    }

    #[test]
    fn summary_fields_win_and_alerts_add_up_below_one() {
        let alert = |kind: &str, severity| proto::Alert {
            kind: kind.into(),
            severity,
            ..Default::default()
        };
        let summary = proto::CallSummary {
            duration_ms: 120_000,
            roles: vec![proto::RoleSummary {
                role: Role::Caller as i32,
                utterances: 9,
                talk_ms: 50_000,
                emotion_mean: Some(voice_emotion(&[1.0, 0.0, 0.0, 0.0, 0.0])),
                ..Default::default()
            }],
            alerts: vec![alert("escalate", 0.8), alert("long_silence", 0.5)],
            peaks: vec![proto::PeakMoment {
                utterance_id: "u9".into(),
                label: "fearful".into(),
                score: 0.9,
                ..Default::default()
            }],
            ..Default::default()
        };
        let events = vec![
            ev(Event::Utterance(utt(
                "u0",
                Role::Caller,
                0,
                1000,
                [0.0, 0.0, 1.0, 0.0, 0.0],
            ))),
            // An alert event that the summary repeats: counted once.
            ev(Event::Alert(alert("escalate", 0.8))),
            ev(Event::Summary(summary)),
        ];
        let d = CallDigest::from_events(&events).unwrap();
        assert_eq!(d.role(Role::Caller).unwrap().utterances, 9);
        assert_eq!(
            d.role(Role::Caller)
                .unwrap()
                .emotion_mean
                .as_ref()
                .unwrap()
                .neutral,
            1.0
        );
        assert_eq!(d.worst.as_ref().unwrap().utterance_id, "u9");
        assert_eq!(
            (d.alert_count("escalate"), d.alert_count("long_silence")),
            (1, 1)
        );
        // 1 − (1 − 0.8)(1 − 0.4 × 0.5)
        assert!((d.risk.alerts - 0.84).abs() < 1e-6);
        assert!(d.risk.score() <= 100.0);
    }

    #[test]
    fn a_call_without_summary_is_not_a_digest() {
        let events = vec![ev(Event::Utterance(utt(
            "u0",
            Role::Caller,
            0,
            1,
            [1.0, 0.0, 0.0, 0.0, 0.0],
        )))];
        assert_eq!(
            CallDigest::from_events(&events),
            Err(DigestError::NoSummary)
        );
    }
}
