//! The QA report: one self-contained HTML page (inline CSS, JS and SVG; no
//! network, no external fonts). The index of calls, riskiest first, is plain
//! HTML; each call's timeline, detail and transcript are drawn by the page's
//! script from the call data embedded as JSON, one call at a time, so a day of
//! calls stays one page that opens fast.
//!
//! Transcripts, file names and alert reasons are untrusted: HTML text goes
//! through [`escape`], the embedded JSON has `<`, `>` and `&` written as
//! `\u003c`-style escapes so no string can close its `<script>` element, and
//! the script only ever sets `textContent`.
use std::fmt::Write as _;
use std::io::{self, Write};

use serde_json::{json, Value};

use super::digest::{
    role_name, CallDigest, ALERT_KINDS, CHANCE, INTERRUPTIONS_FULL_PER_MIN, OTHER_ALERT_WEIGHT,
    RISK_SHARES,
};
use super::{by_risk, ReportCall};
use crate::emotion::{probs, CLASSES, NEGATIVE};
use crate::proto::{self, Role};

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// Risk at or above which a call is marked high (red), 0..100.
pub const HIGH_RISK: f32 = 50.0;
/// Risk at or above which a call is marked medium (amber), 0..100.
pub const MEDIUM_RISK: f32 = 25.0;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that is safe inside a `<script>` element: no `<`, `>` or `&` at all.
fn script_json(v: &Value) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

/// `m:ss`, or `h:mm:ss` from an hour on.
pub fn clock(ms: u32) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn risk_level(score: f32) -> &'static str {
    if score >= HIGH_RISK {
        "high"
    } else if score >= MEDIUM_RISK {
        "medium"
    } else {
        "low"
    }
}

/// Writes the whole page.
pub fn write_html(out: &mut impl Write, calls: &[ReportCall]) -> io::Result<()> {
    out.write_all(render(calls).as_bytes())
}

/// The whole page as a string.
pub fn render(calls: &[ReportCall]) -> String {
    let ranked = by_risk(calls);
    let failed: Vec<&ReportCall> = calls.iter().filter(|c| c.result.is_err()).collect();
    let mut h = String::with_capacity(64 * 1024);
    let _ = writeln!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"callmood {}\">\n\
         <title>callmood QA report: {} calls</title>\n<style>\n{CSS}</style>\n</head>\n<body>",
        env!("CARGO_PKG_VERSION"),
        calls.len()
    );
    header(&mut h, calls, &ranked, failed.len());
    h.push_str("<main class=\"wrap\">\n");
    cards(&mut h, &ranked, failed.len());
    index(&mut h, &ranked, &failed);
    h.push_str(
        "<section class=\"panel call\" id=\"call\" aria-live=\"polite\">\n\
         <noscript><p class=\"muted\">The timelines need JavaScript; the table above \
         and calls.csv have every number.</p></noscript>\n</section>\n</main>\n",
    );
    let data = json!({
        "calls": ranked.iter().map(|(c, d)| call_json(c, d)).collect::<Vec<_>>(),
    });
    let _ = writeln!(
        h,
        "<script type=\"application/json\" id=\"callmood-data\">{}</script>\n<script>\n{JS}</script>\n</body>\n</html>",
        script_json(&data)
    );
    h
}

fn header(
    h: &mut String,
    calls: &[ReportCall],
    ranked: &[(&ReportCall, &CallDigest)],
    failed: usize,
) {
    let audio: u32 = ranked.iter().map(|(_, d)| d.summary.duration_ms).sum();
    let _ = writeln!(
        h,
        "<header class=\"top\"><div class=\"wrap\">\
         <div class=\"brand\"><span class=\"logo\" aria-hidden=\"true\"></span>callmood \
         <span class=\"thin\">QA report</span></div>\
         <div class=\"meta\">{} files · {} analysed · {} failed · {} of audio</div>\
         </div></header>",
        calls.len(),
        ranked.len(),
        failed,
        clock(audio)
    );
}

