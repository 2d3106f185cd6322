//! Rust bindings of libattn: recurrent networks (Elman, LSTM, GRU with dense, low-rank or
//! Kronecker recurrence), the memory-network RNN, multi-head attention (full, Linformer, Nyström),
//! the Perceiver and SVD rank analysis, behind libattn's stable C ABI.
//!
//! * [`sys`]: the raw `extern "C"` declarations and `#[repr(C)]` structs, one to one with
//!   `include/attn/*.h`.
//! * Safe handles [`Rnn`], [`MemoryRnn`], [`MultiheadAttention`], [`Perceiver`]: created from an
//!   options struct whose `Default` is the C library's `attn_<x>_options_init`, freed on drop.
//!   `forward(&self, ...)` reads and writes caller slices whose lengths are checked in Rust before
//!   the C call; the handles are `Send + Sync` because libattn lets any number of threads run forward
//!   on one handle at once, each with its own [`Workspace`] (or none).
//! * Parameters through [`Params`] (`handle.params()`: names, info, get, save) and [`ParamsMut`]
//!   (`handle.params_mut()`: also set, init, load), which borrow the handle so that changing
//!   parameters cannot overlap a forward call.
//! * Every fallible function returns [`Result`]; an [`Error`] carries the [`Status`] and the
//!   message of `attn_last_error()` captured right after the failing call.
//!
//! Tensors are float32, row-major, contiguous and batch-first, as in the C library.
//!
//! ```no_run
//! use attn::{Cell, Rnn, RnnOptions};
//!
//! let lstm = Rnn::new(&RnnOptions { num_layers: 2, ..RnnOptions::new(Cell::Lstm, 32, 64) })?;
//! let (batch, steps) = (4, 50);
//! let x = vec![0.5f32; batch * steps * 32];
//! let mut y = vec![0.0f32; lstm.output_len(batch, steps)];
//! lstm.forward(None, batch, steps, &x, &mut y)?;
//! # Ok::<(), attn::Error>(())
//! ```

/// Drop, Send + Sync, raw access and parameter views of a handle type `$name` wrapping
/// `raw: NonNull<sys::$raw>`.
macro_rules! handle_common {
    ($name:ident, $raw:ident, $destroy:ident, $params:ident) => {
        // SAFETY: libattn's threading contract (docs/abi.md): forward takes a const handle and any
        // number of threads may run it at once, each with its own workspace; everything that
        // changes the handle (parameters, destruction) takes `&mut self` or `self` here. The
        // handle owns its memory and has no thread affinity, so it may also move between threads.
        unsafe impl Send for $name {}
        unsafe impl Sync for $name {}

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: created by the family's create function, destroyed once.
                unsafe { crate::sys::$destroy(self.raw.as_ptr()) }
            }
        }

        impl $name {
            /// The raw handle, for calls through [`sys`](crate::sys); valid while `self` lives.
            pub fn as_ptr(&self) -> *const crate::sys::$raw {
                self.raw.as_ptr()
            }

            /// Read access to the handle's tensors: names, shapes, values, save.
            pub fn params(&self) -> crate::Params<'_> {
                // SAFETY: the set is owned by the handle, which the borrow keeps alive; `&self`
                // excludes every writer. attn_<x>_params only returns a pointer into the handle.
                unsafe { crate::Params::from_raw(crate::sys::$params(self.raw.as_ptr())) }
            }

            /// Read and write access to the handle's tensors: also set, init and load.
            pub fn params_mut(&mut self) -> crate::ParamsMut<'_> {
                // SAFETY: as params(); `&mut self` makes the access exclusive (no forward meanwhile).
                unsafe { crate::ParamsMut::from_raw(crate::sys::$params(self.raw.as_ptr())) }
            }
        }
    };
}

/// Creates a handle with `attn_<x>_create`, returning the non-NULL pointer.
macro_rules! create_handle {
    ($create:ident, $opts:expr, $what:literal) => {{
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid out pointer and a complete options struct (struct_size set by init).
        crate::error::check(unsafe { crate::sys::$create(&mut raw, $opts) })?;
        std::ptr::NonNull::new(raw).ok_or_else(|| {
            crate::Error::new(crate::Status::Internal, concat!($what, ": returned OK and NULL"))
        })?
    }};
}

pub mod sys;

mod analysis;
mod attention;
mod error;
mod memory;
mod params;
mod perceiver;
mod rnn;

pub use analysis::{lowrank_error, lowrank_factors, rank_analyze, singular_values, LowRankFactors, RankReport};
pub use attention::{LinformerSharing, MemoryMode, MhaKind, MhaOptions, MultiheadAttention, Pinv};
pub use error::{Error, Result, Status};
pub use memory::{Addressing, MemoryRnn, MemoryRnnOptions};
pub use params::{LoadFlags, ParamSet, Params, ParamsMut, TensorInfo};
pub use perceiver::{Perceiver, PerceiverOptions};
pub use rnn::{Cell, Recurrence, Rnn, RnnOptions, State, StateOut};

use std::ptr::{self, NonNull};

