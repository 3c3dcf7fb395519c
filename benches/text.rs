//! The words model's hot path: `TextModel::score` (lexicon analysis, hashed n-grams, softmax
//! and the frustration head) on one contact-centre utterance and on a 100-word one (about
//! 30 s of speech). Run with `cargo bench --bench text -- --warm-up-time 1 --measurement-time 3`.
//! The adoption rule in models/README.md asks for at most 2 ms per utterance on one core.

use std::hint::black_box;
use std::path::Path;

use callmood::emotion::text::{TextLexicon, TextModel};
use criterion::{criterion_group, criterion_main, Criterion};

const UTTERANCE: &str =
    "This is the third time I've called about this, and honestly I just want to cancel my account.";

fn bench_score(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = TextModel::load(&root.join("models/emotion-text.json")).expect("shipped model");
    let lexicon = TextLexicon::load(&root.join("models/text")).expect("lexicon files");
    c.bench_function("text_score_one_utterance", |b| {
        b.iter(|| model.score(&lexicon, black_box(UTTERANCE)))
    });
    let long = [UTTERANCE; 6].join(" ");
    c.bench_function("text_score_100_words", |b| {
        b.iter(|| model.score(&lexicon, black_box(&long)))
    });
}

criterion_group!(benches, bench_score);
criterion_main!(benches);