fn cards(h: &mut String, ranked: &[(&ReportCall, &CallDigest)], failed: usize) {
    let high = ranked
        .iter()
        .filter(|(_, d)| d.risk.score() >= HIGH_RISK)
        .count();
    let alerts: usize = ranked.iter().map(|(_, d)| d.alerts.len()).sum();
    let utterances: usize = ranked.iter().map(|(_, d)| d.utterances.len()).sum();
    let audio: u32 = ranked.iter().map(|(_, d)| d.summary.duration_ms).sum();
    h.push_str("<section class=\"cards\">\n");
    let card = |h: &mut String, label: &str, value: String, class: &str| {
        let _ = writeln!(
            h,
            "<div class=\"card {class}\"><div class=\"card-value\">{}</div><div class=\"card-label\">{}</div></div>",
            escape(&value),
            escape(label)
        );
    };
    card(h, "calls analysed", ranked.len().to_string(), "");
    card(h, "audio", clock(audio), "");
    card(h, "utterances", utterances.to_string(), "");
    card(
        h,
        "alerts",
        alerts.to_string(),
        if alerts > 0 { "warn" } else { "" },
    );
    card(
        h,
        &format!("high risk (≥ {HIGH_RISK:.0})"),
        high.to_string(),
        if high > 0 { "bad" } else { "" },
    );
    card(
        h,
        "failed files",
        failed.to_string(),
        if failed > 0 { "bad" } else { "" },
    );
    h.push_str("</section>\n");
}

