//! The named float32 tensors of a handle (`attn_params`), and sets opened from files.

use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::ops::{BitOr, BitOrAssign, Deref};
use std::path::Path;
use std::ptr::{self, NonNull};

use crate::error::{check, Error, Result, Status};
use crate::{sys, to_i64, to_usize};

/// Name, shape and size of one tensor (`attn_tensor_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (PyTorch's `state_dict` name, e.g. `"weight_ih_l0"`).
    pub name: String,
    /// Its shape, 1 to 4 extents.
    pub shape: Vec<usize>,
    /// Number of float elements (the product of `shape`).
    pub count: usize,
}

impl TensorInfo {
    fn from_raw(info: &sys::attn_tensor_info) -> TensorInfo {
        let name = if info.name.is_null() {
            String::new()
        } else {
            // SAFETY: the name points into the handle, which the caller's borrow keeps alive.
            unsafe { CStr::from_ptr(info.name) }.to_string_lossy().into_owned()
        };
        let ndim = info.ndim.clamp(0, 4) as usize;
        TensorInfo { name, shape: info.shape[..ndim].iter().map(|&d| to_usize(d)).collect(), count: to_usize(info.count) }
    }
}

/// Flags of [`ParamsMut::load`] (`ATTN_LOAD_*`); combine with `|`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LoadFlags(pub u32);

impl LoadFlags {
    /// No flag: every parameter must be in the file; tensors that name no parameter are ignored.
    pub const NONE: LoadFlags = LoadFlags(0);
    /// Tensors absent from the file keep their current values.
    pub const ALLOW_MISSING: LoadFlags = LoadFlags(sys::ATTN_LOAD_ALLOW_MISSING);
    /// A tensor under the prefix that names no parameter is an error.
    pub const REJECT_UNKNOWN: LoadFlags = LoadFlags(sys::ATTN_LOAD_REJECT_UNKNOWN);
}

impl BitOr for LoadFlags {
    type Output = LoadFlags;
    fn bitor(self, rhs: LoadFlags) -> LoadFlags {
        LoadFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for LoadFlags {
    fn bitor_assign(&mut self, rhs: LoadFlags) {
        self.0 |= rhs.0;
    }
}

pub(crate) fn c_string(func: &str, arg: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(Status::InvalidArg, format!("{func}: {arg} {s:?} contains a NUL byte")))
}

pub(crate) fn c_path(func: &str, path: &Path) -> Result<CString> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path
        .to_str()
        .ok_or_else(|| Error::new(Status::InvalidArg, format!("{func}: path {path:?} is not valid UTF-8")))?
        .as_bytes()
        .to_vec();
    CString::new(bytes)
        .map_err(|_| Error::new(Status::InvalidArg, format!("{func}: path {path:?} contains a NUL byte")))
}

fn c_prefix(func: &str, prefix: Option<&str>) -> Result<Option<CString>> {
    prefix.map(|p| c_string(func, "prefix", p)).transpose()
}

/// Read access to a set of parameters, borrowed from its owner (a handle or a [`ParamSet`]):
/// enumerate, look up, copy out, save. Reading may run alongside forward calls on the same handle.
pub struct Params<'a> {
    raw: *const sys::attn_params,
    _owner: PhantomData<&'a ()>,
}

