//! One CSV row per call, in input order: what a spreadsheet needs to sort and
//! filter a day of calls. Times in seconds (2 decimals), latencies in ms,
//! probabilities 0..1 (3 decimals), risk 0..100 (1 decimal); a cell is empty
//! where there is no value (a failed file, emotion switched off, no latency).
use std::io::Write;

use super::digest::{role_name, CallDigest, ALERT_KINDS};
use super::ReportCall;
use crate::emotion::CLASSES;
use crate::proto::{self, Role};

/// The roles with their own columns.
const ROLES: [Role; 2] = [Role::Caller, Role::Agent];

/// The header row.
pub fn header() -> Vec<String> {
    let mut h: Vec<String> = ["file", "name", "call_id", "status", "error", "duration_s"]
        .map(String::from)
        .to_vec();
    for r in ROLES {
        h.push(format!("utterances_{}", role_name(r as i32)));
    }
    for r in ROLES {
        h.push(format!("talk_s_{}", role_name(r as i32)));
    }
    h.extend(
        [
            "silence_s",
            "overlap_s",
            "interruptions",
            "latency_mean_ms",
            "latency_worst_ms",
            "alerts",
        ]
        .map(String::from),
    );
    for (kind, _) in ALERT_KINDS {
        h.push(format!("alerts_{kind}"));
    }
    h.extend(
        [
            "alerts_other",
            "worst_time_s",
            "worst_role",
            "worst_label",
            "worst_score",
        ]
        .map(String::from),
    );
    for r in ROLES {
        for c in CLASSES.iter().chain(&["valence", "arousal"]) {
            h.push(format!("{}_{c}", role_name(r as i32)));
        }
    }
    h.push("risk".into());
    h
}

/// Writes the header and one row per call.
pub fn write_csv(out: impl Write, calls: &[ReportCall]) -> Result<(), ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(out);
    let header = header();
    w.write_record(&header)?;
    for c in calls {
        let mut row = vec![c.file.clone(), c.name.clone()];
        match &c.result {
            Ok(d) => row.extend(ok_cells(d)),
            Err(e) => {
                row.extend([String::new(), "failed".into(), e.clone()]);
                row.resize(header.len(), String::new());
            }
        }
        debug_assert_eq!(row.len(), header.len());
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

fn secs(ms: u32) -> String {
    format!("{:.2}", f64::from(ms) / 1000.0)
}

fn prob(p: f32) -> String {
    format!("{p:.3}")
}

fn opt_ms(v: Option<i32>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The cells after `file` and `name` of a finished call.
fn ok_cells(d: &CallDigest) -> Vec<String> {
    let s = &d.summary;
    let mut row = vec![
        d.call_id.clone(),
        "ok".into(),
        String::new(),
        secs(s.duration_ms),
    ];
    let role = |r: Role| d.role(r);
    for r in ROLES {
        row.push(role(r).map(|x| x.utterances).unwrap_or(0).to_string());
    }
    for r in ROLES {
        row.push(secs(role(r).map(|x| x.talk_ms).unwrap_or(0)));
    }
    row.extend([
        secs(s.silence_ms),
        secs(s.overlap_ms),
        s.interruptions.to_string(),
        opt_ms(s.mean_response_latency_ms),
        opt_ms(s.worst_response_latency_ms),
        d.alerts.len().to_string(),
    ]);
    for (kind, _) in ALERT_KINDS {
        row.push(d.alert_count(kind).to_string());
    }
    row.push(d.other_alert_count().to_string());
    match &d.worst {
        Some(w) => row.extend([
            secs(w.start_ms),
            role_name(w.role).into(),
            w.label.clone(),
            prob(w.score),
        ]),
        None => row.extend([String::new(), String::new(), String::new(), String::new()]),
    }
    for r in ROLES {
        let mean: Option<&proto::Emotion> = role(r).and_then(|x| x.emotion_mean.as_ref());
        match mean {
            Some(e) => {
                row.extend(crate::emotion::probs(e).map(prob));
                row.extend([prob(e.valence), prob(e.arousal)]);
            }
            None => row.extend(std::iter::repeat_n(String::new(), CLASSES.len() + 2)),
        }
    }
    row.push(format!("{:.1}", d.risk.score()));
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::call_event::Event;
    use crate::report::digest::tests::{ev, utt};

    #[test]
    fn one_row_per_call_with_failed_rows_filled_to_the_header() {
        let events = vec![
            ev(Event::Utterance(utt(
                "u0",
                Role::Caller,
                1500,
                3000,
                [0.1, 0.0, 0.7, 0.1, 0.1],
            ))),
            ev(Event::Summary(proto::CallSummary {
                duration_ms: 10_000,
                silence_ms: 8500,
                alerts: vec![proto::Alert {
                    kind: "escalate".into(),
                    severity: 0.5,
                    ..Default::default()
                }],
                ..Default::default()
            })),
        ];
        let calls = vec![
            ReportCall {
                file: "day/a, b.wav".into(),
                name: "a_b".into(),
                result: Ok(CallDigest::from_events(&events).unwrap()),
            },
            ReportCall {
                file: "day/broken.wav".into(),
                name: "broken".into(),
                result: Err("not a WAV file".into()),
            },
        ];
        let mut buf = Vec::new();
        write_csv(&mut buf, &calls).unwrap();
        let mut r = ::csv::Reader::from_reader(buf.as_slice());
        let head: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(head, header());
        let rows: Vec<::csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), 2);
        let col = |row: &::csv::StringRecord, name: &str| {
            row[head.iter().position(|h| h == name).unwrap()].to_string()
        };
        let ok = &rows[0];
        assert_eq!(col(ok, "file"), "day/a, b.wav");
        assert_eq!(col(ok, "status"), "ok");
        assert_eq!(col(ok, "duration_s"), "10.00");
        assert_eq!(col(ok, "utterances_caller"), "1");
        assert_eq!(col(ok, "talk_s_caller"), "1.50");
        assert_eq!(col(ok, "alerts_escalate"), "1");
        assert_eq!(col(ok, "worst_time_s"), "1.50");
        assert_eq!(col(ok, "worst_label"), "angry");
        assert_eq!(col(ok, "caller_angry"), "0.700");
        assert_eq!(col(ok, "agent_angry"), "");
        assert_eq!(col(ok, "latency_mean_ms"), "");
        let failed = &rows[1];
        assert_eq!(col(failed, "status"), "failed");
        assert_eq!(col(failed, "error"), "not a WAV file");
        assert_eq!(col(failed, "risk"), "");
    }
}
