//! The CTranslate2 → GGML converter on the real tiny.en weights (fetched by models/fetch.sh).

mod common;

use std::path::PathBuf;

use callmood::asr::convert::{convert_ct2_to_ggml, ConvertError, ConvertPaths};
use callmood::asr::ggml::{read_ggml_summary, read_tensor_f32, GgmlSummary, GgmlType, HParams};

/// whisper.cpp's hyper-parameters for tiny.en, f16.
const TINY_EN: HParams = HParams {
    n_vocab: 51864,
    n_audio_ctx: 1500,
    n_audio_state: 384,
    n_audio_head: 6,
    n_audio_layer: 4,
    n_text_ctx: 448,
    n_text_state: 384,
    n_text_head: 6,
    n_text_layer: 4,
    n_mels: 80,
    ftype: 1,
};
/// 7 + 15·4 encoder tensors, 4 + 24·4 decoder tensors.
const TINY_TENSORS: usize = 167;

fn fetched_inputs(out: PathBuf) -> ConvertPaths {
    ConvertPaths {
        ct2_dir: common::cache_file("tiny.en-ct2"),
        mel_filters: common::cache_file("whisper-assets/mel_filters.npz"),
        tiktoken: common::cache_file("whisper-assets/gpt2.tiktoken"),
        out,
    }
}

fn assert_tiny_en_layout(s: &GgmlSummary) {
    assert_eq!(s.hparams, TINY_EN);
    assert_eq!(s.hparams.expected_tensor_count(), TINY_TENSORS);
    assert_eq!(s.tensors.len(), TINY_TENSORS);
    assert_eq!((s.mel_rows, s.mel_cols), (80, 201));
    assert_eq!(
        s.vocab.len(),
        50256,
        "GPT-2 ranks; whisper.cpp adds the specials"
    );
    assert_eq!(s.vocab[0], b"!");
    assert_eq!(s.vocab[220], b" ");
    assert_eq!(s.vocab[50255], b" gazed");

    let mut names: Vec<&str> = s.tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), TINY_TENSORS, "tensor names are unique");

    // (name, PyTorch shape, type)
    let expect: &[(&str, &[usize], GgmlType)] = &[
        ("encoder.positional_embedding", &[1500, 384], GgmlType::F32),
        ("encoder.conv1.weight", &[384, 80, 3], GgmlType::F16),
        ("encoder.conv1.bias", &[384, 1], GgmlType::F32),
        ("encoder.conv2.weight", &[384, 384, 3], GgmlType::F16),
        ("encoder.conv2.bias", &[384, 1], GgmlType::F32),
        (
            "encoder.blocks.0.attn.query.weight",
            &[384, 384],
            GgmlType::F16,
        ),
        ("encoder.blocks.0.attn.query.bias", &[384], GgmlType::F32),
        (
            "encoder.blocks.3.attn.key.weight",
            &[384, 384],
            GgmlType::F16,
        ),
        ("encoder.blocks.3.attn.value.bias", &[384], GgmlType::F32),
        ("encoder.blocks.2.mlp.0.weight", &[1536, 384], GgmlType::F16),
        ("encoder.blocks.2.mlp.2.weight", &[384, 1536], GgmlType::F16),
        ("encoder.ln_post.weight", &[384], GgmlType::F32),
        ("decoder.positional_embedding", &[448, 384], GgmlType::F32),
        (
            "decoder.token_embedding.weight",
            &[51864, 384],
            GgmlType::F16,
        ),
        (
            "decoder.blocks.1.cross_attn.key.weight",
            &[384, 384],
            GgmlType::F16,
        ),
        (
            "decoder.blocks.1.cross_attn.value.bias",
            &[384],
            GgmlType::F32,
        ),
        ("decoder.blocks.3.cross_attn_ln.bias", &[384], GgmlType::F32),
        (
            "decoder.blocks.3.attn.out.weight",
            &[384, 384],
            GgmlType::F16,
        ),
        ("decoder.ln.bias", &[384], GgmlType::F32),
    ];
    for (name, shape, ty) in expect {
        let t = s
            .tensor(name)
            .unwrap_or_else(|| panic!("tensor {name} missing"));
        assert_eq!(t.shape(), *shape, "{name} shape");
        assert_eq!(t.ty, *ty, "{name} type");
    }
    // Whisper's key projections have no bias; whisper.cpp would reject an unknown tensor.
    assert!(s.tensors.iter().all(|t| !t.name.ends_with("key.bias")));
}

