//! The safe API against libattn: forward of every family with checks against independent
//! references (Rust float64 LSTM/GRU cells, Kronecker products) or invariants the C library
//! documents (Linformer with identity projections = FULL attention, Nyström with one landmark per
//! token = FULL, LOW_RANK at full rank = DENSE, SPARSE with top_k = N = DENSE, a batch element
//! unaffected by the others, workspace size = cost), parameters, analysis, errors and threads.

use std::sync::Arc;

use attn::*;

// ---- helpers --------------------------------------------------------------------------------------

/// Deterministic uniform numbers in [-1, 1) (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
        r as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    let d = max_abs_diff(got, want);
    assert!(d <= tol, "{what}: max |difference| {d:e} > {tol:e}");
}

#[track_caller]
fn assert_finite(v: &[f32], what: &str) {
    assert!(!v.is_empty(), "{what}: empty");
    assert!(v.iter().all(|x| x.is_finite()), "{what}: not finite");
}

fn last_error_text() -> String {
    // SAFETY: never NULL; copied at once.
    unsafe { std::ffi::CStr::from_ptr(sys::attn_last_error()) }.to_string_lossy().into_owned()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// W [rows, cols] (row-major) times v, in f64.
fn matvec(w: &[f32], rows: usize, cols: usize, v: &[f64]) -> Vec<f64> {
    (0..rows).map(|r| (0..cols).map(|c| w[r * cols + c] as f64 * v[c]).sum()).collect()
}

/// One-layer, one-direction RNN/LSTM/GRU in float64 following PyTorch's equations:
/// returns (y [B, T, H], h_n [B, H], c_n [B, H]).
#[allow(clippy::too_many_arguments)]
fn reference_rnn(
    cell: Cell,
    p: &Params<'_>,
    i_size: usize,
    h_size: usize,
    batch: usize,
    steps: usize,
    x: &[f32],
    h0: &[f32],
    c0: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let g = cell.gates();
    let (wih, whh, bih, bhh) =
        (p.get("weight_ih_l0").unwrap(), p.get("weight_hh_l0").unwrap(), p.get("bias_ih_l0").unwrap(), p.get("bias_hh_l0").unwrap());
    assert_eq!(wih.len(), g * h_size * i_size);
    assert_eq!(whh.len(), g * h_size * h_size);
    let (mut y, mut hn, mut cn) = (vec![0f32; batch * steps * h_size], vec![0f32; batch * h_size], vec![0f32; batch * h_size]);
    for b in 0..batch {
        let mut h: Vec<f64> = h0[b * h_size..(b + 1) * h_size].iter().map(|&v| v as f64).collect();
        let mut c: Vec<f64> = c0[b * h_size..(b + 1) * h_size].iter().map(|&v| v as f64).collect();
        for t in 0..steps {
            let xt: Vec<f64> = x[(b * steps + t) * i_size..][..i_size].iter().map(|&v| v as f64).collect();
            let gi: Vec<f64> = matvec(&wih, g * h_size, i_size, &xt).iter().zip(&bih).map(|(a, &b)| a + b as f64).collect();
            let gh: Vec<f64> = matvec(&whh, g * h_size, h_size, &h).iter().zip(&bhh).map(|(a, &b)| a + b as f64).collect();
            let hs = h_size;
            h = match cell {
                Cell::RnnTanh => (0..hs).map(|j| (gi[j] + gh[j]).tanh()).collect(),
                Cell::RnnRelu => (0..hs).map(|j| (gi[j] + gh[j]).max(0.0)).collect(),
                Cell::Lstm => {
                    let mut hnew = vec![0.0; hs];
                    for j in 0..hs {
                        let i = sigmoid(gi[j] + gh[j]);
                        let f = sigmoid(gi[hs + j] + gh[hs + j]);
                        let gg = (gi[2 * hs + j] + gh[2 * hs + j]).tanh();
                        let o = sigmoid(gi[3 * hs + j] + gh[3 * hs + j]);
                        c[j] = f * c[j] + i * gg;
                        hnew[j] = o * c[j].tanh();
                    }
                    hnew
                }
                Cell::Gru => (0..hs)
                    .map(|j| {
                        let r = sigmoid(gi[j] + gh[j]);
                        let z = sigmoid(gi[hs + j] + gh[hs + j]);
                        let n = (gi[2 * hs + j] + r * gh[2 * hs + j]).tanh();
                        (1.0 - z) * n + z * h[j]
                    })
                    .collect(),
            };
            for j in 0..hs {
                y[(b * steps + t) * hs + j] = h[j] as f32;
            }
        }
        for j in 0..h_size {
            hn[b * h_size + j] = h[j] as f32;
            cn[b * h_size + j] = c[j] as f32;
        }
    }
    (y, hn, cn)
}

// ---- recurrent networks -----------------------------------------------------------------------

#[test]
fn lstm_matches_float64_reference() {
    let (i, h, b, t) = (3, 5, 2, 6);
    let mut lstm = Rnn::new(&RnnOptions::new(Cell::Lstm, i, h)).unwrap();
    lstm.params_mut().init(11).unwrap();
    assert_eq!(lstm.params().names().unwrap(), ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]);

    let mut rng = Rng::new(1);
    let (x, h0, c0) = (rng.vec(b * t * i), rng.vec(b * h), rng.vec(b * h));
    let mut y = vec![0f32; lstm.output_len(b, t)];
    let (mut hn, mut cn) = (vec![0f32; lstm.state_len(b)], vec![0f32; lstm.state_len(b)]);
    let mut ws = Workspace::new().unwrap();
    lstm.forward_state(
        Some(&mut ws),
        b,
        t,
        &x,
        State { h: Some(&h0), c: Some(&c0) },
        &mut y,
        StateOut { h: Some(&mut hn), c: Some(&mut cn) },
    )
    .unwrap();

    let (ry, rh, rc) = reference_rnn(Cell::Lstm, &lstm.params(), i, h, b, t, &x, &h0, &c0);
    assert_close(&y, &ry, 2e-6, "LSTM y");
    assert_close(&hn, &rh, 2e-6, "LSTM h_n");
    assert_close(&cn, &rc, 2e-6, "LSTM c_n");
    assert_eq!(&hn[..h], &y[(t - 1) * h..t * h], "h_n of batch 0 is its last output");

    // The workspace holds what cost() reports after one call on a new workspace.
    let cost = lstm.cost(b, t).unwrap();
    assert_eq!(ws.size(), cost.workspace_bytes);
    assert_eq!(cost.params as usize, lstm.params().infos().unwrap().iter().map(|t| t.count).sum::<usize>());
    assert_eq!(cost.params as usize, 4 * h * (i + h) + 8 * h);
    assert!(cost.flops > 0);
}

