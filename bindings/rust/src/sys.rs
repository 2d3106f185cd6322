//! Raw declarations of libattn's C API: every `ATTN_API` function, struct and constant of
//! `include/attn/*.h`, one to one, with the C names. Everything here is `unsafe` to call and
//! follows the C documentation in the headers (shapes, ownership, thread rules).
//!
//! The test `tests/sync.rs` keeps this file in step with the headers: the set of functions, their
//! parameter and return types, the struct fields with their offsets and sizes (against a C program
//! compiled at test time) and the values of the constants. Add a declaration here whenever a
//! header gains one.

#![allow(non_camel_case_types)]

use std::os::raw::c_char;

// ---- common.h ---------------------------------------------------------------------------------

pub const ATTN_VERSION_MAJOR: u32 = 1;
pub const ATTN_VERSION_MINOR: u32 = 3;
pub const ATTN_VERSION_PATCH: u32 = 0;

pub type attn_status = i32;

pub const ATTN_OK: attn_status = 0;
pub const ATTN_E_INVALID_ARG: attn_status = -1;
pub const ATTN_E_SHAPE: attn_status = -2;
pub const ATTN_E_NOMEM: attn_status = -3;
pub const ATTN_E_UNSUPPORTED: attn_status = -4;
pub const ATTN_E_NOT_FOUND: attn_status = -5;
pub const ATTN_E_IO: attn_status = -6;
pub const ATTN_E_FORMAT: attn_status = -7;
pub const ATTN_E_NUMERICAL: attn_status = -8;
pub const ATTN_E_INTERNAL: attn_status = -9;

pub const ATTN_LOAD_ALLOW_MISSING: u32 = 0x1;
pub const ATTN_LOAD_REJECT_UNKNOWN: u32 = 0x2;

/// Opaque scratch memory reused across forward calls (one thread at a time).
#[repr(C)]
pub struct attn_workspace {
    _private: [u8; 0],
}

