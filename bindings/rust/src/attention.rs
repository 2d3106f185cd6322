//! Multi-head attention (`attn_mha`): full softmax attention (materialized or streaming),
//! Linformer and Nyström; torch.nn.MultiheadAttention semantics and state_dict names
//! (docs/attention.md).

use std::ptr::NonNull;

use crate::error::{check, Error, Result, Status};
use crate::{bool_i32, check_len, opt_slice_ptr, sys, to_i64, to_usize, ws_ptr, Cost, Workspace};

macro_rules! raw_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $variant:ident = $c:path),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            pub fn to_raw(self) -> i32 {
                match self { $($name::$variant => $c),+ }
            }

            pub fn from_raw(v: i32) -> Option<$name> {
                $(if v == $c { return Some($name::$variant); })+
                None
            }

            fn from_raw_or_err(v: i32) -> Result<$name> {
                $name::from_raw(v).ok_or_else(|| {
                    Error::new(Status::Unsupported, format!(concat!("attn_mha_options: unknown ", $what, " {}"), v))
                })
            }
        }
    };
}

raw_enum!(
    /// The kind of attention (`attn_mha_options.kind`).
    MhaKind, "kind" {
        /// `softmax(Q K^T / sqrt(dh)) V` (`ATTN_MHA_FULL`).
        Full = sys::ATTN_MHA_FULL,
        /// Keys and values projected along the sequence to `proj_len` rows (`ATTN_MHA_LINFORMER`).
        Linformer = sys::ATTN_MHA_LINFORMER,
        /// `num_landmarks` segment means and a pseudo-inverse (`ATTN_MHA_NYSTROM`).
        Nystrom = sys::ATTN_MHA_NYSTROM,
    }
);

raw_enum!(
    /// FULL: how the scores are held (`attn_mha_options.memory_mode`).
    MemoryMode, "memory_mode" {
        /// MATERIALIZE while one score block fits the budget, else STREAMING.
        Auto = sys::ATTN_MEMORY_AUTO,
        /// L x S scores per (batch, head).
        Materialize = sys::ATTN_MEMORY_MATERIALIZE,
        /// Tiles of keys with a running max and sum.
        Streaming = sys::ATTN_MEMORY_STREAMING,
    }
);

raw_enum!(
    /// LINFORMER: which projections are shared (`attn_mha_options.sharing`).
    LinformerSharing, "sharing" {
        /// One E and one F for all heads.
        Headwise = sys::ATTN_LINFORMER_HEADWISE,
        /// One E for keys and values.
        Kv = sys::ATTN_LINFORMER_KV,
        /// Per head E and F.
        None = sys::ATTN_LINFORMER_NONE,
    }
);

raw_enum!(
    /// NYSTROM: the pseudo-inverse (`attn_mha_options.pinv`).
    Pinv, "pinv" {
        /// Iterative Newton-Schulz, `pinv_iterations` steps.
        Newton = sys::ATTN_PINV_NEWTON,
        /// Exact Moore-Penrose pseudo-inverse through LAPACK.
        Svd = sys::ATTN_PINV_SVD,
    }
);

/// Options of [`MultiheadAttention::new`] (`attn_mha_options`). `Default` is the C library's
/// `attn_mha_options_init` (FULL, one head, biases, not causal; `embed_dim` 0 must be set). Build
/// it with `MhaOptions { ..., ..Default::default() }` or [`MhaOptions::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MhaOptions {
    pub kind: MhaKind,
    /// `in_proj_bias` and `out_proj.bias` present.
    pub bias: bool,
    /// FULL only: key j > query i is masked.
    pub causal: bool,
    pub memory_mode: MemoryMode,
    /// E > 0, divisible by `num_heads`.
    pub embed_dim: usize,
    pub num_heads: usize,
    /// Key features; 0 = E.
    pub kdim: usize,
    /// Value features; 0 = E.
    pub vdim: usize,
    /// LINFORMER: the longest key/value sequence.
    pub max_seq_len: usize,
    /// LINFORMER: k, the projected length.
    pub proj_len: usize,
    pub sharing: LinformerSharing,
    pub pinv: Pinv,
    /// NYSTROM: m >= 1.
    pub num_landmarks: usize,
    /// NYSTROM with NEWTON.
    pub pinv_iterations: usize,
    /// NYSTROM: odd kernel of the residual depthwise convolution; 0 = none.
    pub conv_kernel: usize,
}

fn raw_defaults() -> sys::attn_mha_options {
    // SAFETY: plain old data, zero is valid; init writes every field and struct_size.
    let mut o: sys::attn_mha_options = unsafe { std::mem::zeroed() };
    unsafe { sys::attn_mha_options_init(&mut o) };
    o
}

