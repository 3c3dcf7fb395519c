//! The fairness audit (`callmood audit`): how the voice model's accuracy, calibration and
//! calm-speech false alarms differ between groups of speakers (gender, age group, corpus,
//! accent), each figure with a speaker-bootstrap 95% interval, and one plain verdict per
//! pair of groups: settled only when the interval of the difference excludes 0.
//!
//! Works on per-clip [`Predictions`] (from [`crate::train::dataset::predict`]); the groups
//! come from the clips' gender and from speaker attributes (manifest columns `age` and
//! `accent`, or `--age SPEAKER=AGE`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::core::rng::SplitMix64;
use crate::emotion::metrics::{argmax, confusion, ece, uar};
use crate::emotion::N_CLASSES;
use crate::report::html::escape;
use crate::train::voice::{percentiles_95, CalmFalseAlarms, Predictions, BOOTSTRAP_RESAMPLES};

/// Class indices in [`crate::emotion::CLASSES`].
const NEUTRAL: usize = 0;
#[cfg(test)]
const ANGRY: usize = 2;

/// Manifest columns read as speaker attributes, besides gender.
pub const ATTRIBUTE_COLUMNS: [&str; 2] = ["age", "accent"];

/// A figure and its speaker-bootstrap 95% interval.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Estimate {
    /// On all the group's clips.
    pub value: f32,
    /// 2.5th and 97.5th percentiles over the resamples.
    pub interval: [f32; 2],
}

/// One group's figures.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct GroupFigures {
    /// The group (`F`, `60 and over`, `tess`, ...).
    pub group: String,
    /// Clips scored.
    pub clips: usize,
    /// Speakers behind them.
    pub speakers: usize,
    /// Unweighted average recall.
    pub uar: Estimate,
    /// Share of clips whose top label is right.
    pub accuracy: Estimate,
    /// Expected calibration error of the top label (10 bins).
    pub ece: Estimate,
    /// Neutral-labelled clips.
    pub calm_clips: usize,
    /// Share of the neutral-labelled clips whose top label is angry; `None` without any.
    pub calm_false_angry: Option<Estimate>,
    /// Share of the neutral-labelled clips whose top label is fearful; `None` without any.
    pub calm_fearful: Option<Estimate>,
}

/// A comparison of two groups on one figure.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Comparison {
    /// `uar` or `calm_false_angry`.
    pub metric: String,
    /// The group that does worse on it (lower UAR, more false alarms).
    pub worse: String,
    /// The other group.
    pub better: String,
    /// How much worse, in percentage points (≥ 0).
    pub difference: f32,
    /// Speaker-bootstrap 95% interval of the difference, same orientation, points.
    pub interval: [f32; 2],
    /// The interval excludes 0 and each group has at least two speakers.
    pub settled: bool,
    /// The plain sentence.
    pub verdict: String,
}

/// The groups of one dimension (gender, age group, ...) and their comparisons.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Dimension {
    /// `gender`, `age group`, `corpus` or `accent`.
    pub name: String,
    /// Each group's figures, in name order.
    pub groups: Vec<GroupFigures>,
    /// Every pair of groups on UAR and on calm false-angry share.
    pub comparisons: Vec<Comparison>,
}

/// The audit of one protocol.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProtocolAudit {
    /// `running` (each speaker as one call; the headline) or `cold` (each clip alone).
    pub protocol: String,
    /// All clips together.
    pub overall: GroupFigures,
    /// Each dimension with at least two groups.
    pub dimensions: Vec<Dimension>,
}

/// What `callmood audit` prints.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AuditReport {
    /// Condition the clips were heard in.
    pub condition: String,
    /// The corpus directories audited.
    pub corpora: Vec<String>,
    /// The voice model file.
    pub model: String,
    /// Speaker resamples behind each interval.
    pub resamples: usize,
    /// Running first, then cold.
    pub protocols: Vec<ProtocolAudit>,
    /// What could not be audited and why (no age, one group only, ...).
    pub notes: Vec<String>,
}

/// A speaker's attributes: column name (`age`, `accent`, `corpus`) → value.
pub type SpeakerAttributes = BTreeMap<String, BTreeMap<String, String>>;