/// Opaque set of named float32 tensors (owned by a handle, or by `attn_params_open`).
#[repr(C)]
pub struct attn_params {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct attn_tensor_info {
    pub name: *const c_char,
    pub ndim: i64,
    pub shape: [i64; 4],
    pub count: i64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct attn_cost {
    pub params: i64,
    pub flops: i64,
    pub workspace_bytes: i64,
}

// ---- rnn.h ------------------------------------------------------------------------------------

/// Opaque recurrent network handle.
#[repr(C)]
pub struct attn_rnn {
    _private: [u8; 0],
}

pub const ATTN_CELL_RNN_TANH: i32 = 0;
pub const ATTN_CELL_RNN_RELU: i32 = 1;
pub const ATTN_CELL_LSTM: i32 = 2;
pub const ATTN_CELL_GRU: i32 = 3;

pub const ATTN_RECURRENCE_DENSE: i32 = 0;
pub const ATTN_RECURRENCE_LOW_RANK: i32 = 1;
pub const ATTN_RECURRENCE_KRONECKER: i32 = 2;

pub const ATTN_RNN_MAX_FACTORS: usize = 8;
pub const ATTN_RNN_MAX_FACTORS_ALL: usize = 32;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct attn_rnn_options {
    pub struct_size: u32,
    pub cell: i32,
    pub recurrence: i32,
    pub bidirectional: i32,
    pub bias: i32,
    pub input_size: i64,
    pub hidden_size: i64,
    pub num_layers: i64,
    pub rank: i64,
    pub num_factors: i64,
    pub factor_sizes: [i64; ATTN_RNN_MAX_FACTORS],
    pub flags: u32,
    // libattn 1.2
    pub more_factor_sizes: [i64; ATTN_RNN_MAX_FACTORS_ALL - ATTN_RNN_MAX_FACTORS],
}

// ---- memory.h ---------------------------------------------------------------------------------

/// Opaque memory-network RNN handle.
#[repr(C)]
pub struct attn_memrnn {
    _private: [u8; 0],
}

pub const ATTN_MEMORY_DENSE: i32 = 0;
pub const ATTN_MEMORY_SPARSE: i32 = 1;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct attn_memrnn_options {
    pub struct_size: u32,
    pub input_size: i64,
    pub output_size: i64,
    pub controller_size: i64,
    pub controller_layers: i64,
    pub num_heads: i64,
    pub memory_slots: i64,
    pub memory_width: i64,
    pub addressing: i32,
    pub top_k: i64,
    pub flags: u32,
}

// ---- attention.h ------------------------------------------------------------------------------

/// Opaque multi-head attention handle.
#[repr(C)]
pub struct attn_mha {
    _private: [u8; 0],
}

pub const ATTN_MHA_FULL: i32 = 0;
pub const ATTN_MHA_LINFORMER: i32 = 1;
pub const ATTN_MHA_NYSTROM: i32 = 2;

pub const ATTN_MEMORY_AUTO: i32 = 0;
pub const ATTN_MEMORY_MATERIALIZE: i32 = 1;
pub const ATTN_MEMORY_STREAMING: i32 = 2;

pub const ATTN_LINFORMER_HEADWISE: i32 = 0;
pub const ATTN_LINFORMER_KV: i32 = 1;
pub const ATTN_LINFORMER_NONE: i32 = 2;

pub const ATTN_PINV_NEWTON: i32 = 0;
pub const ATTN_PINV_SVD: i32 = 1;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct attn_mha_options {
    pub struct_size: u32,
    pub kind: i32,
    pub bias: i32,
    pub causal: i32,
    pub memory_mode: i32,
    pub embed_dim: i64,
    pub num_heads: i64,
    pub kdim: i64,
    pub vdim: i64,
    pub max_seq_len: i64,
    pub proj_len: i64,
    pub sharing: i32,
    pub pinv: i32,
    pub num_landmarks: i64,
    pub pinv_iterations: i64,
    pub conv_kernel: i64,
    pub flags: u32,
}

// ---- perceiver.h ------------------------------------------------------------------------------

/// Opaque Perceiver handle.
#[repr(C)]
pub struct attn_perceiver {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct attn_perceiver_options {
    pub struct_size: u32,
    pub input_channels: i64,
    pub input_axis: i64,
    pub num_freq_bands: i64,
    pub max_freq: f64,
    pub fourier_encode: i32,
    pub depth: i64,
    pub num_latents: i64,
    pub latent_dim: i64,
    pub cross_heads: i64,
    pub cross_dim_head: i64,
    pub latent_heads: i64,
    pub latent_dim_head: i64,
    pub self_per_cross_attn: i64,
    pub weight_tie_layers: i32,
    pub num_classes: i64,
    pub flags: u32,
}

// ---- analysis.h -------------------------------------------------------------------------------

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct attn_rank_report {
    pub sigma_max: f64,
    pub frobenius: f64,
    pub stable_rank: f64,
    pub effective_rank: f64,
    pub numerical_rank: i64,
    pub rank_90: i64,
    pub rank_99: i64,
}

// ---- functions --------------------------------------------------------------------------------

extern "C" {
    // common.h
    pub fn attn_version_number() -> u32;
    pub fn attn_version_string() -> *const c_char;
    pub fn attn_build_info() -> *const c_char;
    pub fn attn_status_str(status: attn_status) -> *const c_char;
    pub fn attn_last_error() -> *const c_char;
    pub fn attn_workspace_create(out: *mut *mut attn_workspace) -> attn_status;
    pub fn attn_workspace_destroy(ws: *mut attn_workspace);
    pub fn attn_workspace_size(ws: *const attn_workspace) -> i64;
    pub fn attn_thread_workspace_release();
    pub fn attn_thread_workspace_size() -> i64;
    pub fn attn_params_count(p: *const attn_params) -> i64;
    pub fn attn_params_info(p: *const attn_params, index: i64, out: *mut attn_tensor_info) -> attn_status;
    pub fn attn_params_find(p: *const attn_params, name: *const c_char, out: *mut attn_tensor_info) -> attn_status;
    pub fn attn_params_set(p: *mut attn_params, name: *const c_char, data: *const f32, count: i64) -> attn_status;
    pub fn attn_params_get(p: *const attn_params, name: *const c_char, out: *mut f32, count: i64) -> attn_status;
    pub fn attn_params_init(p: *mut attn_params, seed: u64) -> attn_status;
    pub fn attn_params_load(p: *mut attn_params, path: *const c_char, prefix: *const c_char, flags: u32)
        -> attn_status;
    pub fn attn_params_open(out: *mut *mut attn_params, path: *const c_char, prefix: *const c_char) -> attn_status;
    pub fn attn_params_close(p: *mut attn_params);
    pub fn attn_params_save(p: *const attn_params, path: *const c_char, prefix: *const c_char) -> attn_status;

    // rnn.h
    pub fn attn_rnn_options_init(options: *mut attn_rnn_options) -> attn_status;
    pub fn attn_rnn_create(out: *mut *mut attn_rnn, options: *const attn_rnn_options) -> attn_status;
    pub fn attn_rnn_destroy(rnn: *mut attn_rnn);
    pub fn attn_rnn_params(rnn: *mut attn_rnn) -> *mut attn_params;
    pub fn attn_rnn_get_options(rnn: *const attn_rnn, out: *mut attn_rnn_options) -> attn_status;
    pub fn attn_rnn_forward(
        rnn: *const attn_rnn,
        ws: *mut attn_workspace,
        batch: i64,
        seq_len: i64,
        x: *const f32,
        h0: *const f32,
        c0: *const f32,
        y: *mut f32,
        h_n: *mut f32,
        c_n: *mut f32,
    ) -> attn_status;
    pub fn attn_rnn_forward_lengths(
        rnn: *const attn_rnn,
        ws: *mut attn_workspace,
        batch: i64,
        seq_len: i64,
        lengths: *const i64,
        x: *const f32,
        h0: *const f32,
        c0: *const f32,
        y: *mut f32,
        h_n: *mut f32,
        c_n: *mut f32,
    ) -> attn_status;
    pub fn attn_rnn_recurrent_matrix(rnn: *const attn_rnn, layer: i64, direction: i64, out: *mut f32)
        -> attn_status;
    pub fn attn_rnn_cost(rnn: *const attn_rnn, batch: i64, seq_len: i64, out: *mut attn_cost) -> attn_status;

    // memory.h
    pub fn attn_memrnn_options_init(options: *mut attn_memrnn_options) -> attn_status;
    pub fn attn_memrnn_create(out: *mut *mut attn_memrnn, options: *const attn_memrnn_options) -> attn_status;
    pub fn attn_memrnn_destroy(memrnn: *mut attn_memrnn);
    pub fn attn_memrnn_params(memrnn: *mut attn_memrnn) -> *mut attn_params;
    pub fn attn_memrnn_get_options(memrnn: *const attn_memrnn, out: *mut attn_memrnn_options) -> attn_status;
    pub fn attn_memrnn_forward(
        memrnn: *const attn_memrnn,
        ws: *mut attn_workspace,
        batch: i64,
        seq_len: i64,
        x: *const f32,
        y: *mut f32,
        read_weights: *mut f32,
        memory_out: *mut f32,
    ) -> attn_status;
    pub fn attn_memrnn_cost(memrnn: *const attn_memrnn, batch: i64, seq_len: i64, out: *mut attn_cost)
        -> attn_status;

    // attention.h
    pub fn attn_mha_options_init(options: *mut attn_mha_options) -> attn_status;
    pub fn attn_mha_create(out: *mut *mut attn_mha, options: *const attn_mha_options) -> attn_status;
    pub fn attn_mha_destroy(mha: *mut attn_mha);
    pub fn attn_mha_params(mha: *mut attn_mha) -> *mut attn_params;
    pub fn attn_mha_get_options(mha: *const attn_mha, out: *mut attn_mha_options) -> attn_status;
    pub fn attn_mha_forward(
        mha: *const attn_mha,
        ws: *mut attn_workspace,
        batch: i64,
        tgt_len: i64,
        src_len: i64,
        query: *const f32,
        key: *const f32,
        value: *const f32,
        key_padding_mask: *const u8,
        out: *mut f32,
    ) -> attn_status;
    pub fn attn_mha_attention_matrix(
        mha: *const attn_mha,
        ws: *mut attn_workspace,
        batch: i64,
        tgt_len: i64,
        src_len: i64,
        query: *const f32,
        key: *const f32,
        value: *const f32,
        key_padding_mask: *const u8,
        weights: *mut f32,
    ) -> attn_status;
    pub fn attn_mha_cost(mha: *const attn_mha, batch: i64, tgt_len: i64, src_len: i64, out: *mut attn_cost)
        -> attn_status;

    // perceiver.h
    pub fn attn_perceiver_options_init(options: *mut attn_perceiver_options) -> attn_status;
    pub fn attn_perceiver_create(out: *mut *mut attn_perceiver, options: *const attn_perceiver_options)
        -> attn_status;
    pub fn attn_perceiver_destroy(perceiver: *mut attn_perceiver);
    pub fn attn_perceiver_params(perceiver: *mut attn_perceiver) -> *mut attn_params;
    pub fn attn_perceiver_get_options(perceiver: *const attn_perceiver, out: *mut attn_perceiver_options)
        -> attn_status;
    pub fn attn_perceiver_forward(
        perceiver: *const attn_perceiver,
        ws: *mut attn_workspace,
        batch: i64,
        axis_sizes: *const i64,
        data: *const f32,
        mask: *const u8,
        out: *mut f32,
    ) -> attn_status;
    pub fn attn_perceiver_cost(
        perceiver: *const attn_perceiver,
        batch: i64,
        axis_sizes: *const i64,
        out: *mut attn_cost,
    ) -> attn_status;

    // analysis.h
    pub fn attn_singular_values(a: *const f32, rows: i64, cols: i64, sigma: *mut f64) -> attn_status;
    pub fn attn_rank_analyze(a: *const f32, rows: i64, cols: i64, out: *mut attn_rank_report) -> attn_status;
    pub fn attn_lowrank_error(a: *const f32, rows: i64, cols: i64, rank: i64, frobenius_error: *mut f64)
        -> attn_status;
    pub fn attn_lowrank_factors(a: *const f32, rows: i64, cols: i64, rank: i64, u: *mut f32, v: *mut f32)
        -> attn_status;
}