#[test]
fn gru_and_elman_match_float64_reference() {
    for cell in [Cell::Gru, Cell::RnnTanh, Cell::RnnRelu] {
        let (i, h, b, t) = (4, 3, 3, 4);
        let mut rnn = Rnn::new(&RnnOptions { cell, ..RnnOptions::new(cell, i, h) }).unwrap();
        rnn.params_mut().init(5).unwrap();
        let mut rng = Rng::new(2);
        let x = rng.vec(b * t * i);
        let mut y = vec![0f32; rnn.output_len(b, t)];
        rnn.forward(None, b, t, &x, &mut y).unwrap(); // zero initial state
        let zeros = vec![0f32; b * h];
        let (ry, _, _) = reference_rnn(cell, &rnn.params(), i, h, b, t, &x, &zeros, &zeros);
        assert_close(&y, &ry, 2e-6, &format!("{cell:?} y"));

        let h0 = rng.vec(b * h);
        let mut hn = vec![0f32; b * h];
        rnn.forward_state(None, b, t, &x, State { h: Some(&h0), c: None }, &mut y, StateOut { h: Some(&mut hn), c: None })
            .unwrap();
        let (ry, rh, _) = reference_rnn(cell, &rnn.params(), i, h, b, t, &x, &h0, &zeros);
        assert_close(&y, &ry, 2e-6, &format!("{cell:?} y from h0"));
        assert_close(&hn, &rh, 2e-6, &format!("{cell:?} h_n"));
    }
}

#[test]
fn bidirectional_stack_and_variable_lengths() {
    let (i, h, l, b, t) = (3, 4, 2, 3, 5);
    let rnn = Rnn::new(&RnnOptions { num_layers: l, bidirectional: true, ..RnnOptions::new(Cell::Gru, i, h) }).unwrap();
    assert_eq!(rnn.directions(), 2);
    assert_eq!(rnn.params().len(), l * 2 * 4);
    assert!(rnn.params().names().unwrap().contains(&"weight_hh_l1_reverse".to_string()));
    let x = Rng::new(3).vec(b * t * i);
    let mut y = vec![0f32; rnn.output_len(b, t)];
    let mut hn = vec![0f32; rnn.state_len(b)];
    assert_eq!(y.len(), b * t * 2 * h);
    assert_eq!(hn.len(), l * 2 * b * h);
    rnn.forward_state(None, b, t, &x, State::default(), &mut y, StateOut { h: Some(&mut hn), c: None }).unwrap();
    assert_finite(&y, "bidirectional y");
    assert_finite(&hn, "bidirectional h_n");

    // Every length = seq_len gives forward's results bit for bit.
    let mut y2 = vec![0f32; y.len()];
    let mut hn2 = vec![0f32; hn.len()];
    let full = vec![t as i64; b];
    rnn.forward_lengths(None, b, t, &full, &x, State::default(), &mut y2, StateOut { h: Some(&mut hn2), c: None }).unwrap();
    assert_eq!(y, y2);
    assert_eq!(hn, hn2);

    // Shorter sequences: zeros after their end; NaN there is never read.
    let lengths = [5i64, 2, 3];
    let mut xn = x.clone();
    for (bi, &len) in lengths.iter().enumerate() {
        for v in &mut xn[(bi * t + len as usize) * i..(bi + 1) * t * i] {
            *v = f32::NAN;
        }
    }
    rnn.forward_lengths(None, b, t, &lengths, &xn, State::default(), &mut y2, StateOut::default()).unwrap();
    for (bi, &len) in lengths.iter().enumerate() {
        let row = &y2[bi * t * 2 * h..(bi + 1) * t * 2 * h];
        assert_finite(&row[..len as usize * 2 * h], "valid steps");
        assert!(row[len as usize * 2 * h..].iter().all(|&v| v == 0.0), "padding of sequence {bi} is 0");
    }
    // A length outside 1..=seq_len is the library's error, naming lengths[b].
    let e = rnn.forward_lengths(None, b, t, &[5, 0, 3], &x, State::default(), &mut y2, StateOut::default()).unwrap_err();
    assert_eq!(e.status, Status::Shape);
    assert!(e.message.contains("lengths[1]"), "{}", e.message);
}

