//! Recurrent networks (`attn_rnn`): Elman tanh/relu, LSTM, GRU with a dense, low-rank or
//! Kronecker-factored recurrence; PyTorch semantics and state_dict names (docs/rnn.md).

use std::ptr::NonNull;

use crate::error::{check, Error, Result, Status};
use crate::{bool_i32, check_len, opt_mut_ptr, opt_slice_ptr, product, sys, to_i64, to_usize, ws_ptr, Cost, Workspace};

/// The cell (`attn_rnn_options.cell`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// `h' = tanh(W_ih x + b_ih + R(h) + b_hh)` (`ATTN_CELL_RNN_TANH`).
    RnnTanh,
    /// `h' = relu(...)` (`ATTN_CELL_RNN_RELU`).
    RnnRelu,
    /// Gates i, f, g, o in PyTorch's row order (`ATTN_CELL_LSTM`).
    Lstm,
    /// Gates r, z, n in PyTorch's row order (`ATTN_CELL_GRU`).
    Gru,
}

impl Cell {
    pub fn to_raw(self) -> i32 {
        match self {
            Cell::RnnTanh => sys::ATTN_CELL_RNN_TANH,
            Cell::RnnRelu => sys::ATTN_CELL_RNN_RELU,
            Cell::Lstm => sys::ATTN_CELL_LSTM,
            Cell::Gru => sys::ATTN_CELL_GRU,
        }
    }

    pub fn from_raw(v: i32) -> Option<Cell> {
        match v {
            sys::ATTN_CELL_RNN_TANH => Some(Cell::RnnTanh),
            sys::ATTN_CELL_RNN_RELU => Some(Cell::RnnRelu),
            sys::ATTN_CELL_LSTM => Some(Cell::Lstm),
            sys::ATTN_CELL_GRU => Some(Cell::Gru),
            _ => None,
        }
    }

    /// G, the number of gate blocks: 1 (Elman), 4 (LSTM), 3 (GRU).
    pub fn gates(self) -> usize {
        match self {
            Cell::RnnTanh | Cell::RnnRelu => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

/// How the recurrent map R(h) is parameterized (`attn_rnn_options.recurrence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recurrence {
    /// `R(h) = W_hh h` (`ATTN_RECURRENCE_DENSE`).
    Dense,
    /// `R(h) = U (V h)` with U (G·H, rank), V (rank, H); set [`RnnOptions::rank`].
    LowRank,
    /// Per gate, a Kronecker product of factors; set [`RnnOptions::factor_sizes`].
    Kronecker,
}

impl Recurrence {
    pub fn to_raw(self) -> i32 {
        match self {
            Recurrence::Dense => sys::ATTN_RECURRENCE_DENSE,
            Recurrence::LowRank => sys::ATTN_RECURRENCE_LOW_RANK,
            Recurrence::Kronecker => sys::ATTN_RECURRENCE_KRONECKER,
        }
    }

    pub fn from_raw(v: i32) -> Option<Recurrence> {
        match v {
            sys::ATTN_RECURRENCE_DENSE => Some(Recurrence::Dense),
            sys::ATTN_RECURRENCE_LOW_RANK => Some(Recurrence::LowRank),
            sys::ATTN_RECURRENCE_KRONECKER => Some(Recurrence::Kronecker),
            _ => None,
        }
    }
}

/// Options of [`Rnn::new`] (`attn_rnn_options`). `Default` is the C library's
/// `attn_rnn_options_init`: LSTM, dense, one layer, unidirectional, with biases, sizes 0 (must be
/// set). Build it with `RnnOptions { ..., ..Default::default() }` or [`RnnOptions::new`], so that
/// fields added later keep their defaults. The library validates the values; an invalid one is
/// an [`Error`] naming the option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RnnOptions {
    pub cell: Cell,
    pub recurrence: Recurrence,
    pub bidirectional: bool,
    /// `b_ih` and `b_hh` present.
    pub bias: bool,
    /// I > 0.
    pub input_size: usize,
    /// H > 0.
    pub hidden_size: usize,
    /// L >= 1.
    pub num_layers: usize,
    /// LOW_RANK only: 1 <= rank <= H.
    pub rank: usize,
    /// KRONECKER only: the factor sizes p_f (1 to 32 of them, product = H).
    pub factor_sizes: Vec<usize>,
}

impl Default for RnnOptions {
    fn default() -> RnnOptions {
        RnnOptions::from_raw(&raw_defaults()).expect("attn_rnn_options_init wrote a cell or recurrence the bindings know")
    }
}

fn raw_defaults() -> sys::attn_rnn_options {
    // SAFETY: the struct is plain old data (integers); zero is a valid bit pattern for it, and
    // attn_rnn_options_init writes every field and struct_size.
    let mut o: sys::attn_rnn_options = unsafe { std::mem::zeroed() };
    unsafe { sys::attn_rnn_options_init(&mut o) };
    o
}

impl RnnOptions {
    /// The defaults with `cell`, `input_size` and `hidden_size` set.
    pub fn new(cell: Cell, input_size: usize, hidden_size: usize) -> RnnOptions {
        RnnOptions { cell, input_size, hidden_size, ..RnnOptions::default() }
    }