/// The [`ATTRIBUTE_COLUMNS`] a manifest has, per speaker (the first non-empty value of
/// each); speakers named with `prefix` in front (`tess/` when corpora are merged).
pub fn read_speaker_attributes(
    dir: &Path,
    prefix: &str,
) -> Result<SpeakerAttributes, crate::train::corpus::CorpusError> {
    use crate::train::corpus::{open_manifest, CorpusError};
    let (path, mut rdr, headers) = open_manifest(dir)?;
    let err = |source| CorpusError::Manifest {
        path: path.clone(),
        source,
    };
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let speaker = column("speaker").ok_or(CorpusError::MissingColumn {
        path: path.clone(),
        column: "speaker",
        need: &crate::train::corpus::REQUIRED_COLUMNS,
    })?;
    let wanted: Vec<(&str, usize)> = ATTRIBUTE_COLUMNS
        .iter()
        .filter_map(|c| Some((*c, column(c)?)))
        .collect();
    let mut out = SpeakerAttributes::new();
    for rec in rdr.records() {
        let rec = rec.map_err(err)?;
        let s = format!("{prefix}{}", rec.get(speaker).unwrap_or(""));
        let attrs = out.entry(s).or_default();
        for (name, i) in &wanted {
            let v = rec.get(*i).unwrap_or("");
            if !v.is_empty() {
                attrs
                    .entry(name.to_string())
                    .or_insert_with(|| v.to_string());
            }
        }
    }
    Ok(out)
}

/// Sets `age` from `--age SPEAKER=AGE` pairs: `SPEAKER` is a full speaker id or one
/// without its corpus prefix (`OAF` matches `tess/OAF`). Errors on a malformed pair or
/// one that matches no speaker.
pub fn apply_ages(attrs: &mut SpeakerAttributes, pairs: &[String]) -> Result<(), String> {
    for pair in pairs {
        let (who, age) = pair
            .split_once('=')
            .filter(|(w, a)| !w.trim().is_empty() && !a.trim().is_empty())
            .ok_or_else(|| format!("--age {pair}: expected SPEAKER=AGE"))?;
        let (who, age) = (who.trim(), age.trim());
        let mut hit = false;
        for (speaker, a) in attrs.iter_mut() {
            if speaker == who || speaker.rsplit_once('/').is_some_and(|(_, s)| s == who) {
                a.insert("age".into(), age.to_string());
                hit = true;
            }
        }
        if !hit {
            return Err(format!("--age {pair}: no speaker `{who}` in the corpora"));
        }
    }
    Ok(())
}

/// The age group of an age as written: a number falls in under 40, 40 to 59, or 60 and
/// over; anything else is its own group.
pub fn age_group(age: &str) -> String {
    match age.parse::<f32>() {
        Ok(a) if a < 40.0 => "under 40".into(),
        Ok(a) if a < 60.0 => "40 to 59".into(),
        Ok(_) => "60 and over".into(),
        Err(_) => age.to_string(),
    }
}

/// Each clip's group in each dimension (`None`: unknown, left out of that dimension):
/// gender from the clips, age group, corpus and accent from the speakers' attributes.
pub fn clip_groups(
    p: &Predictions,
    attrs: &SpeakerAttributes,
) -> Vec<(String, Vec<Option<String>>)> {
    let attr = |s: &str, k: &str| attrs.get(s).and_then(|a| a.get(k)).cloned();
    let of = |f: &dyn Fn(usize) -> Option<String>| (0..p.y.len()).map(f).collect();
    vec![
        (
            "gender".into(),
            of(&|i| Some(p.gender[i].clone()).filter(|g| !g.is_empty())),
        ),
        (
            "age group".into(),
            of(&|i| attr(&p.speaker[i], "age").map(|a| age_group(&a))),
        ),
        ("corpus".into(), of(&|i| attr(&p.speaker[i], "corpus"))),
        ("accent".into(), of(&|i| attr(&p.speaker[i], "accent"))),
    ]
}

/// The five figures of a set of clips: UAR, accuracy, ECE, calm false-angry share and calm
/// fearful share (the last two NaN without neutral-labelled clips).
fn figures(p: &Predictions, pred: &[usize], clips: &[usize]) -> [f32; 5] {
    let y: Vec<usize> = clips.iter().map(|&i| p.y[i]).collect();
    let yp: Vec<usize> = clips.iter().map(|&i| pred[i]).collect();
    let probs: Vec<Vec<f32>> = clips.iter().map(|&i| p.probs[i].clone()).collect();
    let n = clips.len().max(1) as f32;
    let right = y.iter().zip(&yp).filter(|(a, b)| a == b).count() as f32;
    let calm = CalmFalseAlarms::of(&y, &probs);
    let share = |f: fn(&CalmFalseAlarms) -> f32| calm.as_ref().map_or(f32::NAN, f);
    [
        uar(&confusion(&y, &yp, N_CLASSES)),
        right / n,
        ece(&probs, &y, 10),
        share(|c| c.angry_share),
        share(|c| c.fearful_share),
    ]
}