#[test]
fn low_rank_at_full_rank_equals_dense() {
    let (i, h, b, t) = (4, 6, 2, 5);
    let mut dense = Rnn::new(&RnnOptions::new(Cell::Lstm, i, h)).unwrap();
    dense.params_mut().init(21).unwrap();
    let w_hh = dense.params().get("weight_hh_l0").unwrap(); // (4H, H)
    assert_eq!(dense.recurrent_matrix(0, 0).unwrap(), w_hh);

    for rank in [h, 2] {
        let f = lowrank_factors(&w_hh, 4 * h, h, rank).unwrap();
        assert_eq!((f.u.len(), f.v.len()), (4 * h * rank, rank * h));
        let mut lr = Rnn::new(&RnnOptions { recurrence: Recurrence::LowRank, rank, ..RnnOptions::new(Cell::Lstm, i, h) }).unwrap();
        assert_eq!(lr.params().find("weight_hh_l0_u").unwrap().shape, [4 * h, rank]);
        {
            let mut p = lr.params_mut();
            for name in ["weight_ih_l0", "bias_ih_l0", "bias_hh_l0"] {
                p.set(name, &dense.params().get(name).unwrap()).unwrap();
            }
            p.set("weight_hh_l0_u", &f.u).unwrap();
            p.set("weight_hh_l0_v", &f.v).unwrap();
        }
        // The effective matrix U V is within the Eckart-Young distance of W_hh.
        let uv = lr.recurrent_matrix(0, 0).unwrap();
        let dist = uv.iter().zip(&w_hh).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>().sqrt();
        let optimum = lowrank_error(&w_hh, 4 * h, h, rank).unwrap();
        assert!((dist - optimum).abs() <= 1e-5 * (1.0 + optimum), "rank {rank}: |W - UV| {dist} vs optimum {optimum}");

        let x = Rng::new(4).vec(b * t * i);
        let (mut yd, mut yl) = (vec![0f32; dense.output_len(b, t)], vec![0f32; lr.output_len(b, t)]);
        dense.forward(None, b, t, &x, &mut yd).unwrap();
        lr.forward(None, b, t, &x, &mut yl).unwrap();
        assert_finite(&yl, "low-rank y");
        if rank == h {
            assert_close(&yl, &yd, 1e-5, "LOW_RANK at rank H vs DENSE");
        }
        let cost = lr.cost(b, t).unwrap();
        assert!(cost.params > 0 && cost.flops > 0);
    }
}

#[test]
fn kronecker_recurrence_is_the_kronecker_product() {
    let (i, h, b, t) = (3, 6, 2, 3);
    let gru = Rnn::new(&RnnOptions {
        recurrence: Recurrence::Kronecker,
        factor_sizes: vec![2, 3],
        ..RnnOptions::new(Cell::Gru, i, h)
    })
    .unwrap();
    assert_eq!(gru.options().factor_sizes, [2, 3]);
    let k0 = gru.params().get("weight_hh_l0_kron0").unwrap(); // (G, 2, 2)
    let k1 = gru.params().get("weight_hh_l0_kron1").unwrap(); // (G, 3, 3)
    let w = gru.recurrent_matrix(0, 0).unwrap(); // (G*H, H)
    for g in 0..3 {
        for r in 0..h {
            for c in 0..h {
                let want = k0[g * 4 + (r / 3) * 2 + c / 3] * k1[g * 9 + (r % 3) * 3 + c % 3];
                let got = w[(g * h + r) * h + c];
                assert!((got - want).abs() <= 1e-6, "gate {g} ({r}, {c}): {got} vs {want}");
            }
        }
    }
    let x = Rng::new(5).vec(b * t * i);
    let mut y = vec![0f32; gru.output_len(b, t)];
    gru.forward(None, b, t, &x, &mut y).unwrap();
    assert_finite(&y, "Kronecker GRU y");
}

// ---- memory network -----------------------------------------------------------------------------