    /// The C struct: `attn_rnn_options_init`'s defaults overwritten by these fields.
    pub fn to_raw(&self) -> Result<sys::attn_rnn_options> {
        const F: &str = "Rnn::new";
        let mut o = raw_defaults();
        o.cell = self.cell.to_raw();
        o.recurrence = self.recurrence.to_raw();
        o.bidirectional = bool_i32(self.bidirectional);
        o.bias = bool_i32(self.bias);
        o.input_size = to_i64(F, "input_size", self.input_size)?;
        o.hidden_size = to_i64(F, "hidden_size", self.hidden_size)?;
        o.num_layers = to_i64(F, "num_layers", self.num_layers)?;
        o.rank = to_i64(F, "rank", self.rank)?;
        if self.factor_sizes.len() > sys::ATTN_RNN_MAX_FACTORS_ALL {
            return Err(Error::new(
                Status::InvalidArg,
                format!(
                    "{F}: factor_sizes has {} entries, at most ATTN_RNN_MAX_FACTORS_ALL = {}",
                    self.factor_sizes.len(),
                    sys::ATTN_RNN_MAX_FACTORS_ALL
                ),
            ));
        }
        o.num_factors = self.factor_sizes.len() as i64;
        o.factor_sizes = [0; sys::ATTN_RNN_MAX_FACTORS];
        o.more_factor_sizes = [0; sys::ATTN_RNN_MAX_FACTORS_ALL - sys::ATTN_RNN_MAX_FACTORS];
        for (f, &p) in self.factor_sizes.iter().enumerate() {
            let p = to_i64(F, "factor_sizes[f]", p)?;
            if f < sys::ATTN_RNN_MAX_FACTORS {
                o.factor_sizes[f] = p;
            } else {
                o.more_factor_sizes[f - sys::ATTN_RNN_MAX_FACTORS] = p;
            }
        }
        Ok(o)
    }

    /// The options of a C struct; `Status::Unsupported` for a cell or recurrence these bindings
    /// do not know.
    pub fn from_raw(o: &sys::attn_rnn_options) -> Result<RnnOptions> {
        let cell = Cell::from_raw(o.cell)
            .ok_or_else(|| Error::new(Status::Unsupported, format!("attn_rnn_options: unknown cell {}", o.cell)))?;
        let recurrence = Recurrence::from_raw(o.recurrence).ok_or_else(|| {
            Error::new(Status::Unsupported, format!("attn_rnn_options: unknown recurrence {}", o.recurrence))
        })?;
        let nf = to_usize(o.num_factors).min(sys::ATTN_RNN_MAX_FACTORS_ALL);
        let factor_sizes = o.factor_sizes.iter().chain(o.more_factor_sizes.iter()).take(nf).map(|&p| to_usize(p)).collect();
        Ok(RnnOptions {
            cell,
            recurrence,
            bidirectional: o.bidirectional != 0,
            bias: o.bias != 0,
            input_size: to_usize(o.input_size),
            hidden_size: to_usize(o.hidden_size),
            num_layers: to_usize(o.num_layers),
            rank: to_usize(o.rank),
            factor_sizes,
        })
    }
}

/// The initial state of a forward call; `None` = zeros. `h` and `c` are
/// `[num_layers * directions, batch, hidden_size]`; `c` is for LSTM only.
#[derive(Debug, Default, Clone, Copy)]
pub struct State<'a> {
    pub h: Option<&'a [f32]>,
    pub c: Option<&'a [f32]>,
}

