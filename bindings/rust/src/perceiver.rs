//! The Perceiver (`attn_perceiver`): a latent array cross-attends into the inputs, so the cost
//! grows linearly with the number of input positions; lucidrains/perceiver-pytorch's structure,
//! options and state_dict names (docs/perceiver.md).

use std::ptr::NonNull;

use crate::error::{check, Error, Result, Status};
use crate::{bool_i32, check_len, opt_slice_ptr, product, sys, to_i64, to_usize, ws_ptr, Cost, Workspace};

/// Options of [`Perceiver::new`] (`attn_perceiver_options`). `Default` is the C library's
/// `attn_perceiver_options_init` (3 channels, 2 axes, Fourier features on, 512 x 512 latents, ...;
/// `num_freq_bands`, `max_freq` and `depth` are 0 and must be set). Build it with
/// `PerceiverOptions { ..., ..Default::default() }`.
#[derive(Debug, Clone, PartialEq)]
pub struct PerceiverOptions {
    /// C: data channels per input position.
    pub input_channels: usize,
    /// Spatial axes of the input, 1..3.
    pub input_axis: usize,
    /// K: Fourier bands per axis (> 0 with `fourier_encode`).
    pub num_freq_bands: usize,
    /// Bands' frequencies are linspace(1, max_freq / 2, K) (finite, > 0 with `fourier_encode`).
    pub max_freq: f64,
    /// Append the position features to the data.
    pub fourier_encode: bool,
    /// Layers (>= 1).
    pub depth: usize,
    /// M: latent array rows.
    pub num_latents: usize,
    /// D: latent width.
    pub latent_dim: usize,
    pub cross_heads: usize,
    pub cross_dim_head: usize,
    pub latent_heads: usize,
    pub latent_dim_head: usize,
    /// Latent self-attention blocks per layer (>= 0).
    pub self_per_cross_attn: usize,
    /// Layers >= 1 share one set of weights.
    pub weight_tie_layers: bool,
    /// Logits of the classification head; 0: no head, the latents are the output.
    pub num_classes: usize,
}

fn raw_defaults() -> sys::attn_perceiver_options {
    // SAFETY: plain old data, zero is valid; init writes every field and struct_size.
    let mut o: sys::attn_perceiver_options = unsafe { std::mem::zeroed() };
    unsafe { sys::attn_perceiver_options_init(&mut o) };
    o
}

impl Default for PerceiverOptions {
    fn default() -> PerceiverOptions {
        PerceiverOptions::from_raw(&raw_defaults())
    }
}

impl PerceiverOptions {
    /// The C struct: `attn_perceiver_options_init`'s defaults overwritten by these fields.
    pub fn to_raw(&self) -> Result<sys::attn_perceiver_options> {
        const F: &str = "Perceiver::new";
        let mut o = raw_defaults();
        o.input_channels = to_i64(F, "input_channels", self.input_channels)?;
        o.input_axis = to_i64(F, "input_axis", self.input_axis)?;
        o.num_freq_bands = to_i64(F, "num_freq_bands", self.num_freq_bands)?;
        o.max_freq = self.max_freq;
        o.fourier_encode = bool_i32(self.fourier_encode);
        o.depth = to_i64(F, "depth", self.depth)?;
        o.num_latents = to_i64(F, "num_latents", self.num_latents)?;
        o.latent_dim = to_i64(F, "latent_dim", self.latent_dim)?;
        o.cross_heads = to_i64(F, "cross_heads", self.cross_heads)?;
        o.cross_dim_head = to_i64(F, "cross_dim_head", self.cross_dim_head)?;
        o.latent_heads = to_i64(F, "latent_heads", self.latent_heads)?;
        o.latent_dim_head = to_i64(F, "latent_dim_head", self.latent_dim_head)?;
        o.self_per_cross_attn = to_i64(F, "self_per_cross_attn", self.self_per_cross_attn)?;
        o.weight_tie_layers = bool_i32(self.weight_tie_layers);
        o.num_classes = to_i64(F, "num_classes", self.num_classes)?;
        Ok(o)
    }

    /// The options of a C struct.
    pub fn from_raw(o: &sys::attn_perceiver_options) -> PerceiverOptions {
        PerceiverOptions {
            input_channels: to_usize(o.input_channels),
            input_axis: to_usize(o.input_axis),
            num_freq_bands: to_usize(o.num_freq_bands),
            max_freq: o.max_freq,
            fourier_encode: o.fourier_encode != 0,
            depth: to_usize(o.depth),
            num_latents: to_usize(o.num_latents),
            latent_dim: to_usize(o.latent_dim),
            cross_heads: to_usize(o.cross_heads),
            cross_dim_head: to_usize(o.cross_dim_head),
            latent_heads: to_usize(o.latent_heads),
            latent_dim_head: to_usize(o.latent_dim_head),
            self_per_cross_attn: to_usize(o.self_per_cross_attn),
            weight_tie_layers: o.weight_tie_layers != 0,
            num_classes: to_usize(o.num_classes),
        }
    }
}