#[test]
fn memory_rnn_forward() {
    let opts = MemoryRnnOptions {
        input_size: 3,
        output_size: 2,
        controller_size: 8,
        num_heads: 2,
        memory_slots: 6,
        memory_width: 4,
        ..Default::default()
    };
    let (b, t) = (2, 4);
    let dense = MemoryRnn::new(&opts).unwrap();
    assert_eq!(dense.options().addressing, Addressing::Dense);
    let x = Rng::new(6).vec(b * t * 3);
    let mut y = vec![0f32; dense.output_len(b, t)];
    let mut rw = vec![0f32; b * t * 2 * 6];
    let mut mem = vec![0f32; b * 6 * 4];
    let mut ws = Workspace::new().unwrap();
    dense.forward(Some(&mut ws), b, t, &x, &mut y, Some(&mut rw), Some(&mut mem)).unwrap();
    assert_eq!(ws.size(), dense.cost(b, t).unwrap().workspace_bytes);
    assert!(y.iter().all(|&v| v > 0.0 && v < 1.0), "sigmoid outputs in (0, 1)");
    assert_finite(&mem, "memory");
    for row in rw.chunks(6) {
        let s: f32 = row.iter().sum();
        assert!(row.iter().all(|&w| w >= 0.0) && (s - 1.0).abs() < 1e-5, "a read weighting sums to 1 (got {s})");
    }

    // SPARSE with top_k = N computes DENSE; with top_k = 2 each weighting has at most 2 slots.
    let mut all = MemoryRnn::new(&MemoryRnnOptions { addressing: Addressing::Sparse, top_k: 6, ..opts.clone() }).unwrap();
    all.params_mut().load_from(&dense);
    let mut y2 = vec![0f32; y.len()];
    all.forward(None, b, t, &x, &mut y2, None, None).unwrap();
    assert_close(&y2, &y, 1e-6, "SPARSE top_k = N vs DENSE");

    let sparse = MemoryRnn::new(&MemoryRnnOptions { addressing: Addressing::Sparse, top_k: 2, ..opts }).unwrap();
    sparse.forward(None, b, t, &x, &mut y2, Some(&mut rw), None).unwrap();
    assert_finite(&y2, "sparse y");
    for row in rw.chunks(6) {
        assert!(row.iter().filter(|&&w| w != 0.0).count() <= 2, "top_k = 2 keeps at most 2 slots: {row:?}");
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

/// Copies every tensor of `from` into this set (same names).
trait LoadFrom {
    fn load_from(&mut self, from: &MemoryRnn);
}

impl LoadFrom for ParamsMut<'_> {
    fn load_from(&mut self, from: &MemoryRnn) {
        for name in from.params().names().unwrap() {
            self.set(&name, &from.params().get(&name).unwrap()).unwrap();
        }
    }
}

// ---- attention ----------------------------------------------------------------------------------

fn copy_projections(from: &MultiheadAttention, to: &mut MultiheadAttention) {
    let mut p = to.params_mut();
    for name in ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"] {
        p.set(name, &from.params().get(name).unwrap()).unwrap();
    }
}

fn identity(n: usize) -> Vec<f32> {
    (0..n * n).map(|k| if k / n == k % n { 1.0 } else { 0.0 }).collect()
}

#[test]
fn attention_full_linformer_nystrom_agree() {
    let (e, heads, b, n) = (8, 2, 2, 5);
    let mut full = MultiheadAttention::new(&MhaOptions::new(MhaKind::Full, e, heads)).unwrap();
    full.params_mut().init(3).unwrap();
    // init gives zero biases; make them nonzero so they are exercised too.
    let mut rng = Rng::new(7);
    full.params_mut().set("in_proj_bias", &rng.vec(3 * e)).unwrap();
    full.params_mut().set("out_proj.bias", &rng.vec(e)).unwrap();
    let (q, k, v) = (rng.vec(b * n * e), rng.vec(b * n * e), rng.vec(b * n * e));
    let mut want = vec![0f32; b * n * e];
    let mut ws = Workspace::new().unwrap();
    full.forward(Some(&mut ws), b, n, n, &q, &k, &v, None, &mut want).unwrap();
    assert_finite(&want, "FULL out");
    assert_eq!(ws.size(), full.cost(b, n, n).unwrap().workspace_bytes);

    // Streaming = materialized scores.
    let mut streaming =
        MultiheadAttention::new(&MhaOptions { memory_mode: MemoryMode::Streaming, ..MhaOptions::new(MhaKind::Full, e, heads) }).unwrap();
    copy_projections(&full, &mut streaming);
    let mut out = vec![0f32; want.len()];
    streaming.forward(None, b, n, n, &q, &k, &v, None, &mut out).unwrap();
    assert_close(&out, &want, 1e-5, "STREAMING vs FULL");

    // Linformer with proj_len = max_seq_len = n and identity projections is FULL attention.
    let mut lin = MultiheadAttention::new(&MhaOptions {
        max_seq_len: n,
        proj_len: n,
        ..MhaOptions::new(MhaKind::Linformer, e, heads)
    })
    .unwrap();
    assert_eq!(lin.params().find("proj_e").unwrap().shape, [n, n]);
    copy_projections(&full, &mut lin);
    lin.params_mut().set("proj_e", &identity(n)).unwrap();
    lin.params_mut().set("proj_f", &identity(n)).unwrap();
    lin.forward(None, b, n, n, &q, &k, &v, None, &mut out).unwrap();
    assert_close(&out, &want, 1e-5, "LINFORMER (identity projections) vs FULL");

    // Nystrom with one landmark per token and the exact pseudo-inverse: A1 pinv(A2) A3 = S S+ S = S.
    let mut nys = MultiheadAttention::new(&MhaOptions {
        num_landmarks: n,
        pinv: Pinv::Svd,
        ..MhaOptions::new(MhaKind::Nystrom, e, heads)
    })
    .unwrap();
    copy_projections(&full, &mut nys);
    nys.forward(None, b, n, n, &q, &k, &v, None, &mut out).unwrap();
    assert_close(&out, &want, 1e-4, "NYSTROM (m = n, SVD) vs FULL");
    let mut w_full = vec![0f32; b * heads * n * n];
    let mut w_nys = vec![0f32; w_full.len()];
    full.attention_matrix(None, b, n, n, &q, &k, &v, None, &mut w_full).unwrap();
    nys.attention_matrix(None, b, n, n, &q, &k, &v, None, &mut w_nys).unwrap();
    assert_close(&w_nys, &w_full, 1e-4, "NYSTROM attention matrix vs FULL");
    for row in w_full.chunks(n) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "softmax rows sum to 1");
    }
}

