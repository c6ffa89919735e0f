//! # carma-core
//!
//! Allocation-free inference for CARMA (causal algorithmic recourse with
//! amortization, FAccT 2024) on a trained model bundle.
//!
//! `#![no_std]`, no `alloc`, no `unsafe`. A [`bundle::Bundle`] is decoded from
//! caller-owned bytes without copying the weights; every operation writes into
//! slices the caller provides, sized by [`bundle::Bundle::scratch_len`].
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod format;
pub mod le;