/// The clips of each speaker of a group.
fn by_speaker(p: &Predictions, clips: &[usize]) -> Vec<Vec<usize>> {
    let mut m: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in clips {
        m.entry(p.speaker[i].as_str()).or_default().push(i);
    }
    m.into_values().collect()
}

/// One speaker resample of a group: as many speakers as it has, drawn with replacement,
/// their clips pooled.
fn resample(speakers: &[Vec<usize>], rng: &mut SplitMix64) -> Vec<usize> {
    (0..speakers.len())
        .flat_map(|_| speakers[rng.below(speakers.len())].iter().copied())
        .collect()
}

/// The 2.5th and 97.5th percentiles of the finite values of `v` (`[NaN, NaN]` without any).
fn interval_95(mut v: Vec<f32>) -> [f32; 2] {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return [f32::NAN; 2];
    }
    percentiles_95(&mut v)
}

/// A group's figures with their speaker-bootstrap intervals.
pub fn group_figures(
    p: &Predictions,
    pred: &[usize],
    name: &str,
    clips: &[usize],
    resamples: usize,
    seed: u64,
) -> GroupFigures {
    let speakers = by_speaker(p, clips);
    let point = figures(p, pred, clips);
    let mut rng = SplitMix64::new(seed);
    let draws: Vec<[f32; 5]> = (0..resamples)
        .map(|_| figures(p, pred, &resample(&speakers, &mut rng)))
        .collect();
    let est = |k: usize| Estimate {
        value: point[k],
        interval: interval_95(draws.iter().map(|d| d[k]).collect()),
    };
    let calm_clips = clips.iter().filter(|&&i| p.y[i] == NEUTRAL).count();
    GroupFigures {
        group: name.to_string(),
        clips: clips.len(),
        speakers: speakers.len(),
        uar: est(0),
        accuracy: est(1),
        ece: est(2),
        calm_clips,
        calm_false_angry: (calm_clips > 0).then(|| est(3)),
        calm_fearful: (calm_clips > 0).then(|| est(4)),
    }
}

/// Bootstrap of the difference of figure `k` between groups `a` and `b` (a − b): each
/// resample draws the speakers of both groups anew. Points.
pub fn difference_interval(
    p: &Predictions,
    pred: &[usize],
    a: &[usize],
    b: &[usize],
    k: usize,
    resamples: usize,
    seed: u64,
) -> [f32; 2] {
    let (sa, sb) = (by_speaker(p, a), by_speaker(p, b));
    let mut rng = SplitMix64::new(seed);
    let diffs = (0..resamples)
        .map(|_| {
            let fa = figures(p, pred, &resample(&sa, &mut rng))[k];
            let fb = figures(p, pred, &resample(&sb, &mut rng))[k];
            100.0 * (fa - fb)
        })
        .collect();
    interval_95(diffs)
}

/// A number of points as the verdicts write it: one decimal, a real minus sign.
fn points(v: f32) -> String {
    let s = format!("{v:.1}");
    match s.strip_prefix('-') {
        Some(rest) if rest != "0.0" => format!("−{rest}"),
        Some(rest) => rest.to_string(),
        None => s,
    }
}

/// The plain verdict: "male UAR 6.1 points below female, interval −2.0–14.3: not settled".
/// `what` names the figure and the direction (`UAR`, `below`), `speakers` the fewest
/// speakers of the two groups.
pub fn verdict(
    worse: &str,
    better: &str,
    what: (&str, &str),
    difference: f32,
    interval: [f32; 2],
    speakers: usize,
) -> (bool, String) {
    let excludes_zero = interval[0] > 0.0 || interval[1] < 0.0;
    let settled = excludes_zero && speakers >= 2;
    let tail = if speakers < 2 {
        "not settled (one speaker in a group: a difference between voices, not groups)"
    } else if settled {
        "settled"
    } else {
        "not settled"
    };
    let line = format!(
        "{worse} {} {} points {} {better}, interval {}–{}: {tail}",
        what.0,
        points(difference),
        what.1,
        points(interval[0]),
        points(interval[1]),
    );
    (settled, line)
}

