//! Exports our frame features as CSV for `tools/f0_reference.py` (evaluation only; ignored
//! by default because it needs files outside the repository).
//!
//! `CALLMOOD_F0_WAVS=a.wav:b.wav CALLMOOD_F0_OUT=/tmp/dir \
//!  cargo test --test dsp_f0_export -- --ignored`
//! writes `/tmp/dir/a.csv`, `/tmp/dir/b.csv` (channel 0, resampled to 16 kHz), the same
//! format as `callmood features FILE --frames`. For tuning, `CALLMOOD_F0_CONFIG` may override
//! [`DspConfig`] fields, e.g. `dip_threshold=0.15,voicing_threshold=0.45`.

use std::path::Path;

use callmood::codec::read_wav_file;
use callmood::dsp::{frames_to_csv, DspConfig, DspPlan, FrameAnalyzer};
use callmood::resample::Resampler;

#[test]
#[ignore = "evaluation helper: needs CALLMOOD_F0_WAVS and CALLMOOD_F0_OUT"]
fn export_frames_csv() {
    let (Ok(list), Ok(out_dir)) = (
        std::env::var("CALLMOOD_F0_WAVS"),
        std::env::var("CALLMOOD_F0_OUT"),
    ) else {
        eprintln!("set CALLMOOD_F0_WAVS (':'-separated) and CALLMOOD_F0_OUT");
        return;
    };
    let mut cfg = DspConfig::default();
    for kv in std::env::var("CALLMOOD_F0_CONFIG")
        .unwrap_or_default()
        .split(',')
    {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let v: f32 = v.trim().parse().unwrap_or_else(|e| panic!("{kv}: {e}"));
        match k.trim() {
            "f0_min_hz" => cfg.f0_min_hz = v,
            "f0_max_hz" => cfg.f0_max_hz = v,
            "dip_threshold" => cfg.dip_threshold = v,
            "octave_margin" => cfg.octave_margin = v,
            "octave_ratio" => cfg.octave_ratio = v,
            "continuity_slack" => cfg.continuity_slack = v,
            "voicing_threshold" => cfg.voicing_threshold = v,
            "silence_db" => cfg.silence_db = v,
            "relative_silence_db" => cfg.relative_silence_db = v,
            "level_decay_db_per_s" => cfg.level_decay_db_per_s = v,
            other => panic!("unknown DspConfig field {other}"),
        }
    }
    let plan = DspPlan::with_config(cfg).unwrap_or_else(|e| panic!("{e}"));
    for path in list.split(':').filter(|p| !p.is_empty()) {
        let wav = read_wav_file(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut rs = Resampler::new(wav.sample_rate).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut x = Vec::new();
        rs.process_into(&wav.samples[0], &mut x);
        rs.flush_into(&mut x);
        let frames = FrameAnalyzer::analyze(plan.clone(), &x);
        let stem = Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let out = Path::new(&out_dir).join(format!("{stem}.csv"));
        let mut f = std::fs::File::create(&out).unwrap_or_else(|e| panic!("{out:?}: {e}"));
        frames_to_csv(&frames, &mut f).unwrap_or_else(|e| panic!("{out:?}: {e}"));
    }
}
