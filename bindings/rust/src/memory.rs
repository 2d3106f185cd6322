//! The memory-network RNN (`attn_memrnn`): a Neural Turing Machine with an LSTM controller,
//! pytorch-ntm's EncapsulatedNTM (docs/memory.md), with dense or sparse (top-k) addressing.

use std::ptr::NonNull;

use crate::error::{check, Error, Result, Status};
use crate::{check_len, opt_mut_ptr, sys, to_i64, to_usize, ws_ptr, Cost, Workspace};

/// How the heads address the memory (`attn_memrnn_options.addressing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addressing {
    /// Every head reads and writes all slots with its weighting (`ATTN_MEMORY_DENSE`).
    Dense,
    /// Each head keeps its `top_k` largest weights, renormalized (`ATTN_MEMORY_SPARSE`).
    Sparse,
}

impl Addressing {
    pub fn to_raw(self) -> i32 {
        match self {
            Addressing::Dense => sys::ATTN_MEMORY_DENSE,
            Addressing::Sparse => sys::ATTN_MEMORY_SPARSE,
        }
    }

    pub fn from_raw(v: i32) -> Option<Addressing> {
        match v {
            sys::ATTN_MEMORY_DENSE => Some(Addressing::Dense),
            sys::ATTN_MEMORY_SPARSE => Some(Addressing::Sparse),
            _ => None,
        }
    }
}

/// Options of [`MemoryRnn::new`] (`attn_memrnn_options`). `Default` is the C library's
/// `attn_memrnn_options_init` (one controller layer, one head pair, dense addressing; the sizes are
/// 0 and must be set). Build it with `MemoryRnnOptions { ..., ..Default::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryRnnOptions {
    /// External input features (> 0).
    pub input_size: usize,
    /// External output features (> 0).
    pub output_size: usize,
    /// C: hidden size of the LSTM controller (> 0).
    pub controller_size: usize,
    /// L: controller layers, 1..65536.
    pub controller_layers: usize,
    /// R: (read head, write head) pairs, 1..65536.
    pub num_heads: usize,
    /// N: rows of the memory (> 0).
    pub memory_slots: usize,
    /// W: columns of the memory (> 0).
    pub memory_width: usize,
    pub addressing: Addressing,
    /// SPARSE: slots kept per head (>= 1).
    pub top_k: usize,
}

fn raw_defaults() -> sys::attn_memrnn_options {
    // SAFETY: plain old data, zero is valid; init writes every field and struct_size.
    let mut o: sys::attn_memrnn_options = unsafe { std::mem::zeroed() };
    unsafe { sys::attn_memrnn_options_init(&mut o) };
    o
}

impl Default for MemoryRnnOptions {
    fn default() -> MemoryRnnOptions {
        MemoryRnnOptions::from_raw(&raw_defaults()).expect("attn_memrnn_options_init wrote an addressing the bindings know")
    }
}

impl MemoryRnnOptions {
    /// The C struct: `attn_memrnn_options_init`'s defaults overwritten by these fields.
    pub fn to_raw(&self) -> Result<sys::attn_memrnn_options> {
        const F: &str = "MemoryRnn::new";
        let mut o = raw_defaults();
        o.input_size = to_i64(F, "input_size", self.input_size)?;
        o.output_size = to_i64(F, "output_size", self.output_size)?;
        o.controller_size = to_i64(F, "controller_size", self.controller_size)?;
        o.controller_layers = to_i64(F, "controller_layers", self.controller_layers)?;
        o.num_heads = to_i64(F, "num_heads", self.num_heads)?;
        o.memory_slots = to_i64(F, "memory_slots", self.memory_slots)?;
        o.memory_width = to_i64(F, "memory_width", self.memory_width)?;
        o.addressing = self.addressing.to_raw();
        o.top_k = to_i64(F, "top_k", self.top_k)?;
        Ok(o)
    }

    /// The options of a C struct; `Status::Unsupported` for an unknown addressing.
    pub fn from_raw(o: &sys::attn_memrnn_options) -> Result<MemoryRnnOptions> {
        let addressing = Addressing::from_raw(o.addressing).ok_or_else(|| {
            Error::new(Status::Unsupported, format!("attn_memrnn_options: unknown addressing {}", o.addressing))
        })?;
        Ok(MemoryRnnOptions {
            input_size: to_usize(o.input_size),
            output_size: to_usize(o.output_size),
            controller_size: to_usize(o.controller_size),
            controller_layers: to_usize(o.controller_layers),
            num_heads: to_usize(o.num_heads),
            memory_slots: to_usize(o.memory_slots),
            memory_width: to_usize(o.memory_width),
            addressing,
            top_k: to_usize(o.top_k),
        })
    }
}

