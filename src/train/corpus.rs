//! Labelled speech corpora for `callmood train` and `callmood eval`: a directory with a
//! `manifest.csv` (columns `file,speaker,gender,emotion`; extra columns ignored) and the
//! audio it names (WAV or FLAC, any sample rate, mixed to mono).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::call::{CallCore, CallSettings, ChannelSpec, Ended};
use crate::core::codec::{wav::read_wav_file, Encoding};
use crate::core::dsp::resample::Resampler;
use crate::core::dsp::DspPlan;
use crate::emotion::{class_of_label, is_excluded_label};
use crate::proto::Role;
use crate::train::degrade::{telephony, LineConfig};
use crate::SAMPLE_RATE;

/// Silence between clips fed as one call, ms: longer than the endpointer's end-of-utterance
/// wait, so that clips never merge.
pub const CLIP_GAP_MS: u32 = 1500;

/// Columns the manifest must have.
pub const REQUIRED_COLUMNS: [&str; 4] = ["file", "speaker", "gender", "emotion"];

/// What is wrong with a corpus.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The manifest could not be read.
    #[error("cannot read {path}: {source}")]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// The CSV reader's error.
        source: csv::Error,
    },
    /// A required column is missing.
    #[error("{path}: no column `{column}` (need {need:?})")]
    MissingColumn {
        /// The manifest's path.
        path: PathBuf,
        /// The missing column.
        column: &'static str,
        /// The columns this kind of manifest needs.
        need: &'static [&'static str],
    },
    /// An audio file could not be read or decoded.
    #[error("{path}: {reason}")]
    Audio {
        /// The audio file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// One labelled clip.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// Audio file path (the manifest's `file` joined to the corpus directory).
    pub path: PathBuf,
    /// Speaker id (cross-validation groups by it).
    pub speaker: String,
    /// Gender as written in the manifest (e.g. `M`/`F`).
    pub gender: String,
    /// The corpus label as written.
    pub label: String,
    /// Class index in [`crate::emotion::CLASSES`].
    pub class: usize,
    /// Which corpus the clip came from (its directory's name when several are merged;
    /// empty for a corpus read alone).
    pub corpus: String,
    /// The clip's label was given by `--neutral-corpus` (unlabelled calm speech taken as
    /// neutral), not by the manifest.
    pub assumed_neutral: bool,
}

/// A corpus: the clips with a usable label, and counts of the rows left out.
#[derive(Clone, Debug, Default)]
pub struct Corpus {
    /// Clips whose label maps to one of the five classes.
    pub clips: Vec<Clip>,
    /// Rows left out by design (surprise).
    pub excluded: usize,
    /// Rows with a label the mapping does not know, by label.
    pub unknown_labels: BTreeMap<String, usize>,
}

/// Reads `dir/manifest.csv`.
pub fn read_manifest(dir: &Path) -> Result<Corpus, CorpusError> {
    read(dir, false)
}

/// Reads `dir/manifest.csv` of unlabelled calm speech (columns `file,speaker,gender`; an
/// `emotion` column is ignored): every clip is taken as neutral, marked
/// [`Clip::assumed_neutral`].
pub fn read_neutral_manifest(dir: &Path) -> Result<Corpus, CorpusError> {
    read(dir, true)
}

/// Merges corpora into one, each clip's speaker prefixed with its corpus's name
/// (`name/speaker`) so that speakers of different corpora never share an id, and
/// [`Clip::corpus`] set. Names must differ.
pub fn merge(parts: Vec<(String, Corpus)>) -> Corpus {
    let mut out = Corpus::default();
    for (name, c) in parts {
        out.excluded += c.excluded;
        for (label, n) in c.unknown_labels {
            *out.unknown_labels.entry(label).or_default() += n;
        }
        out.clips.extend(c.clips.into_iter().map(|mut clip| {
            clip.speaker = format!("{name}/{}", clip.speaker);
            clip.corpus.clone_from(&name);
            clip
        }));
    }
    out
}

/// An open `dir/manifest.csv` (fields trimmed): its path, reader and header row.
pub type Manifest = (PathBuf, csv::Reader<std::fs::File>, csv::StringRecord);

