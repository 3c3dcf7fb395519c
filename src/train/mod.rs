//! Training and evaluation of the emotion models (the `train`, `eval`, `train-text` and
//! `eval-text` commands); the service never runs this code.
//!
//! - [`audit`]: the fairness audit: figures per gender, age group, corpus and accent.
//! - [`corpus`]: labelled speech corpora (`manifest.csv` plus WAV/FLAC).
//! - [`degrade`]: a simulated phone line (band limit, 8 kHz, noise, μ-law) and room.
//! - [`dataset`]: a labelled corpus run clip by clip through the call core.
//! - [`voice`]: training the voice model with the running baseline simulated,
//!   speaker-grouped cross-validation, the cold, running and calm-first protocols.
//! - [`text`]: training and measuring the words model.

pub mod audit;
pub mod corpus;
pub mod dataset;
pub mod degrade;
pub mod text;
pub mod voice;