impl<'a> Params<'a> {
    /// # Safety
    /// `raw` must be a valid `attn_params` that outlives `'a` and is not modified during `'a`.
    pub(crate) unsafe fn from_raw(raw: *const sys::attn_params) -> Params<'a> {
        Params { raw, _owner: PhantomData }
    }

    /// The raw pointer, for calls through [`sys`] (valid while the borrow lasts).
    pub fn as_ptr(&self) -> *const sys::attn_params {
        self.raw
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        // SAFETY: valid set (from_raw's contract).
        to_usize(unsafe { sys::attn_params_count(self.raw) })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tensor number `index`, in the set's fixed, documented order.
    pub fn info(&self, index: usize) -> Result<TensorInfo> {
        let index = to_i64("Params::info", "index", index)?;
        let mut out = empty_info();
        // SAFETY: valid set and out pointer.
        check(unsafe { sys::attn_params_info(self.raw, index, &mut out) })?;
        Ok(TensorInfo::from_raw(&out))
    }

    /// The tensor called `name`; `Status::NotFound` if there is none.
    pub fn find(&self, name: &str) -> Result<TensorInfo> {
        let c_name = c_string("Params::find", "name", name)?;
        let mut out = empty_info();
        // SAFETY: valid set, NUL-terminated name, out pointer.
        check(unsafe { sys::attn_params_find(self.raw, c_name.as_ptr(), &mut out) })?;
        Ok(TensorInfo::from_raw(&out))
    }

    /// Every tensor's info, in order.
    pub fn infos(&self) -> Result<Vec<TensorInfo>> {
        (0..self.len()).map(|i| self.info(i)).collect()
    }

    /// Every tensor's name, in order.
    pub fn names(&self) -> Result<Vec<String>> {
        Ok(self.infos()?.into_iter().map(|t| t.name).collect())
    }

    /// A copy of the tensor called `name`.
    pub fn get(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.find(name)?;
        let mut out = vec![0.0f32; info.count];
        self.get_into(name, &mut out)?;
        Ok(out)
    }

    /// Copies the tensor called `name` into `out`, whose length must be the tensor's count.
    pub fn get_into(&self, name: &str, out: &mut [f32]) -> Result<()> {
        let c_name = c_string("Params::get", "name", name)?;
        let count = to_i64("Params::get", "out.len()", out.len())?;
        // SAFETY: valid set; `out` holds `count` floats (the library checks count against the tensor).
        check(unsafe { sys::attn_params_get(self.raw, c_name.as_ptr(), out.as_mut_ptr(), count) })
    }

    /// Writes every tensor as F32 to a safetensors file, named `prefix + name` (`attn_params_save`).
    pub fn save(&self, path: impl AsRef<Path>, prefix: Option<&str>) -> Result<()> {
        let c_path = c_path("Params::save", path.as_ref())?;
        let c_prefix = c_prefix("Params::save", prefix)?;
        // SAFETY: valid set and NUL-terminated strings (prefix may be NULL).
        check(unsafe {
            sys::attn_params_save(self.raw, c_path.as_ptr(), c_prefix.as_ref().map_or(ptr::null(), |p| p.as_ptr()))
        })
    }
}

impl std::fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params").field("len", &self.len()).finish()
    }
}

/// Read and write access to a set of parameters, borrowed mutably from its owner, so no forward
/// call can run on the handle meanwhile. Dereferences to [`Params`] for reading.
///
/// ```compile_fail
/// use attn::{Cell, Rnn, RnnOptions};
/// let mut rnn = Rnn::new(&RnnOptions::new(Cell::Lstm, 2, 2)).unwrap();
/// let shared = &rnn; // e.g. lent to threads running forward
/// rnn.params_mut().init(1).unwrap(); // error: rnn is borrowed
/// shared.forward(None, 1, 1, &[0.0; 2], &mut [0.0; 2]).unwrap();
/// ```
pub struct ParamsMut<'a> {
    view: Params<'a>,
    raw: *mut sys::attn_params,
}

