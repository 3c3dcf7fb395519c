//! `callmood model`: model management.

use std::path::PathBuf;

use clap::Subcommand;

use crate::asr::convert::{convert_ct2_to_ggml, ConvertPaths};

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Convert a CTranslate2 Whisper model (float16) to a GGML file for whisper.cpp.
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
    },
}

pub(super) fn run(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Convert {
            ct2,
            mel_filters,
            tiktoken,
            out,
        } => {
            let report = convert_ct2_to_ggml(&ConvertPaths {
                ct2_dir: ct2,
                mel_filters,
                tiktoken,
                out: out.clone(),
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("callmood: wrote {} ({report:?})", out.display());
            Ok(())
        }
    }
}