/// Compares two groups on figure `k` (0 UAR: lower is worse; 3 false-angry: higher is
/// worse).
fn compare(
    p: &Predictions,
    pred: &[usize],
    (na, a, fa): (&str, &[usize], &GroupFigures),
    (nb, b, fb): (&str, &[usize], &GroupFigures),
    k: usize,
    resamples: usize,
    seed: u64,
) -> Option<Comparison> {
    let (va, vb, metric, what) = match k {
        0 => (fa.uar.value, fb.uar.value, "uar", ("UAR", "below")),
        _ => (
            fa.calm_false_angry.as_ref()?.value,
            fb.calm_false_angry.as_ref()?.value,
            "calm_false_angry",
            ("calm false-angry share", "above"),
        ),
    };
    // Oriented so that the difference is ≥ 0 and the first group the worse.
    let a_worse = if k == 0 { va <= vb } else { va >= vb };
    let (wn, w, bn, bc) = if a_worse {
        (na, a, nb, b)
    } else {
        (nb, b, na, a)
    };
    let sign = if k == 0 { -1.0 } else { 1.0 };
    let [lo, hi] = difference_interval(p, pred, w, bc, k, resamples, seed);
    let interval = if k == 0 { [-hi, -lo] } else { [lo, hi] };
    let difference = sign * 100.0 * (if a_worse { va - vb } else { vb - va });
    let speakers = fa.speakers.min(fb.speakers);
    let (settled, line) = verdict(wn, bn, what, difference, interval, speakers);
    Some(Comparison {
        metric: metric.into(),
        worse: wn.into(),
        better: bn.into(),
        difference,
        interval,
        settled,
        verdict: line,
    })
}

/// The audit of one protocol's predictions over the `groups` of [`clip_groups`]; every
/// dimension with fewer than two groups is left out (and named in `notes`).
pub fn audit_protocol(
    protocol: &str,
    p: &Predictions,
    groups: &[(String, Vec<Option<String>>)],
    resamples: usize,
    notes: &mut BTreeSet<String>,
) -> ProtocolAudit {
    let pred: Vec<usize> = p.probs.iter().map(|q| argmax(q)).collect();
    let all: Vec<usize> = (0..p.y.len()).collect();
    let overall = group_figures(p, &pred, "all", &all, resamples, 0xB007_57AB);
    let mut dimensions = Vec::new();
    for (d, (name, keys)) in groups.iter().enumerate() {
        let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            if let Some(k) = k {
                members.entry(k.as_str()).or_default().push(i);
            }
        }
        if members.len() < 2 {
            notes.insert(match members.keys().next() {
                None => format!("{name}: not known for any speaker, not audited"),
                Some(g) => format!("{name}: one group only ({g}), nothing to compare"),
            });
            continue;
        }
        let unknown = keys.iter().filter(|k| k.is_none()).count();
        if unknown > 0 {
            notes.insert(format!(
                "{name}: {unknown} clips of speakers without it left out"
            ));
        }
        let seed = |j: usize| 0xB007_57AB ^ ((d as u64) << 40) ^ j as u64;
        let members: Vec<(&str, Vec<usize>)> = members.into_iter().collect();
        let figs: Vec<GroupFigures> = members
            .iter()
            .enumerate()
            .map(|(j, (g, c))| group_figures(p, &pred, g, c, resamples, seed(j + 1)))
            .collect();
        let mut comparisons = Vec::new();
        for i in 0..members.len() {
            for j in i + 1..members.len() {
                for k in [0, 3] {
                    comparisons.extend(compare(
                        p,
                        &pred,
                        (members[i].0, &members[i].1, &figs[i]),
                        (members[j].0, &members[j].1, &figs[j]),
                        k,
                        resamples,
                        seed(1000 + 100 * i + j) ^ ((k as u64) << 20),
                    ));
                }
            }
        }
        dimensions.push(Dimension {
            name: name.clone(),
            groups: figs,
            comparisons,
        });
    }
    ProtocolAudit {
        protocol: protocol.into(),
        overall,
        dimensions,
    }
}