impl Default for MhaOptions {
    fn default() -> MhaOptions {
        MhaOptions::from_raw(&raw_defaults()).expect("attn_mha_options_init wrote values the bindings know")
    }
}

impl MhaOptions {
    /// The defaults with `kind`, `embed_dim` and `num_heads` set.
    pub fn new(kind: MhaKind, embed_dim: usize, num_heads: usize) -> MhaOptions {
        MhaOptions { kind, embed_dim, num_heads, ..MhaOptions::default() }
    }

    /// The C struct: `attn_mha_options_init`'s defaults overwritten by these fields.
    pub fn to_raw(&self) -> Result<sys::attn_mha_options> {
        const F: &str = "MultiheadAttention::new";
        let mut o = raw_defaults();
        o.kind = self.kind.to_raw();
        o.bias = bool_i32(self.bias);
        o.causal = bool_i32(self.causal);
        o.memory_mode = self.memory_mode.to_raw();
        o.embed_dim = to_i64(F, "embed_dim", self.embed_dim)?;
        o.num_heads = to_i64(F, "num_heads", self.num_heads)?;
        o.kdim = to_i64(F, "kdim", self.kdim)?;
        o.vdim = to_i64(F, "vdim", self.vdim)?;
        o.max_seq_len = to_i64(F, "max_seq_len", self.max_seq_len)?;
        o.proj_len = to_i64(F, "proj_len", self.proj_len)?;
        o.sharing = self.sharing.to_raw();
        o.pinv = self.pinv.to_raw();
        o.num_landmarks = to_i64(F, "num_landmarks", self.num_landmarks)?;
        o.pinv_iterations = to_i64(F, "pinv_iterations", self.pinv_iterations)?;
        o.conv_kernel = to_i64(F, "conv_kernel", self.conv_kernel)?;
        Ok(o)
    }

    /// The options of a C struct; `Status::Unsupported` for enum values these bindings do not know.
    pub fn from_raw(o: &sys::attn_mha_options) -> Result<MhaOptions> {
        Ok(MhaOptions {
            kind: MhaKind::from_raw_or_err(o.kind)?,
            bias: o.bias != 0,
            causal: o.causal != 0,
            memory_mode: MemoryMode::from_raw_or_err(o.memory_mode)?,
            embed_dim: to_usize(o.embed_dim),
            num_heads: to_usize(o.num_heads),
            kdim: to_usize(o.kdim),
            vdim: to_usize(o.vdim),
            max_seq_len: to_usize(o.max_seq_len),
            proj_len: to_usize(o.proj_len),
            sharing: LinformerSharing::from_raw_or_err(o.sharing)?,
            pinv: Pinv::from_raw_or_err(o.pinv)?,
            num_landmarks: to_usize(o.num_landmarks),
            pinv_iterations: to_usize(o.pinv_iterations),
            conv_kernel: to_usize(o.conv_kernel),
        })
    }
}

/// A multi-head attention layer (`attn_mha`). Parameters start as `attn_params_init(params, 0)`.
pub struct MultiheadAttention {
    raw: NonNull<sys::attn_mha>,
    /// As the library reports them: kdim and vdim resolved.
    options: MhaOptions,
}

handle_common!(MultiheadAttention, attn_mha, attn_mha_destroy, attn_mha_params);

impl MultiheadAttention {
    /// Creates an attention layer (`attn_mha_create`).
    pub fn new(options: &MhaOptions) -> Result<MultiheadAttention> {
        let o = options.to_raw()?;
        let raw = create_handle!(attn_mha_create, &o, "attn_mha_create");
        let mut m = MultiheadAttention { raw, options: options.clone() };
        let mut got = raw_defaults();
        // SAFETY: live handle, out pointer with this header's struct_size.
        check(unsafe { sys::attn_mha_get_options(m.raw.as_ptr(), &mut got) })?;
        m.options = MhaOptions::from_raw(&got)?;
        Ok(m)
    }

    /// The options the handle was created with, `kdim` and `vdim` resolved.
    pub fn options(&self) -> &MhaOptions {
        &self.options
    }