impl<'a> ParamsMut<'a> {
    /// # Safety
    /// `raw` must be a valid `attn_params` that outlives `'a`, used by nothing else during `'a`.
    pub(crate) unsafe fn from_raw(raw: *mut sys::attn_params) -> ParamsMut<'a> {
        ParamsMut { view: Params::from_raw(raw), raw }
    }

    /// The raw pointer, for calls through [`sys`] (valid while the borrow lasts).
    pub fn as_mut_ptr(&mut self) -> *mut sys::attn_params {
        self.raw
    }

    /// Copies `data` into the tensor called `name`; `data.len()` must be its count. NaN and Inf
    /// are rejected (`Status::Numerical`) and leave the tensor unchanged.
    pub fn set(&mut self, name: &str, data: &[f32]) -> Result<()> {
        let c_name = c_string("Params::set", "name", name)?;
        let count = to_i64("Params::set", "data.len()", data.len())?;
        // SAFETY: exclusive access to a valid set; `data` holds `count` floats.
        check(unsafe { sys::attn_params_set(self.raw, c_name.as_ptr(), data.as_ptr(), count) })
    }

    /// Deterministic initialization from `seed`, following PyTorch's default laws for the module.
    pub fn init(&mut self, seed: u64) -> Result<()> {
        // SAFETY: exclusive access to a valid set.
        check(unsafe { sys::attn_params_init(self.raw, seed) })
    }

    /// Loads a safetensors file (F32, F64, F16, BF16), parameter `name` from tensor
    /// `prefix + name`. All or nothing: on any error no parameter changes.
    pub fn load(&mut self, path: impl AsRef<Path>, prefix: Option<&str>, flags: LoadFlags) -> Result<()> {
        let c_path = c_path("Params::load", path.as_ref())?;
        let c_prefix = c_prefix("Params::load", prefix)?;
        // SAFETY: exclusive access to a valid set; NUL-terminated strings (prefix may be NULL).
        check(unsafe {
            sys::attn_params_load(
                self.raw,
                c_path.as_ptr(),
                c_prefix.as_ref().map_or(ptr::null(), |p| p.as_ptr()),
                flags.0,
            )
        })
    }
}

impl<'a> Deref for ParamsMut<'a> {
    type Target = Params<'a>;
    fn deref(&self) -> &Params<'a> {
        &self.view
    }
}

impl std::fmt::Debug for ParamsMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamsMut").field("len", &self.len()).finish()
    }
}

fn empty_info() -> sys::attn_tensor_info {
    sys::attn_tensor_info { name: ptr::null(), ndim: 0, shape: [0; 4], count: 0 }
}

/// The float tensors of a safetensors file as a set owned by no handle (`attn_params_open`), for
/// tensors no handle holds (embeddings, norms, heads). Closed on drop.
pub struct ParamSet {
    raw: NonNull<sys::attn_params>,
}

// SAFETY: the set is memory owned by this value. Reading (`&self`) takes a const pointer in C and
// may run on several threads at once; writing needs `&mut self`.
unsafe impl Send for ParamSet {}
unsafe impl Sync for ParamSet {}

impl ParamSet {
    /// Opens every float tensor whose name begins with `prefix` (`None` = all), named without it.
    pub fn open(path: impl AsRef<Path>, prefix: Option<&str>) -> Result<ParamSet> {
        let c_path = c_path("ParamSet::open", path.as_ref())?;
        let c_prefix = c_prefix("ParamSet::open", prefix)?;
        let mut raw = ptr::null_mut();
        // SAFETY: valid out pointer and NUL-terminated strings (prefix may be NULL).
        check(unsafe {
            sys::attn_params_open(&mut raw, c_path.as_ptr(), c_prefix.as_ref().map_or(ptr::null(), |p| p.as_ptr()))
        })?;
        NonNull::new(raw)
            .map(|raw| ParamSet { raw })
            .ok_or_else(|| Error::new(Status::Internal, "attn_params_open: returned OK and NULL"))
    }

    /// Read access.
    pub fn params(&self) -> Params<'_> {
        // SAFETY: the set lives as long as self; `&self` excludes writers.
        unsafe { Params::from_raw(self.raw.as_ptr()) }
    }

    /// Read and write access.
    pub fn params_mut(&mut self) -> ParamsMut<'_> {
        // SAFETY: the set lives as long as self; `&mut self` makes the access exclusive.
        unsafe { ParamsMut::from_raw(self.raw.as_ptr()) }
    }
}

impl Drop for ParamSet {
    fn drop(&mut self) {
        // SAFETY: opened by attn_params_open, closed once.
        unsafe { sys::attn_params_close(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for ParamSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamSet").field("len", &self.params().len()).finish()
    }
}
