//! Errors: the status code of a failed call and its message.

use std::ffi::CStr;
use std::fmt;

use crate::sys;

/// The status of a failed call: one of libattn's `ATTN_E_*` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `ATTN_E_INVALID_ARG` (-1): NULL pointer, bad option value, nonzero reserved flags.
    InvalidArg,
    /// `ATTN_E_SHAPE` (-2): sizes that do not fit together, wrong element count.
    Shape,
    /// `ATTN_E_NOMEM` (-3): an allocation failed.
    NoMem,
    /// `ATTN_E_UNSUPPORTED` (-4): a valid request this build or handle does not implement.
    Unsupported,
    /// `ATTN_E_NOT_FOUND` (-5): unknown tensor name, missing tensor in a file.
    NotFound,
    /// `ATTN_E_IO` (-6): a file could not be opened, read or written.
    Io,
    /// `ATTN_E_FORMAT` (-7): a malformed file.
    Format,
    /// `ATTN_E_NUMERICAL` (-8): NaN/Inf where it matters, failed decomposition.
    Numerical,
    /// `ATTN_E_INTERNAL` (-9): a bug in libattn.
    Internal,
    /// A code this version of the bindings does not know (from a newer library).
    Other(i32),
}

impl Status {
    /// The status for a C `attn_status` code (nonzero).
    pub fn from_code(code: sys::attn_status) -> Status {
        match code {
            sys::ATTN_E_INVALID_ARG => Status::InvalidArg,
            sys::ATTN_E_SHAPE => Status::Shape,
            sys::ATTN_E_NOMEM => Status::NoMem,
            sys::ATTN_E_UNSUPPORTED => Status::Unsupported,
            sys::ATTN_E_NOT_FOUND => Status::NotFound,
            sys::ATTN_E_IO => Status::Io,
            sys::ATTN_E_FORMAT => Status::Format,
            sys::ATTN_E_NUMERICAL => Status::Numerical,
            sys::ATTN_E_INTERNAL => Status::Internal,
            other => Status::Other(other),
        }
    }

    /// The C `attn_status` code.
    pub fn code(self) -> sys::attn_status {
        match self {
            Status::InvalidArg => sys::ATTN_E_INVALID_ARG,
            Status::Shape => sys::ATTN_E_SHAPE,
            Status::NoMem => sys::ATTN_E_NOMEM,
            Status::Unsupported => sys::ATTN_E_UNSUPPORTED,
            Status::NotFound => sys::ATTN_E_NOT_FOUND,
            Status::Io => sys::ATTN_E_IO,
            Status::Format => sys::ATTN_E_FORMAT,
            Status::Numerical => sys::ATTN_E_NUMERICAL,
            Status::Internal => sys::ATTN_E_INTERNAL,
            Status::Other(code) => code,
        }
    }

    /// The library's static description (`attn_status_str`), e.g.
    /// `"ATTN_E_SHAPE: sizes do not fit together"`.
    pub fn description(self) -> &'static str {
        // SAFETY: attn_status_str returns static, NUL-terminated text for every code, never NULL.
        unsafe { static_str(sys::attn_status_str(self.code())) }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A failed call: its status and the message naming the function, the argument and the values.
///
/// For a call that reached the C library, `message` is `attn_last_error()` read on the same thread
/// right after the call returned, e.g. `"attn_rnn_create: hidden_size must be > 0 (got 0)"`. The
/// bindings' own checks (slice lengths, run before any C call) produce messages of the same form
/// naming the Rust method and argument, e.g. `"Rnn::forward: x has 10 floats, expected ..."`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub status: Status,
    pub message: String,
}

impl Error {
    /// An error made by the bindings themselves.
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error { status, message: message.into() }
    }

    /// The error of a C call that just returned `code`; reads `attn_last_error()`. Must be called
    /// on the thread that made the call, before any other libattn call on it.
    pub(crate) fn from_last_call(code: sys::attn_status) -> Error {
        // SAFETY: attn_last_error never returns NULL; the text lives in thread-local storage until
        // the next failing call on this thread, and it is copied here at once.
        let message = unsafe { CStr::from_ptr(sys::attn_last_error()) }.to_string_lossy().into_owned();
        Error { status: Status::from_code(code), message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // "attn_rnn_create: hidden_size must be > 0 (got 0) [ATTN_E_INVALID_ARG: ...]"
        if self.message.is_empty() {
            f.write_str(self.status.description())
        } else {
            write!(f, "{} [{}]", self.message, self.status.description())
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// `Ok(())` for `ATTN_OK`, else the error with the thread's last message.
pub(crate) fn check(code: sys::attn_status) -> Result<()> {
    if code == sys::ATTN_OK {
        Ok(())
    } else {
        Err(Error::from_last_call(code))
    }
}

/// # Safety
/// `p` must be NULL or point to NUL-terminated text with static storage duration.
pub(crate) unsafe fn static_str(p: *const std::os::raw::c_char) -> &'static str {
    if p.is_null() {
        ""
    } else {
        CStr::from_ptr(p).to_str().unwrap_or("")
    }
}