    /// Attention of `tgt_len` queries over `src_len` keys/values (`attn_mha_forward`):
    /// `query [batch, tgt_len, E]`, `key [batch, src_len, kdim]`, `value [batch, src_len, vdim]`,
    /// `key_padding_mask [batch, src_len]` (nonzero = ignore that key) or `None`,
    /// `out [batch, tgt_len, E]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        ws: Option<&mut Workspace>,
        batch: usize,
        tgt_len: usize,
        src_len: usize,
        query: &[f32],
        key: &[f32],
        value: &[f32],
        key_padding_mask: Option<&[u8]>,
        out: &mut [f32],
    ) -> Result<()> {
        const F: &str = "MultiheadAttention::forward";
        let (b, l, s) = self.check_inputs(F, batch, tgt_len, src_len, query, key, value, key_padding_mask)?;
        check_len(F, "out", out.len(), "batch * tgt_len * embed_dim", &[batch, tgt_len, self.options.embed_dim])?;
        // SAFETY: live const handle; lengths checked; `out` is a distinct &mut borrow.
        check(unsafe {
            sys::attn_mha_forward(
                self.raw.as_ptr(),
                ws_ptr(ws),
                b,
                l,
                s,
                query.as_ptr(),
                key.as_ptr(),
                value.as_ptr(),
                opt_slice_ptr(key_padding_mask),
                out.as_mut_ptr(),
            )
        })
    }

    /// Self-attention: [`forward`](Self::forward) with `x [batch, len, E]` as query, key and value
    /// (needs kdim = vdim = E).
    pub fn forward_self(
        &self,
        ws: Option<&mut Workspace>,
        batch: usize,
        len: usize,
        x: &[f32],
        key_padding_mask: Option<&[u8]>,
        out: &mut [f32],
    ) -> Result<()> {
        self.forward(ws, batch, len, len, x, x, x, key_padding_mask, out)
    }

    /// The L x S matrix that multiplies each head's values (`attn_mha_attention_matrix`):
    /// `weights [batch, num_heads, tgt_len, src_len]`; arguments as [`forward`](Self::forward).
    #[allow(clippy::too_many_arguments)]
    pub fn attention_matrix(
        &self,
        ws: Option<&mut Workspace>,
        batch: usize,
        tgt_len: usize,
        src_len: usize,
        query: &[f32],
        key: &[f32],
        value: &[f32],
        key_padding_mask: Option<&[u8]>,
        weights: &mut [f32],
    ) -> Result<()> {
        const F: &str = "MultiheadAttention::attention_matrix";
        let (b, l, s) = self.check_inputs(F, batch, tgt_len, src_len, query, key, value, key_padding_mask)?;
        check_len(
            F,
            "weights",
            weights.len(),
            "batch * num_heads * tgt_len * src_len",
            &[batch, self.options.num_heads, tgt_len, src_len],
        )?;
        // SAFETY: as forward.
        check(unsafe {
            sys::attn_mha_attention_matrix(
                self.raw.as_ptr(),
                ws_ptr(ws),
                b,
                l,
                s,
                query.as_ptr(),
                key.as_ptr(),
                value.as_ptr(),
                opt_slice_ptr(key_padding_mask),
                weights.as_mut_ptr(),
            )
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn check_inputs(
        &self,
        func: &str,
        batch: usize,
        tgt_len: usize,
        src_len: usize,
        query: &[f32],
        key: &[f32],
        value: &[f32],
        mask: Option<&[u8]>,
    ) -> Result<(i64, i64, i64)> {
        let o = &self.options;
        check_len(func, "query", query.len(), "batch * tgt_len * embed_dim", &[batch, tgt_len, o.embed_dim])?;
        check_len(func, "key", key.len(), "batch * src_len * kdim", &[batch, src_len, o.kdim])?;
        check_len(func, "value", value.len(), "batch * src_len * vdim", &[batch, src_len, o.vdim])?;
        if let Some(m) = mask {
            check_len(func, "key_padding_mask", m.len(), "batch * src_len", &[batch, src_len])?;
        }
        Ok((to_i64(func, "batch", batch)?, to_i64(func, "tgt_len", tgt_len)?, to_i64(func, "src_len", src_len)?))
    }

    /// Parameters, FLOPs and workspace bytes of forward for this shape (`attn_mha_cost`).
    pub fn cost(&self, batch: usize, tgt_len: usize, src_len: usize) -> Result<Cost> {
        const F: &str = "MultiheadAttention::cost";
        let (b, l, s) = (to_i64(F, "batch", batch)?, to_i64(F, "tgt_len", tgt_len)?, to_i64(F, "src_len", src_len)?);
        let mut out = sys::attn_cost::default();
        // SAFETY: live handle and out pointer.
        check(unsafe { sys::attn_mha_cost(self.raw.as_ptr(), b, l, s, &mut out) })?;
        Ok(out.into())
    }
}

impl std::fmt::Debug for MultiheadAttention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiheadAttention").field("options", &self.options).finish()
    }
}