/// The full audit: running (headline) then cold.
pub fn audit(
    running: &Predictions,
    cold: &Predictions,
    attrs: &SpeakerAttributes,
    meta: (String, Vec<String>, String),
) -> AuditReport {
    let mut notes = BTreeSet::new();
    let protocols = [("running", running), ("cold", cold)]
        .into_iter()
        .map(|(name, p)| {
            let groups = clip_groups(p, attrs);
            audit_protocol(name, p, &groups, BOOTSTRAP_RESAMPLES, &mut notes)
        })
        .collect();
    AuditReport {
        condition: meta.0,
        corpora: meta.1,
        model: meta.2,
        resamples: BOOTSTRAP_RESAMPLES,
        protocols,
        notes: notes.into_iter().collect(),
    }
}

/// `value [lo–hi]` in points (or `n/a`).
fn est_text(e: Option<&Estimate>) -> String {
    match e {
        Some(e) => format!(
            "{} [{}–{}]",
            points(100.0 * e.value),
            points(100.0 * e.interval[0]),
            points(100.0 * e.interval[1])
        ),
        None => "n/a".into(),
    }
}

/// ECE as a fraction: `0.123 [0.100–0.150]`.
fn ece_text(e: &Estimate) -> String {
    format!("{:.3} [{:.3}–{:.3}]", e.value, e.interval[0], e.interval[1])
}

/// The report as readable lines: the verdicts first, then each group's figures.
pub fn render_text(r: &AuditReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "fairness audit: {} ({}), model {}, {} speaker resamples per interval",
        r.corpora.join(", "),
        r.condition,
        r.model,
        r.resamples
    );
    for pa in &r.protocols {
        let _ = writeln!(s, "\n{} protocol:", protocol_title(&pa.protocol));
        for v in pa.dimensions.iter().flat_map(|d| &d.comparisons) {
            let _ = writeln!(s, "  {}", v.verdict);
        }
        let _ = writeln!(
            s,
            "  (UAR, accuracy, calm false-angry and fearful shares in points; intervals 95%)"
        );
        let mut line = |g: &GroupFigures, dim: &str| {
            let _ = writeln!(
                s,
                "  {dim} {}: {} clips, {} speaker{}; UAR {}, accuracy {}, ECE {}, calm false-angry {}, calm fearful {} ({} calm clips)",
                g.group,
                g.clips,
                g.speakers,
                if g.speakers == 1 { "" } else { "s" },
                est_text(Some(&g.uar)),
                est_text(Some(&g.accuracy)),
                ece_text(&g.ece),
                est_text(g.calm_false_angry.as_ref()),
                est_text(g.calm_fearful.as_ref()),
                g.calm_clips
            );
        };
        line(&pa.overall, "overall");
        for d in &pa.dimensions {
            for g in &d.groups {
                line(g, &d.name);
            }
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(s, "\nnotes:");
        for n in &r.notes {
            let _ = writeln!(s, "  {n}");
        }
    }
    s
}

fn protocol_title(p: &str) -> &'static str {
    match p {
        "running" => "Running (each speaker as one call, shuffled; the headline)",
        _ => "Cold (each clip alone)",
    }
}