/// Opens `dir/manifest.csv` and reads its header row.
pub fn open_manifest(dir: &Path) -> Result<Manifest, CorpusError> {
    let path = dir.join("manifest.csv");
    let err = |source| CorpusError::Manifest {
        path: path.clone(),
        source,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(&path)
        .map_err(err)?;
    let headers = rdr.headers().map_err(err)?.clone();
    Ok((path, rdr, headers))
}

fn read(dir: &Path, all_neutral: bool) -> Result<Corpus, CorpusError> {
    let (path, mut rdr, headers) = open_manifest(dir)?;
    let err = |source| CorpusError::Manifest {
        path: path.clone(),
        source,
    };
    let mut idx = [0usize; 4];
    let required = if all_neutral { 3 } else { 4 };
    for (slot, column) in idx.iter_mut().zip(REQUIRED_COLUMNS).take(required) {
        *slot = headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(column))
            .ok_or(CorpusError::MissingColumn {
                path: path.clone(),
                column,
                need: &REQUIRED_COLUMNS[..required],
            })?;
    }
    let mut corpus = Corpus::default();
    for rec in rdr.records() {
        let rec = rec.map_err(err)?;
        let get = |i: usize| rec.get(idx[i]).unwrap_or("").to_string();
        let label = if all_neutral {
            "neutral".to_string()
        } else {
            get(3)
        };
        match class_of_label(&label) {
            Some(class) => corpus.clips.push(Clip {
                path: dir.join(get(0)),
                speaker: get(1),
                gender: get(2),
                label,
                class,
                corpus: String::new(),
                assumed_neutral: all_neutral,
            }),
            None if is_excluded_label(&label) => corpus.excluded += 1,
            None => *corpus.unknown_labels.entry(label).or_default() += 1,
        }
    }
    Ok(corpus)
}

/// Mono audio of a clip at its own rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    /// Sample rate, Hz.
    pub rate_hz: u32,
    /// Samples, -1..1 (channels averaged).
    pub samples: Vec<f32>,
}

/// Reads a WAV or FLAC file (by content for WAV, by extension or `fLaC` magic for FLAC).
pub fn load_audio(path: &Path) -> Result<Audio, CorpusError> {
    let fail = |reason: String| CorpusError::Audio {
        path: path.to_path_buf(),
        reason,
    };
    let is_flac = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("flac"))
        || std::fs::File::open(path)
            .and_then(|mut f| {
                let mut magic = [0u8; 4];
                std::io::Read::read_exact(&mut f, &mut magic).map(|_| magic == *b"fLaC")
            })
            .unwrap_or(false);
    if !is_flac {
        let wav = read_wav_file(path).map_err(|e| fail(e.to_string()))?;
        let n = wav.frames();
        let ch = wav.samples.len().max(1) as f32;
        let samples = (0..n)
            .map(|i| wav.samples.iter().map(|c| c[i]).sum::<f32>() / ch)
            .collect();
        return Ok(Audio {
            rate_hz: wav.sample_rate,
            samples,
        });
    }
    let mut reader = claxon::FlacReader::open(path).map_err(|e| fail(format!("FLAC: {e}")))?;
    let info = reader.streaminfo();
    let channels = info.channels.max(1) as usize;
    let scale = 1.0 / (1u64 << (info.bits_per_sample.clamp(1, 32) - 1)) as f32;
    let mut samples = Vec::new();
    let mut acc = 0.0f32;
    for (i, s) in reader.samples().enumerate() {
        let s = s.map_err(|e| fail(format!("FLAC: {e}")))?;
        acc += s as f32 * scale;
        if i % channels == channels - 1 {
            samples.push(acc / channels as f32);
            acc = 0.0;
        }
    }
    Ok(Audio {
        rate_hz: info.sample_rate,
        samples,
    })
}

/// Resamples a clip to the 16 kHz the analysis runs at.
pub fn to_16k(audio: &Audio) -> Result<Vec<f32>, String> {
    if audio.rate_hz == SAMPLE_RATE {
        return Ok(audio.samples.clone());
    }
    let mut r = Resampler::new(audio.rate_hz).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(audio.samples.len() * SAMPLE_RATE as usize / 8000);
    r.process_into(&audio.samples, &mut out);
    r.flush_into(&mut out);
    Ok(out)
}

/// An utterance of a clip fed through the call core.
#[derive(Clone, Debug)]
pub struct ClipUtterance {
    /// Index of the clip (in the slice given to [`run_as_call`]) it lies in.
    pub clip: usize,
    /// What the call core produced.
    pub ended: Ended,
}