#[test]
fn attention_masks_causal_and_cross() {
    let (e, heads, b, l, s) = (6, 3, 2, 3, 4);
    // Cross-attention with other key and value sizes.
    let mha = MultiheadAttention::new(&MhaOptions { kdim: 5, vdim: 2, ..MhaOptions::new(MhaKind::Full, e, heads) }).unwrap();
    assert_eq!((mha.options().kdim, mha.options().vdim), (5, 2));
    assert!(mha.params().names().unwrap().contains(&"k_proj_weight".to_string()));
    let mut rng = Rng::new(8);
    let (q, k, v) = (rng.vec(b * l * e), rng.vec(b * s * 5), rng.vec(b * s * 2));
    // Batch element 1 masks every key: zeros before the output projection, so out = out_proj.bias (0).
    let mut mask = vec![0u8; b * s];
    mask[s..].iter_mut().for_each(|m| *m = 1);
    mask[1] = 1; // element 0 ignores key 1
    let mut out = vec![0f32; b * l * e];
    mha.forward(None, b, l, s, &q, &k, &v, Some(&mask), &mut out).unwrap();
    assert_finite(&out[..l * e], "unmasked element");
    assert!(out[l * e..].iter().all(|&x| x == 0.0), "a fully masked element gives out_proj.bias = 0");
    let mut w = vec![0f32; b * heads * l * s];
    mha.attention_matrix(None, b, l, s, &q, &k, &v, Some(&mask), &mut w).unwrap();
    for row in w[..heads * l * s].chunks(s) {
        assert_eq!(row[1], 0.0, "masked key gets weight 0");
    }

    // Causal self-attention: key j > query i gets weight 0.
    let causal = MultiheadAttention::new(&MhaOptions { causal: true, ..MhaOptions::new(MhaKind::Full, e, heads) }).unwrap();
    let x = rng.vec(b * s * e);
    let mut w = vec![0f32; b * heads * s * s];
    causal.attention_matrix(None, b, s, s, &x, &x, &x, None, &mut w).unwrap();
    for (r, row) in w.chunks(s).enumerate() {
        let i = r % s;
        assert!(row[i + 1..].iter().all(|&v| v == 0.0), "row {i}: {row:?}");
    }
    let mut out = vec![0f32; b * s * e];
    causal.forward_self(None, b, s, &x, None, &mut out).unwrap();
    assert_finite(&out, "causal out");
}

// ---- Perceiver ----------------------------------------------------------------------------------

