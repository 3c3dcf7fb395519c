//! `callmood model`: model management.

use std::path::PathBuf;

use clap::Subcommand;

use crate::asr::convert::{convert_ct2_to_ggml_with, ConvertOptions, ConvertPaths};
use crate::asr::quant::QuantType;

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Convert a CTranslate2 Whisper model (float16) to a GGML file for whisper.cpp (f16, or
    /// quantised matrices with --quantize).
    Convert {
        /// Directory with model.bin, config.json and vocabulary.txt.
        #[arg(long)]
        ct2: PathBuf,
        /// mel_filters.npz from the openai-whisper sources.
        #[arg(long)]
        mel_filters: PathBuf,
        /// gpt2.tiktoken from the openai-whisper sources.
        #[arg(long)]
        tiktoken: PathBuf,
        /// Output GGML file.
        #[arg(long)]
        out: PathBuf,
        /// Write the weight matrices quantised (q8_0, q5_0 or q5_1) instead of f16. whisper.cpp
        /// loads such a file; the voice emotion encoder refuses it and needs the f16 file.
        #[arg(long)]
        quantize: Option<QuantType>,
    },
}

pub(super) fn run(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Convert {
            ct2,
            mel_filters,
            tiktoken,
            out,
            quantize,
        } => {
            let report = convert_ct2_to_ggml_with(
                &ConvertPaths {
                    ct2_dir: ct2,
                    mel_filters,
                    tiktoken,
                    out: out.clone(),
                },
                &ConvertOptions { quantize },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("callmood: wrote {} ({report:?})", out.display());
            Ok(())
        }
    }
}
