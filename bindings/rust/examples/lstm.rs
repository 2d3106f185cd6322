//! The Rust twin of examples/lstm.c: a two-layer LSTM, weights loaded from a safetensors file
//! saved by PyTorch (`torch.nn.LSTM(32, 64, num_layers=2, batch_first=True)`), run on a fixed
//! input. Without a file argument it runs with libattn's seed-0 initialization.
//!
//!     cargo run --example lstm -- lstm.safetensors
//!
//! On an error it prints the library's message and exits with status 1, e.g.
//! `attn_params_load: tensor 'weight_ih_l0' has shape [192, 32] in 'lstm.safetensors', parameter
//! 'weight_ih_l0' expects [256, 32] [ATTN_E_SHAPE: sizes do not fit together]`.

use std::process::ExitCode;

use attn::{Cell, LoadFlags, Rnn, RnnOptions, Workspace};

const B: usize = 4;
const T: usize = 50;
const I: usize = 32;
const H: usize = 64;

fn run(path: Option<String>) -> attn::Result<()> {
    let mut lstm = Rnn::new(&RnnOptions { num_layers: 2, ..RnnOptions::new(Cell::Lstm, I, H) })?;
    match &path {
        Some(path) => lstm.params_mut().load(path, None, LoadFlags::REJECT_UNKNOWN)?,
        None => eprintln!("no weights file given: running with the seed-0 initialization"),
    }

    // Batch-first: x [B, T, I], y [B, T, H].
    let x: Vec<f32> = (0..B * T * I).map(|i| (i % 11) as f32 / 8.0 - 5.0 / 8.0).collect();
    let mut y = vec![0.0f32; lstm.output_len(B, T)];
    // A workspace keeps its memory across calls (None: the thread's own, kept by the library); the initial
    // state is zeros (see Rnn::forward_state for h0/c0 and the final state).
    let mut ws = Workspace::new()?;
    lstm.forward(Some(&mut ws), B, T, &x, &mut y)?;

    let last = &y[(T - 1) * H..][..4]; // y[0, T-1, 0:4]
    println!("y[0, {}, 0:4] = {:.6} {:.6} {:.6} {:.6}", T - 1, last[0], last[1], last[2], last[3]);
    println!("mean(y) = {:.6}", y.iter().map(|&v| v as f64).sum::<f64>() / y.len() as f64);
    Ok(())
}

fn main() -> ExitCode {
    match run(std::env::args().nth(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