/// A Perceiver (`attn_perceiver`). Parameters start as `attn_params_init(params, 0)`.
pub struct Perceiver {
    raw: NonNull<sys::attn_perceiver>,
    options: PerceiverOptions,
}

handle_common!(Perceiver, attn_perceiver, attn_perceiver_destroy, attn_perceiver_params);

impl Perceiver {
    /// Creates a Perceiver (`attn_perceiver_create`).
    pub fn new(options: &PerceiverOptions) -> Result<Perceiver> {
        let o = options.to_raw()?;
        let raw = create_handle!(attn_perceiver_create, &o, "attn_perceiver_create");
        let mut p = Perceiver { raw, options: options.clone() };
        let mut got = raw_defaults();
        // SAFETY: live handle, out pointer with this header's struct_size.
        check(unsafe { sys::attn_perceiver_get_options(p.raw.as_ptr(), &mut got) })?;
        p.options = PerceiverOptions::from_raw(&got);
        Ok(p)
    }

    /// The options the handle was created with.
    pub fn options(&self) -> &PerceiverOptions {
        &self.options
    }

    /// Elements of `out`: `batch * num_classes`, or `batch * num_latents * latent_dim` without a
    /// classification head.
    pub fn output_len(&self, batch: usize) -> usize {
        let o = &self.options;
        if o.num_classes > 0 {
            batch.saturating_mul(o.num_classes)
        } else {
            batch.saturating_mul(o.num_latents).saturating_mul(o.latent_dim)
        }
    }

    /// One forward pass (`attn_perceiver_forward`): `axis_sizes [input_axis]` (N = their
    /// product positions), `data [batch, axis_sizes..., input_channels]`, `mask [batch, N]`
    /// (nonzero = position ignored) or `None`, `out` as [`output_len`](Self::output_len).
    pub fn forward(
        &self,
        ws: Option<&mut Workspace>,
        batch: usize,
        axis_sizes: &[usize],
        data: &[f32],
        mask: Option<&[u8]>,
        out: &mut [f32],
    ) -> Result<()> {
        const F: &str = "Perceiver::forward";
        let o = &self.options;
        let axes = self.axes(F, axis_sizes)?;
        let n = product(F, "the product of axis_sizes", axis_sizes)?;
        check_len(F, "data", data.len(), "batch * N * input_channels", &[batch, n, o.input_channels])?;
        if let Some(m) = mask {
            check_len(F, "mask", m.len(), "batch * N", &[batch, n])?;
        }
        if o.num_classes > 0 {
            check_len(F, "out", out.len(), "batch * num_classes", &[batch, o.num_classes])?;
        } else {
            check_len(F, "out", out.len(), "batch * num_latents * latent_dim", &[batch, o.num_latents, o.latent_dim])?;
        }
        let b = to_i64(F, "batch", batch)?;
        // SAFETY: live const handle; lengths checked; `out` is a distinct &mut borrow.
        check(unsafe {
            sys::attn_perceiver_forward(
                self.raw.as_ptr(),
                ws_ptr(ws),
                b,
                axes.as_ptr(),
                data.as_ptr(),
                opt_slice_ptr(mask),
                out.as_mut_ptr(),
            )
        })
    }

    /// Parameters, FLOPs and workspace bytes of forward for this input shape
    /// (`attn_perceiver_cost`).
    pub fn cost(&self, batch: usize, axis_sizes: &[usize]) -> Result<Cost> {
        const F: &str = "Perceiver::cost";
        let axes = self.axes(F, axis_sizes)?;
        let b = to_i64(F, "batch", batch)?;
        let mut out = sys::attn_cost::default();
        // SAFETY: live handle; `axes` holds input_axis values; out pointer.
        check(unsafe { sys::attn_perceiver_cost(self.raw.as_ptr(), b, axes.as_ptr(), &mut out) })?;
        Ok(out.into())
    }

    fn axes(&self, func: &str, axis_sizes: &[usize]) -> Result<Vec<i64>> {
        if axis_sizes.len() != self.options.input_axis {
            return Err(Error::new(
                Status::Shape,
                format!(
                    "{func}: axis_sizes has {} entries, expected input_axis = {}",
                    axis_sizes.len(),
                    self.options.input_axis
                ),
            ));
        }
        axis_sizes.iter().map(|&a| to_i64(func, "axis_sizes[i]", a)).collect()
    }
}

impl std::fmt::Debug for Perceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Perceiver").field("options", &self.options).finish()
    }
}