/// Feeds 16 kHz clips, in order and [`CLIP_GAP_MS`] apart, as one single-channel call
/// through [`CallCore`]: the service's own decode, resample, frame, endpoint, feature and
/// scoring path. With `line`, the whole call first goes through the simulated phone line
/// and in as 8 kHz μ-law. Each utterance is given to the clip that holds its midpoint;
/// utterances in the gaps are dropped.
pub fn run_as_call(
    plan: Arc<DspPlan>,
    clips: &[&[f32]],
    line: Option<LineConfig>,
    settings: CallSettings,
    configure: impl FnOnce(&mut CallCore),
) -> Vec<ClipUtterance> {
    let gap = (CLIP_GAP_MS * SAMPLE_RATE / 1000) as usize;
    let mut signal = vec![0.0f32; gap / 2];
    let mut spans = Vec::with_capacity(clips.len());
    for c in clips {
        let start = signal.len();
        signal.extend_from_slice(c);
        spans.push((start, signal.len()));
        signal.extend(std::iter::repeat_n(0.0, gap));
    }
    let spec =
        |encoding, sample_rate_hz| ChannelSpec::new(0, Role::Caller, encoding, sample_rate_hz);
    let mut ended = Vec::new();
    let fed = match line {
        Some(cfg) => CallCore::new("corpus", &[spec(Encoding::Mulaw, 8000)], settings, plan).map(
            |mut core| {
                configure(&mut core);
                let bytes = telephony(&signal, cfg);
                for chunk in bytes.chunks(160) {
                    // A single known channel under the length cap: cannot fail.
                    let _ = core.push_audio(0, chunk, &mut ended);
                }
                core.finish(&mut ended);
            },
        ),
        None => CallCore::new(
            "corpus",
            &[spec(Encoding::Linear16, SAMPLE_RATE)],
            settings,
            plan,
        )
        .map(|mut core| {
            configure(&mut core);
            for chunk in signal.chunks(320) {
                let _ = core.push_samples(0, chunk, &mut ended);
            }
            core.finish(&mut ended);
        }),
    };
    debug_assert!(fed.is_ok());
    let per_ms = SAMPLE_RATE as usize / 1000;
    ended
        .into_iter()
        .filter_map(|e| {
            let mid = (e.utterance.start_ms + e.utterance.end_ms) as usize / 2 * per_ms;
            let clip = spans.iter().position(|&(a, b)| (a..b).contains(&mid))?;
            Some(ClipUtterance { clip, ended: e })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_maps_labels_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("manifest.csv"),
            "file,Speaker,gender,emotion,intensity\n\
             a.wav,s1,F,calm,normal\n\
             b.wav,s1,F,surprised,strong\n\
             c.wav,s2,M,disgust,normal\n\
             d.wav,s2,M,bored,normal\n",
        )
        .unwrap();
        let c = read_manifest(dir.path()).unwrap();
        assert_eq!(c.clips.len(), 2);
        assert_eq!((c.clips[0].class, c.clips[1].class), (0, 2));
        assert_eq!(c.clips[1].speaker, "s2");
        assert_eq!(c.clips[0].path, dir.path().join("a.wav"));
        assert_eq!(c.excluded, 1);
        assert_eq!(c.unknown_labels.get("bored"), Some(&1));
    }

    #[test]
    fn neutral_corpora_need_no_label_and_merged_speakers_keep_apart() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(
            a.path().join("manifest.csv"),
            "file,speaker,gender,emotion\nx.wav,s1,F,angry\ny.wav,s1,F,sad\n",
        )
        .unwrap();
        std::fs::write(
            b.path().join("manifest.csv"),
            "file,speaker,gender,source\nr.flac,s1,M,LibriSpeech\n",
        )
        .unwrap();
        // Without an emotion column the labelled reader refuses it, the neutral one takes it.
        let e = read_manifest(b.path()).unwrap_err().to_string();
        assert!(e.contains("no column `emotion`"), "{e}");
        std::fs::write(
            b.path().join("manifest.csv"),
            "file,speaker,source\nr.flac,s1,LibriSpeech\n",
        )
        .unwrap();
        let e = read_neutral_manifest(b.path()).unwrap_err().to_string();
        assert!(
            e.contains(r#"no column `gender` (need ["file", "speaker", "gender"])"#),
            "{e}"
        );
        std::fs::write(
            b.path().join("manifest.csv"),
            "file,speaker,gender,source\nr.flac,s1,M,LibriSpeech\n",
        )
        .unwrap();
        let calm = read_neutral_manifest(b.path()).unwrap();
        assert_eq!(
            (calm.clips[0].class, calm.clips[0].assumed_neutral),
            (0, true)
        );
        let acted = read_manifest(a.path()).unwrap();
        assert!(!acted.clips[0].assumed_neutral);
        let m = merge(vec![("acted".into(), acted), ("read".into(), calm)]);
        let ids: Vec<(&str, &str)> = m
            .clips
            .iter()
            .map(|c| (c.speaker.as_str(), c.corpus.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("acted/s1", "acted"),
                ("acted/s1", "acted"),
                ("read/s1", "read")
            ]
        );
    }

    #[test]
    fn missing_column_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("manifest.csv"),
            "file,speaker,emotion\na,b,c\n",
        )
        .unwrap();
        let e = read_manifest(dir.path()).unwrap_err().to_string();
        assert!(e.contains("`gender`"), "{e}");
        let e = read_manifest(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("manifest.csv"), "{e}");
    }

    #[test]
    fn wav_is_read_and_mixed_to_mono() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..10 {
            w.write_sample(16384i16).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let a = load_audio(&path).unwrap();
        assert_eq!(a.rate_hz, 8000);
        assert_eq!(a.samples.len(), 10);
        assert!((a.samples[0] - 0.25).abs() < 1e-3);
        let bad = dir.path().join("bad.flac");
        std::fs::write(&bad, b"fLaCnot really").unwrap();
        assert!(load_audio(&bad)
            .unwrap_err()
            .to_string()
            .contains("bad.flac"));
    }
}