/// Where a forward call writes the final state; `None` = not wanted. Shapes as [`State`].
#[derive(Debug, Default)]
pub struct StateOut<'a> {
    pub h: Option<&'a mut [f32]>,
    pub c: Option<&'a mut [f32]>,
}

/// A recurrent network (`attn_rnn`). Parameters start as `attn_params_init(params, 0)`; set or
/// load real weights through [`Rnn::params_mut`].
pub struct Rnn {
    raw: NonNull<sys::attn_rnn>,
    options: RnnOptions,
}

handle_common!(Rnn, attn_rnn, attn_rnn_destroy, attn_rnn_params);

impl Rnn {
    /// Creates a network (`attn_rnn_create`).
    pub fn new(options: &RnnOptions) -> Result<Rnn> {
        let o = options.to_raw()?;
        let raw = create_handle!(attn_rnn_create, &o, "attn_rnn_create");
        let mut rnn = Rnn { raw, options: options.clone() };
        // Read back what the library made of the options (the handle is dropped on error).
        let mut got = raw_defaults();
        // SAFETY: live handle; `got` carries this header's struct_size.
        check(unsafe { sys::attn_rnn_get_options(rnn.raw.as_ptr(), &mut got) })?;
        rnn.options = RnnOptions::from_raw(&got)?;
        Ok(rnn)
    }

    /// The options the handle was created with (`attn_rnn_get_options`).
    pub fn options(&self) -> &RnnOptions {
        &self.options
    }