/// The code blocks of README.md, compiled as doctests so that the README's example keeps building.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use error::{check, static_str};

/// The version of the loaded library as `MAJOR*10000 + MINOR*100 + PATCH` (`attn_version_number`).
pub fn version_number() -> u32 {
    // SAFETY: no arguments, no preconditions.
    unsafe { sys::attn_version_number() }
}

/// The version of the loaded library, `"MAJOR.MINOR.PATCH"` (`attn_version_string`).
pub fn version() -> &'static str {
    // SAFETY: static storage, never NULL.
    unsafe { static_str(sys::attn_version_string()) }
}

/// One line describing the loaded library's build: version, BLAS vendor and threads, compiler.
pub fn build_info() -> &'static str {
    // SAFETY: static storage, never NULL.
    unsafe { static_str(sys::attn_build_info()) }
}

/// Parameters, FLOPs and workspace bytes of one forward call (`attn_cost`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Number of float parameters of the handle.
    pub params: i64,
    /// Floating-point operations of one forward call (multiply-add = 2).
    pub flops: i64,
    /// Peak scratch memory of that call beyond the caller's buffers.
    pub workspace_bytes: i64,
}

impl From<sys::attn_cost> for Cost {
    fn from(c: sys::attn_cost) -> Cost {
        Cost { params: c.params, flops: c.flops, workspace_bytes: c.workspace_bytes }
    }
}

/// Scratch memory reused across forward calls (`attn_workspace`).
///
/// A workspace grows to the largest request it has served and keeps that memory until dropped, so
/// a loop of forward calls allocates once. It may move to another thread (`Send`) but not be used
/// by two at once (not `Sync`; forward takes it as `&mut`): give each thread its own, or pass
/// `None` to use the calling thread's workspace, which the library keeps until the thread exits.
///
/// ```compile_fail
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<attn::Workspace>(); // a workspace cannot be shared between threads
/// ```
pub struct Workspace {
    raw: NonNull<sys::attn_workspace>,
}

// SAFETY: a workspace is plain memory owned by this value; libattn only requires that one thread
// at a time uses it, which `&mut` access in forward guarantees.
unsafe impl Send for Workspace {}

impl Workspace {
    /// An empty workspace.
    pub fn new() -> Result<Workspace> {
        let mut raw = ptr::null_mut();
        // SAFETY: `raw` is a valid out pointer.
        check(unsafe { sys::attn_workspace_create(&mut raw) })?;
        NonNull::new(raw)
            .map(|raw| Workspace { raw })
            .ok_or_else(|| Error::new(Status::Internal, "attn_workspace_create: returned OK and NULL"))
    }

    /// Bytes the workspace currently holds (`attn_workspace_size`).
    pub fn size(&self) -> i64 {
        // SAFETY: the pointer is a live workspace.
        unsafe { sys::attn_workspace_size(self.raw.as_ptr()) }
    }

    /// The raw pointer, for calls through [`sys`].
    pub fn as_ptr(&mut self) -> *mut sys::attn_workspace {
        self.raw.as_ptr()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // SAFETY: created by attn_workspace_create, destroyed once.
        unsafe { sys::attn_workspace_destroy(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace").field("size", &self.size()).finish()
    }
}

// ---- helpers shared by the families -------------------------------------------------------------

pub(crate) fn ws_ptr(ws: Option<&mut Workspace>) -> *mut sys::attn_workspace {
    ws.map_or(ptr::null_mut(), |w| w.as_ptr())
}

/// `v` as the C library's int64_t.
pub(crate) fn to_i64(func: &str, arg: &str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::new(Status::Shape, format!("{func}: {arg} = {v} does not fit int64_t")))
}

/// A size from the C library (never negative there) as usize.
pub(crate) fn to_usize(v: i64) -> usize {
    usize::try_from(v).unwrap_or(0)
}

pub(crate) fn bool_i32(b: bool) -> i32 {
    i32::from(b)
}

/// The product of `dims`, or a shape error naming `what` when it overflows.
pub(crate) fn product(func: &str, what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| {
        Error::new(Status::Shape, format!("{func}: {what} = {} overflows usize", join_dims(dims)))
    })
}

fn join_dims(dims: &[usize]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" * ")
}

/// Checks that the slice `arg` has `names` = product of `dims` elements; the error names the
/// function, the argument, the formula and the values.
pub(crate) fn check_len(func: &str, arg: &str, got: usize, names: &str, dims: &[usize]) -> Result<()> {
    let expected = product(func, names, dims)?;
    if got == expected {
        Ok(())
    } else {
        Err(Error::new(
            Status::Shape,
            format!("{func}: {arg} has {got} elements, expected {names} = {} = {expected}", join_dims(dims)),
        ))
    }
}

pub(crate) fn opt_mut_ptr<T>(o: Option<&mut [T]>) -> *mut T {
    o.map_or(ptr::null_mut(), |s| s.as_mut_ptr())
}

pub(crate) fn opt_slice_ptr<T>(o: Option<&[T]>) -> *const T {
    o.map_or(ptr::null(), |s| s.as_ptr())
}