const AUDIT_CSS: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222;padding:0 1em}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}h3{font-size:1em}\
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}\
ul.verdicts li{margin:.2em 0}.settled{color:#a40000;font-weight:600}.open{color:#555}\
.meta,.note{color:#555}";

/// The report as one self-contained HTML page (inline CSS, no script, no external asset);
/// every text from the data passes through [`escape`].
pub fn render_html(r: &AuditReport) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Voice emotion fairness audit</title><style>{AUDIT_CSS}</style></head><body>\
<h1>Voice emotion fairness audit</h1><p class=\"meta\">Corpora: {}. Condition: {}. Model: {}. Each interval: 95%, {} resamples of speakers within each group; a difference is settled only when its interval excludes 0 and each group has at least two speakers.</p>",
        escape(&r.corpora.join(", ")),
        escape(&r.condition),
        escape(&r.model),
        r.resamples
    );
    for pa in &r.protocols {
        let _ = write!(
            h,
            "<h2>{}</h2><ul class=\"verdicts\">",
            escape(protocol_title(&pa.protocol))
        );
        for c in pa.dimensions.iter().flat_map(|d| &d.comparisons) {
            let _ = write!(
                h,
                "<li class=\"{}\">{}</li>",
                if c.settled { "settled" } else { "open" },
                escape(&c.verdict)
            );
        }
        h.push_str("</ul>");
        for (title, groups) in std::iter::once(("all clips", std::slice::from_ref(&pa.overall)))
            .chain(
                pa.dimensions
                    .iter()
                    .map(|d| (d.name.as_str(), d.groups.as_slice())),
            )
        {
            let _ = write!(
                h,
                "<h3>{}</h3><table><tr><th>group</th><th>clips</th><th>speakers</th><th>UAR %</th><th>accuracy %</th><th>ECE</th><th>calm clips</th><th>calm → angry %</th><th>calm → fearful %</th></tr>",
                escape(title)
            );
            for g in groups {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&g.group),
                    g.clips,
                    g.speakers,
                    escape(&est_text(Some(&g.uar))),
                    escape(&est_text(Some(&g.accuracy))),
                    escape(&ece_text(&g.ece)),
                    g.calm_clips,
                    escape(&est_text(g.calm_false_angry.as_ref())),
                    escape(&est_text(g.calm_fearful.as_ref())),
                );
            }
            h.push_str("</table>");
        }
    }
    if !r.notes.is_empty() {
        h.push_str("<h2>Notes</h2><ul class=\"note\">");
        for n in &r.notes {
            let _ = write!(h, "<li>{}</li>", escape(n));
        }
        h.push_str("</ul>");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `speakers` speakers of gender `g`, each with 10 clips (2 per class); each speaker
    /// gets `right` of them right and reads its two calm clips as `calm_as`.
    fn add(p: &mut Predictions, g: &str, speakers: usize, right: usize, calm_as: usize) {
        for s in 0..speakers {
            for c in 0..10 {
                let y = c % N_CLASSES;
                let guess = if y == NEUTRAL {
                    calm_as
                } else if c < right + 2 {
                    y
                } else {
                    (y + 1) % N_CLASSES
                };
                let mut probs = vec![0.1f32; N_CLASSES];
                probs[guess] = 0.6;
                p.push(y, probs, g, &format!("{g}{s}"));
            }
        }
    }

    #[test]
    fn groups_come_from_gender_and_speaker_attributes() {
        let mut p = Predictions::default();
        add(&mut p, "F", 2, 8, NEUTRAL);
        add(&mut p, "M", 1, 8, NEUTRAL);
        let mut attrs = SpeakerAttributes::new();
        for s in ["F0", "F1", "M0"] {
            attrs.entry(s.into()).or_default();
        }
        attrs
            .get_mut("F0")
            .unwrap()
            .insert("accent".into(), "scots".into());
        apply_ages(&mut attrs, &["F0=64".into(), "F1=26".into()]).unwrap();
        assert!(apply_ages(&mut attrs, &["nobody=3".into()]).is_err());
        assert!(apply_ages(&mut attrs, &["F0".into()]).is_err());
        let g = clip_groups(&p, &attrs);
        let dim = |n: &str| &g.iter().find(|(d, _)| d == n).unwrap().1;
        assert_eq!(dim("gender")[0].as_deref(), Some("F"));
        assert_eq!(dim("gender")[25].as_deref(), Some("M"));
        assert_eq!(dim("age group")[0].as_deref(), Some("60 and over"));
        assert_eq!(dim("age group")[10].as_deref(), Some("under 40"));
        assert_eq!(dim("age group")[25], None);
        assert_eq!(dim("accent")[0].as_deref(), Some("scots"));
        assert!(dim("corpus").iter().all(Option::is_none));

        let mut notes = BTreeSet::new();
        let a = audit_protocol("running", &p, &g, 200, &mut notes);
        let names: Vec<&str> = a.dimensions.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["gender", "age group"]);
        assert!(notes.iter().any(|n| n.starts_with("corpus: not known")));
        assert!(notes
            .iter()
            .any(|n| n.starts_with("accent: one group only")));
        let gender = &a.dimensions[0];
        assert_eq!(gender.groups[0].speakers, 2);
        assert_eq!(gender.groups[0].clips, 20);
        assert_eq!(a.overall.clips, 30);
    }

    #[test]
    fn a_difference_between_many_speakers_is_settled_and_a_tie_is_not() {
        let mut p = Predictions::default();
        // Women mostly right and calm read as calm; men often wrong and calm read as angry.
        add(&mut p, "F", 6, 8, NEUTRAL);
        add(&mut p, "M", 6, 2, ANGRY);
        let g = clip_groups(&p, &SpeakerAttributes::new());
        let a = audit_protocol("running", &p, &g, 500, &mut BTreeSet::new());
        let c = &a.dimensions[0].comparisons;
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].worse.as_str(), c[0].better.as_str()), ("M", "F"));
        assert!(c[0].difference > 0.0 && c[0].settled, "{:?}", c[0]);
        assert!(c[0].verdict.starts_with("M UAR "), "{}", c[0].verdict);
        assert!(c[0].verdict.ends_with(": settled"), "{}", c[0].verdict);
        assert_eq!(c[1].metric, "calm_false_angry");
        assert!((c[1].difference - 100.0).abs() < 1e-3, "{:?}", c[1]);
        assert!(c[1]
            .verdict
            .starts_with("M calm false-angry share 100.0 points above F"));

        // Every speaker equally good: the difference interval straddles 0 (or is 0).
        let mut p = Predictions::default();
        add(&mut p, "F", 4, 6, NEUTRAL);
        add(&mut p, "M", 4, 6, NEUTRAL);
        let g = clip_groups(&p, &SpeakerAttributes::new());
        let a = audit_protocol("cold", &p, &g, 300, &mut BTreeSet::new());
        assert!(a.dimensions[0].comparisons.iter().all(|c| !c.settled));
    }

    #[test]
    fn the_difference_bootstrap_follows_the_spread_between_speakers() {
        // Men vary from speaker to speaker (some good, some bad), women do not: the
        // interval of the difference is wide and contains the point estimate.
        let mut p = Predictions::default();
        add(&mut p, "F", 4, 6, NEUTRAL);
        for (s, right) in [8, 0, 8, 0].into_iter().enumerate() {
            let mut one = Predictions::default();
            add(&mut one, "M", 1, right, NEUTRAL);
            one.speaker.iter_mut().for_each(|x| *x = format!("M{s}"));
            p.extend(one);
        }
        let pred: Vec<usize> = p.probs.iter().map(|q| argmax(q)).collect();
        let f: Vec<usize> = (0..40).collect();
        let m: Vec<usize> = (40..80).collect();
        let [lo, hi] = difference_interval(&p, &pred, &m, &f, 0, 1000, 7);
        assert!(lo < -20.0 && hi > 10.0, "{lo} {hi}");
        // Same seed, same interval.
        assert_eq!(difference_interval(&p, &pred, &m, &f, 0, 1000, 7), [lo, hi]);
        // Within one gender all speakers alike: no spread at all.
        let [a, b] = difference_interval(&p, &pred, &f[..20], &f[20..], 0, 200, 1);
        assert_eq!((a, b), (0.0, 0.0));
    }

    #[test]
    fn verdict_wording() {
        let (settled, line) = verdict("male", "female", ("UAR", "below"), 6.1, [-2.0, 14.3], 6);
        assert!(!settled);
        assert_eq!(
            line,
            "male UAR 6.1 points below female, interval −2.0–14.3: not settled"
        );
        let (settled, line) = verdict("M", "F", ("UAR", "below"), 6.1, [2.0, 14.3], 6);
        assert!(settled);
        assert!(line.ends_with("interval 2.0–14.3: settled"), "{line}");
        // One speaker in a group: never settled, whatever the interval.
        let (settled, line) = verdict(
            "60 and over",
            "under 40",
            ("calm false-angry share", "above"),
            12.0,
            [12.0, 12.0],
            1,
        );
        assert!(!settled);
        assert!(line.contains("not settled (one speaker"), "{line}");
        assert_eq!(points(-0.04), "0.0");
        assert_eq!(points(-1.25), "−1.2");
    }

    #[test]
    fn ages_fall_in_groups_and_pages_escape_names() {
        assert_eq!(age_group("26"), "under 40");
        assert_eq!(age_group("45"), "40 to 59");
        assert_eq!(age_group("64"), "60 and over");
        assert_eq!(age_group("adult"), "adult");
        let mut p = Predictions::default();
        add(&mut p, "<b>", 2, 8, NEUTRAL);
        add(&mut p, "M", 2, 8, NEUTRAL);
        let r = audit(
            &p,
            &p,
            &SpeakerAttributes::new(),
            ("clean".into(), vec!["x".into()], "m.json".into()),
        );
        let html = render_html(&r);
        assert!(!html.contains("<b>") && html.contains("&lt;b&gt;"));
        assert!(!html.contains("<script") && !html.contains("http"));
        let text = render_text(&r);
        assert!(text.contains("Running") && text.contains("Cold"), "{text}");
        assert!(serde_json::to_string(&r).unwrap().contains("\"protocols\""));
    }
}