fn small_perceiver(num_classes: usize) -> Perceiver {
    Perceiver::new(&PerceiverOptions {
        input_channels: 3,
        input_axis: 2,
        num_freq_bands: 2,
        max_freq: 4.0,
        depth: 2,
        num_latents: 4,
        latent_dim: 8,
        cross_dim_head: 8,
        latent_heads: 2,
        latent_dim_head: 4,
        num_classes,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn perceiver_forward() {
    let p = small_perceiver(5);
    let (b, axes) = (2, [3usize, 4]);
    let data = Rng::new(9).vec(b * 12 * 3);
    let mut out = vec![0f32; p.output_len(b)];
    assert_eq!(out.len(), b * 5);
    let mut ws = Workspace::new().unwrap();
    p.forward(Some(&mut ws), b, &axes, &data, None, &mut out).unwrap();
    assert_finite(&out, "Perceiver logits");
    assert_eq!(ws.size(), p.cost(b, &axes).unwrap().workspace_bytes);

    // Each batch element is computed on its own: element 1 alone gives the same logits, and a NaN
    // in element 0 leaves element 1 alone.
    let mut one = vec![0f32; p.output_len(1)];
    p.forward(None, 1, &axes, &data[12 * 3..], None, &mut one).unwrap();
    assert_close(&one, &out[5..], 1e-5, "batch element 1 alone vs in the batch");
    let mut nan = data.clone();
    nan[7] = f32::NAN;
    let mut out2 = vec![0f32; out.len()];
    p.forward(None, b, &axes, &nan, None, &mut out2).unwrap();
    assert!(out2[..5].iter().all(|v| v.is_nan()), "NaN element gives NaN");
    assert_close(&out2[5..], &out[5..], 1e-6, "the other element is unchanged");

    // Masking one position changes the result; without a head the output is the latent array.
    let mut mask = vec![0u8; b * 12];
    mask[0] = 1;
    p.forward(None, b, &axes, &data, Some(&mask), &mut out2).unwrap();
    assert!(max_abs_diff(&out2[..5], &out[..5]) > 0.0);
    assert_eq!(&out2[5..], &out[5..]);

    let latents = small_perceiver(0);
    let mut out = vec![0f32; latents.output_len(b)];
    assert_eq!(out.len(), b * 4 * 8);
    latents.forward(None, b, &axes, &data, None, &mut out).unwrap();
    assert_finite(&out, "Perceiver latents");
}

// ---- analysis -----------------------------------------------------------------------------------

#[test]
fn analysis_functions() {
    // diag(3, 2, 1) padded to 3 x 4
    let mut a = vec![0f32; 12];
    a[0] = 3.0;
    a[5] = -2.0;
    a[10] = 1.0;
    let s = singular_values(&a, 3, 4).unwrap();
    assert_eq!(s.len(), 3);
    for (got, want) in s.iter().zip([3.0, 2.0, 1.0]) {
        assert!((got - want).abs() < 1e-12, "{s:?}");
    }
    let r = rank_analyze(&a, 3, 4).unwrap();
    assert!((r.frobenius - 14f64.sqrt()).abs() < 1e-12);
    assert!((r.stable_rank - 14.0 / 9.0).abs() < 1e-12);
    assert_eq!((r.numerical_rank, r.rank_90, r.rank_99), (3, 3, 3));
    assert!((lowrank_error(&a, 3, 4, 1).unwrap() - 5f64.sqrt()).abs() < 1e-12);
    assert_eq!(lowrank_error(&a, 3, 4, 0).unwrap(), r.frobenius);

    // A rank-1 outer product.
    let (u, v) = ([1f32, 2.0, -1.0, 0.5], [2f32, 0.0, 1.0]);
    let outer: Vec<f32> = u.iter().flat_map(|x| v.iter().map(move |y| x * y)).collect();
    let r = rank_analyze(&outer, 4, 3).unwrap();
    assert_eq!(r.numerical_rank, 1);
    assert_eq!(r.rank_99, 1);
    assert!((r.stable_rank - 1.0).abs() < 1e-12);

    // Truncated SVD of a random matrix reaches the Eckart-Young error; V has orthonormal rows.
    let (m, n, k) = (7, 5, 2);
    let a = Rng::new(10).vec(m * n);
    let f = lowrank_factors(&a, m, n, k).unwrap();
    let mut err = 0f64;
    for i in 0..m {
        for j in 0..n {
            let uv: f64 = (0..k).map(|r| f.u[i * k + r] as f64 * f.v[r * n + j] as f64).sum();
            err += (a[i * n + j] as f64 - uv).powi(2);
        }
    }
    let optimum = lowrank_error(&a, m, n, k).unwrap();
    assert!((err.sqrt() - optimum).abs() < 1e-5, "{} vs {}", err.sqrt(), optimum);
    for r1 in 0..k {
        for r2 in 0..k {
            let dot: f32 = (0..n).map(|j| f.v[r1 * n + j] * f.v[r2 * n + j]).sum();
            assert!((dot - if r1 == r2 { 1.0 } else { 0.0 }).abs() < 1e-5);
        }
    }

    // Errors: Rust-side shape check, C-side NaN check naming row and column, rank out of range.
    assert_eq!(singular_values(&a, 6, 5).unwrap_err().status, Status::Shape);
    let mut bad = a.clone();
    bad[n + 2] = f32::INFINITY;
    let e = rank_analyze(&bad, m, n).unwrap_err();
    assert_eq!(e.status, Status::Numerical);
    assert!(e.message.starts_with("attn_rank_analyze") && e.message.contains('1') && e.message.contains('2'), "{}", e.message);
    assert_eq!(lowrank_factors(&a, m, n, 6).unwrap_err().status, Status::InvalidArg);
}

// ---- parameters ---------------------------------------------------------------------------------

#[test]
fn params_get_set_save_load_open() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("attn-rust-params.safetensors");
    let mut a = Rnn::new(&RnnOptions::new(Cell::Gru, 3, 4)).unwrap();
    let info = a.params().find("weight_ih_l0").unwrap();
    assert_eq!((info.shape.as_slice(), info.count), (&[12usize, 3][..], 36));
    let w: Vec<f32> = (0..36).map(|k| k as f32 / 36.0).collect();
    a.params_mut().set("weight_ih_l0", &w).unwrap();
    assert_eq!(a.params().get("weight_ih_l0").unwrap(), w);
    a.params().save(&path, Some("rnn.")).unwrap();

    let mut b = Rnn::new(&RnnOptions::new(Cell::Gru, 3, 4)).unwrap();
    assert_ne!(b.params().get("weight_ih_l0").unwrap(), w);
    b.params_mut().load(&path, Some("rnn."), LoadFlags::REJECT_UNKNOWN).unwrap();
    for name in a.params().names().unwrap() {
        assert_eq!(a.params().get(&name).unwrap(), b.params().get(&name).unwrap(), "{name}");
    }
    // Without the prefix every tensor is missing.
    let e = b.params_mut().load(&path, None, LoadFlags::NONE).unwrap_err();
    assert_eq!(e.status, Status::NotFound);
    assert!(e.message.contains("weight_ih_l0"), "{}", e.message);
    assert!(b.params_mut().load(&path, None, LoadFlags::ALLOW_MISSING).is_ok());

    let set = ParamSet::open(&path, Some("rnn.")).unwrap();
    assert_eq!(set.params().names().unwrap(), a.params().names().unwrap());
    assert_eq!(set.params().get("weight_ih_l0").unwrap(), w);

    // Errors, each captured with the library's message.
    let e = a.params_mut().set("weight_ih_l0", &w[..35]).unwrap_err();
    assert_eq!(e.status, Status::Shape);
    assert!(e.message.starts_with("attn_params_set") && e.message.contains("35"), "{}", e.message);
    let mut nan = w.clone();
    nan[3] = f32::NAN;
    assert_eq!(a.params_mut().set("weight_ih_l0", &nan).unwrap_err().status, Status::Numerical);
    assert_eq!(a.params().get("weight_ih_l0").unwrap(), w, "a failed set changes nothing");
    assert_eq!(a.params().find("weight_xx").unwrap_err().status, Status::NotFound);
    assert_eq!(a.params().find("bad\0name").unwrap_err().status, Status::InvalidArg);
    let e = ParamSet::open(dir.join("no-such-file.safetensors"), None).unwrap_err();
    assert_eq!(e.status, Status::Io);
    assert!(e.message.contains("no-such-file.safetensors"), "{}", e.message);
    let _ = std::fs::remove_file(&path);
}

// ---- errors -------------------------------------------------------------------------------------

#[test]
fn bad_options_name_the_argument() {
    let e = Rnn::new(&RnnOptions::new(Cell::Lstm, 3, 0)).unwrap_err();
    assert_eq!(e.status, Status::InvalidArg);
    assert!(e.message.starts_with("attn_rnn_create") && e.message.contains("hidden_size"), "{}", e.message);
    // Display: the message and the status text; usable as Box<dyn std::error::Error>.
    let boxed: Box<dyn std::error::Error> = Box::new(e.clone());
    assert!(boxed.to_string().contains(&e.message) && boxed.to_string().contains("ATTN_E_INVALID_ARG"), "{boxed}");

    let e = MultiheadAttention::new(&MhaOptions::new(MhaKind::Full, 6, 4)).unwrap_err();
    assert_eq!(e.status, Status::InvalidArg);
    assert!(e.message.contains("num_heads") || e.message.contains("embed_dim"), "{}", e.message);

    let e = MultiheadAttention::new(&MhaOptions { num_landmarks: 0, ..MhaOptions::new(MhaKind::Nystrom, 8, 2) }).unwrap_err();
    assert!(e.message.contains("num_landmarks"), "{}", e.message);

    let e = MemoryRnn::new(&MemoryRnnOptions { input_size: 2, output_size: 2, controller_size: 4, memory_slots: 0, memory_width: 3, ..Default::default() })
        .unwrap_err();
    assert!(e.message.contains("memory_slots"), "{}", e.message);

    let e = Perceiver::new(&PerceiverOptions { num_freq_bands: 2, max_freq: 4.0, depth: 0, ..Default::default() }).unwrap_err();
    assert!(e.message.contains("depth"), "{}", e.message);

    let e = Rnn::new(&RnnOptions {
        recurrence: Recurrence::Kronecker,
        factor_sizes: vec![2, 3],
        ..RnnOptions::new(Cell::Lstm, 3, 8)
    })
    .unwrap_err();
    assert!(e.message.contains("factor"), "{}", e.message);
    let e = Rnn::new(&RnnOptions { factor_sizes: vec![1; 33], ..RnnOptions::new(Cell::Lstm, 3, 8) }).unwrap_err();
    assert!(e.message.contains("factor_sizes"), "{}", e.message);
}

#[test]
fn shape_mismatch_is_caught_before_the_c_call() {
    let rnn = Rnn::new(&RnnOptions::new(Cell::Lstm, 3, 4)).unwrap();
    // A C failure first, so that its message is this thread's last error.
    let c_err = rnn.forward(None, 0, 1, &[], &mut []).unwrap_err();
    assert_eq!(c_err.status, Status::Shape);
    assert!(c_err.message.starts_with("attn_rnn_forward") && c_err.message.contains("batch"), "{}", c_err.message);
    assert_eq!(last_error_text(), c_err.message);

    let mut y = vec![0f32; rnn.output_len(2, 5)];
    let e = rnn.forward(None, 2, 5, &[0.0; 29], &mut y).unwrap_err();
    assert_eq!(e.status, Status::Shape);
    assert!(e.message.starts_with("Rnn::forward: x has 29 elements, expected batch * seq_len * input_size"), "{}", e.message);
    let e = rnn.forward(None, 2, 5, &[0.0; 30], &mut y[1..]).unwrap_err();
    assert!(e.message.contains(": y has 39 elements"), "{}", e.message);
    let h0 = [0f32; 7];
    let e = rnn.forward_state(None, 2, 5, &[0.0; 30], State { h: Some(&h0), c: None }, &mut y, StateOut::default()).unwrap_err();
    assert!(e.message.contains("h0 has 7 elements"), "{}", e.message);
    let gru = Rnn::new(&RnnOptions::new(Cell::Gru, 3, 4)).unwrap();
    let e = gru
        .forward_state(None, 2, 5, &[0.0; 30], State { h: None, c: Some(&[0.0; 8]) }, &mut y, StateOut::default())
        .unwrap_err();
    assert_eq!(e.status, Status::InvalidArg);
    assert!(e.message.contains("c0 is for LSTM only"), "{}", e.message);

    let mha = MultiheadAttention::new(&MhaOptions::new(MhaKind::Full, 4, 2)).unwrap();
    let e = mha.forward(None, 1, 2, 3, &[0.0; 8], &[0.0; 12], &[0.0; 12], Some(&[0; 2]), &mut [0.0; 8]).unwrap_err();
    assert!(e.message.contains("key_padding_mask has 2 elements"), "{}", e.message);
    let p = small_perceiver(5);
    let e = p.forward(None, 1, &[12], &[0.0; 36], None, &mut [0.0; 5]).unwrap_err();
    assert!(e.message.contains("axis_sizes has 1 entries, expected input_axis = 2"), "{}", e.message);

    // None of these reached the library: its last error is still the one from above.
    assert_eq!(last_error_text(), c_err.message);
}

#[test]
fn errors_are_captured_per_thread() {
    let rnn = Rnn::new(&RnnOptions::new(Cell::Lstm, 3, 4)).unwrap();
    let here = Rnn::new(&RnnOptions::new(Cell::Lstm, 0, 4)).unwrap_err();
    let there = std::thread::spawn(move || rnn.forward(None, 0, 1, &[], &mut []).unwrap_err()).join().unwrap();
    assert!(here.message.contains("input_size"), "{}", here.message);
    assert!(there.message.contains("batch"), "{}", there.message);
    assert_eq!(last_error_text(), here.message, "the other thread's failure did not touch this thread's message");
}

// ---- threads ------------------------------------------------------------------------------------

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn two_threads_share_one_handle() {
    assert_send_sync::<Rnn>();
    assert_send_sync::<MemoryRnn>();
    assert_send_sync::<MultiheadAttention>();
    assert_send_sync::<Perceiver>();
    assert_send_sync::<ParamSet>();
    assert_send::<Workspace>();

    // Scoped threads borrowing one LSTM, each with its own workspace.
    let (i, h, b, t) = (8, 16, 3, 20);
    let lstm = Rnn::new(&RnnOptions { num_layers: 2, ..RnnOptions::new(Cell::Lstm, i, h) }).unwrap();
    let inputs: Vec<Vec<f32>> = (0..2).map(|k| Rng::new(100 + k).vec(b * t * i)).collect();
    let expected: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| {
            let mut y = vec![0f32; lstm.output_len(b, t)];
            lstm.forward(None, b, t, x, &mut y).unwrap();
            y
        })
        .collect();
    std::thread::scope(|s| {
        for k in 0..2 {
            let (lstm, x, want) = (&lstm, &inputs[k], &expected[k]);
            s.spawn(move || {
                let mut ws = Workspace::new().unwrap();
                let mut y = vec![0f32; want.len()];
                for _ in 0..30 {
                    lstm.forward(Some(&mut ws), b, t, x, &mut y).unwrap();
                    assert_close(&y, want, 1e-6, "LSTM on a shared handle");
                }
            });
        }
    });

    // An Arc'd attention layer moved into 'static threads; the workspaces move in with them.
    let (e, n) = (16, 12);
    let mha = Arc::new(MultiheadAttention::new(&MhaOptions::new(MhaKind::Full, e, 4)).unwrap());
    let x = Arc::new(Rng::new(11).vec(b * n * e));
    let mut want = vec![0f32; b * n * e];
    mha.forward_self(None, b, n, &x, None, &mut want).unwrap();
    let want = Arc::new(want);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (mha, x, want) = (Arc::clone(&mha), Arc::clone(&x), Arc::clone(&want));
            let mut ws = Workspace::new().unwrap();
            std::thread::spawn(move || {
                let mut out = vec![0f32; want.len()];
                for _ in 0..30 {
                    mha.forward_self(Some(&mut ws), b, n, &x, None, &mut out).unwrap();
                    assert_close(&out, &want, 1e-6, "MHA on a shared handle");
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
}

#[test]
fn version_and_defaults() {
    let v: Vec<u32> = version().split('.').map(|p| p.parse().unwrap()).collect();
    assert_eq!(version_number(), v[0] * 10000 + v[1] * 100 + v[2]);
    assert!(version_number() >= sys::ATTN_VERSION_MAJOR * 10000 + sys::ATTN_VERSION_MINOR * 100);
    assert!(!build_info().is_empty());
    // Default comes from the C library's *_options_init.
    let o = RnnOptions::default();
    assert_eq!((o.cell, o.recurrence, o.num_layers, o.bias, o.bidirectional), (Cell::Lstm, Recurrence::Dense, 1, true, false));
    let m = MhaOptions::default();
    assert_eq!((m.kind, m.num_heads, m.pinv_iterations), (MhaKind::Full, 1, 6));
    let p = PerceiverOptions::default();
    assert_eq!((p.input_channels, p.input_axis, p.num_latents, p.latent_dim), (3, 2, 512, 512));
    assert_eq!(MemoryRnnOptions::default().controller_layers, 1);
    assert_eq!(Status::from_code(-2), Status::Shape);
    assert!(Status::Shape.description().starts_with("ATTN_E_SHAPE"));
}