/// A memory-network RNN (`attn_memrnn`). Each sequence starts from the learned initial state.
pub struct MemoryRnn {
    raw: NonNull<sys::attn_memrnn>,
    options: MemoryRnnOptions,
}

handle_common!(MemoryRnn, attn_memrnn, attn_memrnn_destroy, attn_memrnn_params);

impl MemoryRnn {
    /// Creates a memory-network RNN (`attn_memrnn_create`).
    pub fn new(options: &MemoryRnnOptions) -> Result<MemoryRnn> {
        let o = options.to_raw()?;
        let raw = create_handle!(attn_memrnn_create, &o, "attn_memrnn_create");
        let mut m = MemoryRnn { raw, options: options.clone() };
        let mut got = raw_defaults();
        // SAFETY: live handle, out pointer with this header's struct_size.
        check(unsafe { sys::attn_memrnn_get_options(m.raw.as_ptr(), &mut got) })?;
        m.options = MemoryRnnOptions::from_raw(&got)?;
        Ok(m)
    }

    /// The options the handle was created with.
    pub fn options(&self) -> &MemoryRnnOptions {
        &self.options
    }

    /// Elements of `y`: `batch * seq_len * output_size`.
    pub fn output_len(&self, batch: usize, seq_len: usize) -> usize {
        batch.saturating_mul(seq_len).saturating_mul(self.options.output_size)
    }

    /// Runs the machine (`attn_memrnn_forward`):
    /// `x [batch, seq_len, input_size]` to sigmoid outputs `y [batch, seq_len, output_size]`;
    /// optionally each read head's weighting `read_weights [batch, seq_len, num_heads,
    /// memory_slots]` and the final memory `memory_out [batch, memory_slots, memory_width]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        ws: Option<&mut Workspace>,
        batch: usize,
        seq_len: usize,
        x: &[f32],
        y: &mut [f32],
        read_weights: Option<&mut [f32]>,
        memory_out: Option<&mut [f32]>,
    ) -> Result<()> {
        const F: &str = "MemoryRnn::forward";
        let o = &self.options;
        check_len(F, "x", x.len(), "batch * seq_len * input_size", &[batch, seq_len, o.input_size])?;
        check_len(F, "y", y.len(), "batch * seq_len * output_size", &[batch, seq_len, o.output_size])?;
        if let Some(r) = &read_weights {
            check_len(
                F,
                "read_weights",
                r.len(),
                "batch * seq_len * num_heads * memory_slots",
                &[batch, seq_len, o.num_heads, o.memory_slots],
            )?;
        }
        if let Some(m) = &memory_out {
            check_len(
                F,
                "memory_out",
                m.len(),
                "batch * memory_slots * memory_width",
                &[batch, o.memory_slots, o.memory_width],
            )?;
        }
        let b = to_i64(F, "batch", batch)?;
        let t = to_i64(F, "seq_len", seq_len)?;
        // SAFETY: live const handle; slice lengths checked above; borrows keep outputs apart.
        check(unsafe {
            sys::attn_memrnn_forward(
                self.raw.as_ptr(),
                ws_ptr(ws),
                b,
                t,
                x.as_ptr(),
                y.as_mut_ptr(),
                opt_mut_ptr(read_weights),
                opt_mut_ptr(memory_out),
            )
        })
    }

    /// Parameters, FLOPs and workspace bytes of forward for this shape (`attn_memrnn_cost`).
    pub fn cost(&self, batch: usize, seq_len: usize) -> Result<Cost> {
        let b = to_i64("MemoryRnn::cost", "batch", batch)?;
        let t = to_i64("MemoryRnn::cost", "seq_len", seq_len)?;
        let mut out = sys::attn_cost::default();
        // SAFETY: live handle and out pointer.
        check(unsafe { sys::attn_memrnn_cost(self.raw.as_ptr(), b, t, &mut out) })?;
        Ok(out.into())
    }
}

impl std::fmt::Debug for MemoryRnn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRnn").field("options", &self.options).finish()
    }
}
