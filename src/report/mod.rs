//! Output of events for people and tools: JSON lines (proto3 JSON mapping with
//! the proto's snake_case field names, the oneof member as the key), and the
//! QA reports built from them.
//!
//! - [`digest`]: a finished call's events condensed: talk, alerts, worst moment,
//!   mean emotion per role, risk score.
//! - [`csv`]: one row per call.
//! - [`html`]: a self-contained page: calls by risk, each call's timeline and transcript.
use std::io::{BufRead, Write};

use crate::proto::CallEvent;

pub mod csv;
pub mod digest;
pub mod html;

pub use digest::CallDigest;

/// Writes one event as one line of JSON.
pub fn write_jsonl(out: &mut impl Write, event: &CallEvent) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")
}

/// A line of JSON lines that could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("line {line}: {source}")]
    Json {
        line: usize,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads events written by [`write_jsonl`]; blank lines are skipped.
pub fn read_jsonl(input: impl BufRead) -> Result<Vec<CallEvent>, ReadError> {
    let mut events = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let ev = serde_json::from_str(&line).map_err(|source| ReadError::Json {
            line: i + 1,
            source,
        })?;
        events.push(ev);
    }
    Ok(events)
}

/// One input file of a report: where it came from and what became of it.
#[derive(Clone, Debug)]
pub struct ReportCall {
    /// The input file as given (a path).
    pub file: String,
    /// Its results' name (`calls/<name>.jsonl`), unique within the report.
    pub name: String,
    /// The finished call, or why the file failed.
    pub result: Result<CallDigest, String>,
}

/// The calls with a result, riskiest first; ties keep input order.
pub fn by_risk(calls: &[ReportCall]) -> Vec<(&ReportCall, &CallDigest)> {
    let mut ok: Vec<(&ReportCall, &CallDigest)> = calls
        .iter()
        .filter_map(|c| c.result.as_ref().ok().map(|d| (c, d)))
        .collect();
    ok.sort_by(|a, b| b.1.risk.score().total_cmp(&a.1.risk.score()));
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{call_event::Event, Utterance};

    #[test]
    fn oneof_member_is_the_key_and_names_are_snake_case() {
        let ev = CallEvent {
            call_id: "c1".into(),
            event: Some(Event::Utterance(Utterance {
                utterance_id: "u0001".into(),
                start_ms: 1200,
                transcript: "hello".into(),
                role: crate::proto::Role::Caller as i32,
                ..Default::default()
            })),
        };
        let mut buf = Vec::new();
        write_jsonl(&mut buf, &ev).unwrap();
        let s = String::from_utf8(buf).unwrap();
        assert!(s.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["call_id"], "c1");
        assert_eq!(v["utterance"]["start_ms"], 1200);
        assert_eq!(v["utterance"]["utterance_id"], "u0001");
        assert_eq!(v["utterance"]["transcript"], "hello");
        assert_eq!(v["utterance"]["role"], "CALLER");
        // Round trip through the same mapping.
        let back: CallEvent = serde_json::from_str(&s).unwrap();
        assert_eq!(back, ev);
    }
}