#[test]
fn converts_fetched_tiny_en() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("ggml-tiny.en.bin");
    let report = convert_ct2_to_ggml(&fetched_inputs(out.clone())).expect("conversion");
    assert_eq!(report.hparams, TINY_EN);
    assert_eq!(report.n_tensors, TINY_TENSORS);
    assert_eq!(report.n_vocab_tokens, 50256);
    assert_eq!(report.mel_shape, (80, 201));
    assert_eq!(
        report.bytes_written,
        std::fs::metadata(&out).expect("output").len()
    );
    // No temporary file is left next to the output.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);

    let s = read_ggml_summary(&out).expect("readable GGML");
    assert_tiny_en_layout(&s);

    // Layer norms of a trained model are near 1, not zeros or garbage.
    let ln = s.tensor("encoder.blocks.0.attn_ln.weight").expect("ln");
    let w = read_tensor_f32(&out, ln).expect("ln data");
    let mean = w.iter().sum::<f32>() / w.len() as f32;
    assert!(mean > 0.1 && mean < 10.0, "attn_ln mean {mean}");
    // The conversion is deterministic.
    let out2 = dir.path().join("again.bin");
    convert_ct2_to_ggml(&fetched_inputs(out2.clone())).expect("second conversion");
    assert!(std::fs::read(&out).expect("out") == std::fs::read(&out2).expect("out2"));
}

#[test]
fn fetched_model_has_tiny_en_layout() {
    let path = common::model_path();
    let head = std::fs::read(&path).expect("model")[..4].to_vec();
    assert_eq!(head, 0x6767_6d6c_u32.to_le_bytes(), "GGML magic");
    assert_tiny_en_layout(&read_ggml_summary(&path).expect("readable GGML"));
}

#[test]
fn missing_input_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut paths = fetched_inputs(dir.path().join("x.bin"));
    paths.ct2_dir = dir.path().join("no-such-dir");
    let err = convert_ct2_to_ggml(&paths).expect_err("must fail");
    assert!(matches!(err, ConvertError::Io { .. }), "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    assert!(!dir.path().join("x.bin").exists());
}

#[test]
fn truncated_model_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ct2 = dir.path().join("ct2");
    std::fs::create_dir(&ct2).expect("mkdir");
    let real = std::fs::read(common::cache_file("tiny.en-ct2/model.bin")).expect("model.bin");
    for cut in [3, 40, 1 << 20] {
        std::fs::write(ct2.join("model.bin"), &real[..cut]).expect("write");
        let mut paths = fetched_inputs(dir.path().join("x.bin"));
        paths.ct2_dir = ct2.clone();
        let err = convert_ct2_to_ggml(&paths).expect_err("truncated input must fail");
        assert!(matches!(err, ConvertError::Ct2Format { .. }), "{err}");
        assert!(err.to_string().contains("model.bin"), "{err}");
    }
}

#[test]
fn quantized_conversion_loads_in_whisper_and_is_refused_by_the_emotion_encoder() {
    use callmood::asr::convert::{convert_ct2_to_ggml_with, ConvertOptions};
    use callmood::asr::quant::QuantType;

    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("ggml-tiny.en-q8_0.bin");
    let report = convert_ct2_to_ggml_with(
        &fetched_inputs(out.clone()),
        &ConvertOptions {
            quantize: Some(QuantType::Q8_0),
        },
    )
    .expect("conversion");
    // 4 encoder blocks x 6 matrices, 4 decoder blocks x 10, the token embedding.
    assert_eq!(report.n_quantized, 4 * 6 + 4 * 10 + 1);
    assert_eq!(report.hparams.ftype, 2007);
    let f16_len = std::fs::metadata(common::model_path()).expect("f16").len();
    assert!(report.bytes_written < f16_len * 6 / 10, "{report:?}");

    // The voice emotion encoder must not run on other weights than it was trained with.
    let e = match callmood::emotion::embed::Encoder::load(&out) {
        Ok(_) => panic!("the emotion encoder loaded quantised weights"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("q8_0-quantised"), "{e}");

    // whisper.cpp loads it and hears the words.
    let (wav, reference) = common::librivox("0890");
    let model = callmood::asr::WhisperModel::load(&out).expect("whisper.cpp loads q8_0");
    let words = callmood::asr::Transcriber::new(model, 2)
        .and_then(|mut t| t.transcribe(&common::load_wav(&wav)))
        .expect("transcription");
    let wer = common::wer(&reference, &common::text(&words));
    assert!(wer <= 0.15, "WER {wer}: {}", common::text(&words));
}