    /// D: 2 if bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.options.bidirectional {
            2
        } else {
            1
        }
    }

    /// Elements of `y` for this shape: `batch * seq_len * directions * hidden_size`.
    pub fn output_len(&self, batch: usize, seq_len: usize) -> usize {
        batch.saturating_mul(seq_len).saturating_mul(self.directions()).saturating_mul(self.options.hidden_size)
    }

    /// Elements of a state tensor: `num_layers * directions * batch * hidden_size`.
    pub fn state_len(&self, batch: usize) -> usize {
        self.options
            .num_layers
            .saturating_mul(self.directions())
            .saturating_mul(batch)
            .saturating_mul(self.options.hidden_size)
    }

    /// Runs the network from a zero state: `x [batch, seq_len, input_size]` to
    /// `y [batch, seq_len, directions * hidden_size]` (`attn_rnn_forward`). `ws`: a workspace of
    /// this thread, or `None` for the thread's own (kept by the library).
    pub fn forward(
        &self,
        ws: Option<&mut Workspace>,
        batch: usize,
        seq_len: usize,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<()> {
        self.forward_state(ws, batch, seq_len, x, State::default(), y, StateOut::default())
    }

    /// [`forward`](Rnn::forward) from the initial state `init`, writing the final state into `last`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_state(
        &self,
        ws: Option<&mut Workspace>,
        batch: usize,
        seq_len: usize,
        x: &[f32],
        init: State<'_>,
        y: &mut [f32],
        mut last: StateOut<'_>,
    ) -> Result<()> {
        const F: &str = "Rnn::forward";
        let (b, t) = self.check_io(F, batch, seq_len, x, &init, y, &last)?;
        // SAFETY: live const handle; every slice has the length the C function reads or writes
        // (checked above); Rust's borrows keep outputs apart from inputs and from each other.
        check(unsafe {
            sys::attn_rnn_forward(
                self.raw.as_ptr(),
                ws_ptr(ws),
                b,
                t,
                x.as_ptr(),
                opt_slice_ptr(init.h),
                opt_slice_ptr(init.c),
                y.as_mut_ptr(),
                opt_mut_ptr(last.h.as_deref_mut()),
                opt_mut_ptr(last.c.as_deref_mut()),
            )
        })
    }

    /// Variable-length sequences, as PyTorch's pack_padded_sequence: sequence `b` has
    /// `lengths[b]` valid steps, `1 <= lengths[b] <= seq_len` (`attn_rnn_forward_lengths`).
    /// `y[b, t]` is 0 for `t >= lengths[b]`; the final state is each sequence's own.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_lengths(
        &self,
        ws: Option<&mut Workspace>,
        batch: usize,
        seq_len: usize,
        lengths: &[i64],
        x: &[f32],
        init: State<'_>,
        y: &mut [f32],
        mut last: StateOut<'_>,
    ) -> Result<()> {
        const F: &str = "Rnn::forward_lengths";
        check_len(F, "lengths", lengths.len(), "batch", &[batch])?;
        let (b, t) = self.check_io(F, batch, seq_len, x, &init, y, &last)?;
        // SAFETY: as forward_state; `lengths` holds `batch` values (the library checks their range).
        check(unsafe {
            sys::attn_rnn_forward_lengths(
                self.raw.as_ptr(),
                ws_ptr(ws),
                b,
                t,
                lengths.as_ptr(),
                x.as_ptr(),
                opt_slice_ptr(init.h),
                opt_slice_ptr(init.c),
                y.as_mut_ptr(),
                opt_mut_ptr(last.h.as_deref_mut()),
                opt_mut_ptr(last.c.as_deref_mut()),
            )
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn check_io(
        &self,
        func: &str,
        batch: usize,
        seq_len: usize,
        x: &[f32],
        init: &State<'_>,
        y: &[f32],
        last: &StateOut<'_>,
    ) -> Result<(i64, i64)> {
        let o = &self.options;
        let d = self.directions();
        check_len(func, "x", x.len(), "batch * seq_len * input_size", &[batch, seq_len, o.input_size])?;
        check_len(
            func,
            "y",
            y.len(),
            "batch * seq_len * directions * hidden_size",
            &[batch, seq_len, d, o.hidden_size],
        )?;
        let state = [o.num_layers, d, batch, o.hidden_size];
        let state_names = "num_layers * directions * batch * hidden_size";
        let lens = [
            ("h0", init.h.map(|s| s.len())),
            ("c0", init.c.map(|s| s.len())),
            ("h_n", last.h.as_ref().map(|s| s.len())),
            ("c_n", last.c.as_ref().map(|s| s.len())),
        ];
        for (name, len) in lens {
            if let Some(len) = len {
                if name.starts_with('c') && o.cell != Cell::Lstm {
                    return Err(Error::new(
                        Status::InvalidArg,
                        format!("{func}: {name} is for LSTM only (this handle's cell is {:?})", o.cell),
                    ));
                }
                check_len(func, name, len, state_names, &state)?;
            }
        }
        Ok((to_i64(func, "batch", batch)?, to_i64(func, "seq_len", seq_len)?))
    }

    /// The effective recurrent matrix of one layer and direction (0 forward, 1 reverse),
    /// `[gates * hidden_size, hidden_size]` (`attn_rnn_recurrent_matrix`): W_hh, U V, or the
    /// Kronecker products, gate blocks in PyTorch's row order.
    pub fn recurrent_matrix(&self, layer: usize, direction: usize) -> Result<Vec<f32>> {
        let h = self.options.hidden_size;
        let n = product("Rnn::recurrent_matrix", "gates * hidden_size * hidden_size", &[self.options.cell.gates(), h, h])?;
        let mut out = vec![0.0f32; n];
        self.recurrent_matrix_into(layer, direction, &mut out)?;
        Ok(out)
    }

    /// [`recurrent_matrix`](Rnn::recurrent_matrix) into a caller's slice.
    pub fn recurrent_matrix_into(&self, layer: usize, direction: usize, out: &mut [f32]) -> Result<()> {
        const F: &str = "Rnn::recurrent_matrix";
        let h = self.options.hidden_size;
        check_len(F, "out", out.len(), "gates * hidden_size * hidden_size", &[self.options.cell.gates(), h, h])?;
        let layer = to_i64(F, "layer", layer)?;
        let direction = to_i64(F, "direction", direction)?;
        // SAFETY: live handle; `out` has the checked length (the library checks layer/direction).
        check(unsafe { sys::attn_rnn_recurrent_matrix(self.raw.as_ptr(), layer, direction, out.as_mut_ptr()) })
    }

    /// Parameters, FLOPs and workspace bytes of forward for this shape (`attn_rnn_cost`).
    pub fn cost(&self, batch: usize, seq_len: usize) -> Result<Cost> {
        let b = to_i64("Rnn::cost", "batch", batch)?;
        let t = to_i64("Rnn::cost", "seq_len", seq_len)?;
        let mut out = sys::attn_cost::default();
        // SAFETY: live handle and out pointer.
        check(unsafe { sys::attn_rnn_cost(self.raw.as_ptr(), b, t, &mut out) })?;
        Ok(out.into())
    }
}

impl std::fmt::Debug for Rnn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rnn").field("options", &self.options).finish()
    }
}