fn index(h: &mut String, ranked: &[(&ReportCall, &CallDigest)], failed: &[&ReportCall]) {
    h.push_str(
        "<section class=\"panel\" id=\"index\">\n<div class=\"panel-head\"><h2>Calls by risk</h2>\
         <input type=\"search\" id=\"filter\" placeholder=\"Filter: name, file, alert, emotion\" \
         aria-label=\"Filter calls\"></div>\n<div class=\"table-scroll\"><table class=\"index\">\n\
         <thead><tr><th class=\"num\">#</th><th>Risk</th><th>Call</th><th class=\"num\">Length</th>\
         <th>Alerts</th><th>Worst moment</th><th class=\"num\" title=\"Utterances that began while \
         the other party spoke\">Interr.</th><th class=\"num\" title=\"Mean / worst response \
         latency\">Latency</th><th>Caller mood</th></tr></thead>\n<tbody>\n",
    );
    for (rank, (c, d)) in ranked.iter().enumerate() {
        let score = d.risk.score();
        let level = risk_level(score);
        let _ = writeln!(
            h,
            "<tr class=\"row\" data-name=\"{name}\" data-status=\"ok\" data-risk=\"{score:.1}\" tabindex=\"0\">\
             <td class=\"num rank\">{r}</td>\
             <td class=\"risk\"><span class=\"riskbar {level}\"><i style=\"width:{w:.0}%\"></i></span>\
             <b class=\"risknum {level}\">{score:.0}</b></td>\
             <td class=\"callname\"><a href=\"#call={name}\">{id}</a><small>{file}</small></td>\
             <td class=\"num\">{len}</td><td>{alerts}</td><td>{worst}</td>\
             <td class=\"num\">{interr}</td><td class=\"num\">{lat}</td><td>{mood}</td></tr>",
            name = escape(&c.name),
            r = rank + 1,
            w = score.clamp(2.0, 100.0),
            id = escape(if d.call_id.is_empty() { &c.name } else { &d.call_id }),
            file = escape(&c.file),
            len = clock(d.summary.duration_ms),
            alerts = alert_chips(d),
            worst = worst_cell(d),
            interr = d.summary.interruptions,
            lat = latency_cell(&d.summary),
            mood = mood_bar(
                d.role(Role::Caller)
                    .and_then(|r| r.emotion_mean.as_ref())
            ),
        );
    }
    for c in failed {
        let _ = writeln!(
            h,
            "<tr class=\"row failed\" data-name=\"{name}\" data-status=\"failed\">\
             <td class=\"num rank\">–</td><td><span class=\"badge failed\">failed</span></td>\
             <td class=\"callname\"><span>{name}</span><small>{file}</small></td>\
             <td colspan=\"6\" class=\"error\">{err}</td></tr>",
            name = escape(&c.name),
            file = escape(&c.file),
            err = escape(c.result.as_ref().err().map_or("", String::as_str)),
        );
    }
    if ranked.is_empty() && failed.is_empty() {
        h.push_str("<tr><td colspan=\"9\" class=\"muted\">No calls.</td></tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
    method(h);
    h.push_str("</section>\n");
}

/// The risk score's definition, from the same constants that compute it.
fn method(h: &mut String) {
    let weights: Vec<String> = ALERT_KINDS
        .iter()
        .map(|(k, w)| format!("<code>{k}</code> {w}"))
        .collect();
    let _ = writeln!(
        h,
        "<details class=\"method\"><summary>How the risk score is computed</summary>\
         <p>Risk = 100 × ({a} × <b>alerts</b> + {e} × <b>peak negative emotion</b> + {i} × \
         <b>interruptions</b>), each part between 0 and 1. Calls are listed highest first; \
         {hi:.0} and above is <span class=\"risknum high\">high</span>, {me:.0} and above \
         <span class=\"risknum medium\">medium</span>.</p><ul>\
         <li><b>Alerts</b>: 1 − Π(1 − weight × severity) over the call's alerts, so \
         several alerts add up but never pass 1. Weights: {weights}, any other kind {other}.</li>\
         <li><b>Peak negative emotion</b>: the highest probability of {neg} on any utterance \
         of either speaker (the worst moment), above chance: (p − {chance}) / {rest}.</li>\
         <li><b>Interruptions</b>: utterances begun while the other party spoke, per minute \
         of call (calls under a minute count as one), divided by {full}, at most 1.</li></ul>\
         <p class=\"muted\">A ranking aid for review, not a verdict: the emotion model's \
         accuracy is limited (see the project README).</p></details>",
        a = RISK_SHARES.alerts,
        e = RISK_SHARES.emotion,
        i = RISK_SHARES.interruptions,
        hi = HIGH_RISK,
        me = MEDIUM_RISK,
        weights = weights.join(", "),
        other = OTHER_ALERT_WEIGHT,
        neg = NEGATIVE.join(", "),
        chance = CHANCE,
        rest = 1.0 - CHANCE,
        full = INTERRUPTIONS_FULL_PER_MIN,
    );
}

fn alert_chips(d: &CallDigest) -> String {
    if d.alerts.is_empty() {
        return "<span class=\"muted\">–</span>".into();
    }
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for a in &d.alerts {
        match kinds.iter_mut().find(|(k, _)| *k == a.kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((&a.kind, 1)),
        }
    }
    kinds
        .iter()
        .map(|(k, n)| {
            let times = if *n > 1 {
                format!(" ×{n}")
            } else {
                String::new()
            };
            format!(
                "<span class=\"chip alert\">{}{times}</span>",
                escape(&k.replace('_', " "))
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn worst_cell(d: &CallDigest) -> String {
    match &d.worst {
        None => "<span class=\"muted\">–</span>".into(),
        Some(w) => {
            // The worst moment is the highest negative probability, which need not be the
            // utterance's label: say what it was read as when it differs, so that "angry
            // 32%" on an utterance read as neutral is not taken for an angry one.
            let read_as = d
                .utterances
                .iter()
                .find(|u| u.utterance_id == w.utterance_id)
                .and_then(|u| u.emotion.as_ref())
                .filter(|e| !e.top_label.is_empty() && e.top_label != w.label)
                .map(|e| {
                    format!(
                        "<small>read as {} {:.0}%</small>",
                        escape(&e.top_label),
                        e.top_confidence * 100.0
                    )
                })
                .unwrap_or_default();
            format!(
                "<span class=\"emo e-{label}\">{label} {pct:.0}%</span>{read_as}<small>{role} · \
                 {at}</small>",
                label = escape(&w.label),
                pct = w.score * 100.0,
                role = role_name(w.role),
                at = clock(w.start_ms)
            )
        }
    }
}

fn latency_cell(s: &proto::CallSummary) -> String {
    match (s.mean_response_latency_ms, s.worst_response_latency_ms) {
        (Some(m), Some(w)) => format!("{m} / {w} ms"),
        (Some(m), None) => format!("{m} ms"),
        _ => "<span class=\"muted\">–</span>".into(),
    }
}

/// A stacked bar of the five mean probabilities.
fn mood_bar(e: Option<&proto::Emotion>) -> String {
    let Some(e) = e else {
        return "<span class=\"muted\">–</span>".into();
    };
    let p = probs(e);
    let title: Vec<String> = CLASSES
        .iter()
        .zip(p)
        .map(|(c, x)| format!("{c} {:.0}%", x * 100.0))
        .collect();
    let mut s = format!(
        "<span class=\"mood\" title=\"{}\">",
        escape(&title.join(", "))
    );
    for (c, x) in CLASSES.iter().zip(p) {
        let _ = write!(
            s,
            "<i class=\"e-{c}\" style=\"width:{:.1}%\"></i>",
            (x * 100.0).clamp(0.0, 100.0)
        );
    }
    s.push_str("</span>");
    s
}

fn emotion_json(e: &proto::Emotion) -> Value {
    json!({
        "neutral": e.neutral, "happy": e.happy, "angry": e.angry, "sad": e.sad,
        "fearful": e.fearful, "valence": e.valence, "arousal": e.arousal,
        "top": e.top_label, "conf": e.top_confidence,
    })
}

/// What the page's script needs of one call.
fn call_json(c: &ReportCall, d: &CallDigest) -> Value {
    let s = &d.summary;
    let utts: Vec<Value> = d
        .utterances
        .iter()
        .map(|u| {
            json!({
                "id": u.utterance_id,
                "role": role_name(u.role),
                "start": u.start_ms,
                "end": u.end_ms,
                "text": u.transcript,
                "emo": u.emotion.as_ref().map(emotion_json),
                "cues": u.cues.iter().map(|q| json!({
                    "d": if q.description.is_empty() { &q.feature } else { &q.description },
                    "w": q.weight,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let alerts: Vec<Value> = d
        .alerts
        .iter()
        .map(|a| {
            json!({
                "kind": a.kind, "severity": a.severity, "reason": a.reason,
                "role": role_name(a.role), "at": alert_time(a, d), "ids": a.utterance_ids,
            })
        })
        .collect();
    let roles: Vec<Value> = d
        .roles
        .iter()
        .map(|r| {
            json!({
                "role": role_name(r.role as i32), "utterances": r.utterances, "talk_ms": r.talk_ms,
                "mean": r.emotion_mean.as_ref().map(emotion_json),
            })
        })
        .collect();
    json!({
        "name": c.name,
        "file": c.file,
        "call_id": d.call_id,
        "duration_ms": s.duration_ms,
        "silence_ms": s.silence_ms,
        "overlap_ms": s.overlap_ms,
        "interruptions": s.interruptions,
        "latency_mean_ms": s.mean_response_latency_ms,
        "latency_worst_ms": s.worst_response_latency_ms,
        "risk": { "score": d.risk.score(), "level": risk_level(d.risk.score()), "parts": d.risk },
        "roles": roles,
        "worst": d.worst.as_ref().map(|w| json!({
            "id": w.utterance_id, "label": w.label, "score": w.score,
            "role": role_name(w.role), "start": w.start_ms,
        })),
        "alerts": alerts,
        "utts": utts,
    })
}

/// When an alert was raised: its time, else the end of the last utterance behind it.
fn alert_time(a: &proto::Alert, d: &CallDigest) -> u32 {
    if a.at_ms > 0 {
        return a.at_ms;
    }
    a.utterance_ids
        .iter()
        .filter_map(|id| d.utterances.iter().find(|u| &u.utterance_id == id))
        .map(|u| u.end_ms)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::call_event::Event;
    use crate::report::digest::tests::{ev, utt};

    fn call(name: &str, transcript: &str, angry: f32) -> ReportCall {
        let mut u = utt(
            "u0",
            Role::Caller,
            0,
            2000,
            [1.0 - angry, 0.0, angry, 0.0, 0.0],
        );
        u.transcript = transcript.into();
        let events = vec![
            ev(Event::Utterance(u)),
            ev(Event::Summary(proto::CallSummary {
                duration_ms: 5000,
                ..Default::default()
            })),
        ];
        ReportCall {
            file: format!("in/{name}.wav"),
            name: name.into(),
            result: Ok(CallDigest::from_events(&events).unwrap()),
        }
    }

    #[test]
    fn untrusted_text_cannot_break_out_of_the_page() {
        let evil = "</script><script>alert(1)</script><img src=x onerror=alert(2)> & \"'";
        let mut calls = vec![call("a", evil, 0.9)];
        calls.push(ReportCall {
            file: "<b>x</b>.wav".into(),
            name: "x".into(),
            result: Err("bad <header>".into()),
        });
        let page = render(&calls);
        assert!(!page.contains("<img src=x"));
        assert!(!page.contains("<b>x</b>"));
        assert!(page.contains("bad &lt;header&gt;"));
        // Only the page's own two script elements, and the data parses back.
        assert_eq!(page.matches("<script").count(), 2);
        assert_eq!(page.matches("</script>").count(), 2);
        let start = page.find("id=\"callmood-data\">").unwrap() + "id=\"callmood-data\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        let data: Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(data["calls"][0]["utts"][0]["text"], evil);
    }

    #[test]
    fn index_is_in_risk_order_and_failed_files_are_listed() {
        let calls = vec![
            call("calm", "fine thanks", 0.1),
            ReportCall {
                file: "in/broken.wav".into(),
                name: "broken".into(),
                result: Err("not a WAV file".into()),
            },
            call("angry", "this is ridiculous", 0.95),
        ];
        let page = render(&calls);
        let pos = |s: &str| page.find(s).unwrap();
        assert!(pos("data-name=\"angry\"") < pos("data-name=\"calm\""));
        assert!(pos("data-name=\"calm\"") < pos("data-name=\"broken\""));
        assert!(page.contains("not a WAV file"));
        // Self-contained: nothing to fetch.
        for needle in ["src=", "<link", "@import", "url("] {
            assert!(!page.contains(needle), "{needle}");
        }
    }

    /// The worst moment's cell names the utterance's own label where it is not the
    /// negative class that peaked, and only there.
    #[test]
    fn worst_moment_says_what_its_utterance_was_read_as() {
        let calm = call("calm", "fine thanks", 0.32);
        let Ok(d) = &calm.result else { panic!() };
        let cell = worst_cell(d);
        assert!(cell.contains("angry 32%"), "{cell}");
        assert!(cell.contains("read as neutral 68%"), "{cell}");
        let angry = call("angry", "this is absurd", 0.9);
        let Ok(d) = &angry.result else { panic!() };
        let cell = worst_cell(d);
        assert!(
            cell.contains("angry 90%") && !cell.contains("read as"),
            "{cell}"
        );
    }

    #[test]
    fn clock_reads_minutes_and_hours() {
        assert_eq!(clock(83_400), "1:23");
        assert_eq!(clock(3_723_000), "1:02:03");
    }
}
