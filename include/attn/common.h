/**
 * @file
 * libattn: recurrent and attention model families behind one stable C ABI.
 *
 * common.h: what every family shares: the export macro, version, status codes and error
 * messages, workspaces, the parameter registry (attn_params) and the cost report.
 *
 * Conventions that hold for every function of the library:
 *  - Fallible functions return attn_status: ATTN_OK (0) or a negative ATTN_E_* code. On failure,
 *    attn_last_error() names the function, the argument and the offending values, and the call has
 *    changed none of its outputs (where that is possible) and leaked nothing.
 *  - Sizes and dimensions are int64_t; negative values are rejected as errors.
 *  - Tensors are float32, row-major, contiguous and owned by the caller; sequences are batch-first.
 *  - The library keeps no mutable global state, never prints and never aborts on a caller's mistake.
 */
#ifndef ATTN_COMMON_H
#define ATTN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the functions libattn exports (default visibility; dllexport/dllimport on Windows). */
#if defined(_WIN32)
#  if defined(ATTN_BUILDING_LIBRARY)
#    define ATTN_API __declspec(dllexport)
#  else
#    define ATTN_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define ATTN_API __attribute__((visibility("default")))
#else
#  define ATTN_API
#endif

/* ---- Version ------------------------------------------------------------------------------ */

#define ATTN_VERSION_MAJOR 1 /**< major version of these headers (the SONAME's number) */
#define ATTN_VERSION_MINOR 3 /**< minor version of these headers */
#define ATTN_VERSION_PATCH 0 /**< patch version of these headers */
/** MAJOR*10000 + MINOR*100 + PATCH, comparable with attn_version_number(). */
#define ATTN_VERSION_NUMBER (ATTN_VERSION_MAJOR * 10000 + ATTN_VERSION_MINOR * 100 + ATTN_VERSION_PATCH)

/** Version of the library actually loaded at run time (may differ from the header's). */
ATTN_API uint32_t attn_version_number(void);
/** "MAJOR.MINOR.PATCH"; static storage. */
ATTN_API const char *attn_version_string(void);
/** One line describing the build: library version, BLAS vendor and configuration, thread count
 * that BLAS reports, compiler. Static storage; never NULL. */
ATTN_API const char *attn_build_info(void);

/* ---- Status and errors -------------------------------------------------------------------- */

/** Result of every fallible call: ATTN_OK (0) or a negative ATTN_E_* code. */
typedef int32_t attn_status;

#define ATTN_OK 0 /**< success */
#define ATTN_E_INVALID_ARG (-1)  /**< NULL pointer, bad option value, nonzero reserved flags  */
#define ATTN_E_SHAPE (-2)        /**< sizes that do not fit together, wrong element count      */
#define ATTN_E_NOMEM (-3)        /**< an allocation failed                                     */
#define ATTN_E_UNSUPPORTED (-4)  /**< a valid request this build or handle does not implement  */
#define ATTN_E_NOT_FOUND (-5)    /**< unknown tensor name, missing tensor in a file            */
#define ATTN_E_IO (-6)           /**< a file could not be opened, read or written              */
#define ATTN_E_FORMAT (-7)       /**< a malformed file                                         */
#define ATTN_E_NUMERICAL (-8)    /**< NaN/Inf input where it matters, failed decomposition     */
#define ATTN_E_INTERNAL (-9)     /**< a bug in libattn: please report it                       */

/** Static text for a status code ("ATTN_E_SHAPE: ..."); never NULL, also for unknown codes. */
ATTN_API const char *attn_status_str(attn_status status);

/** The message of the last failed call on this thread, e.g.
 * "attn_rnn_forward: batch must be > 0 (got 0)". Empty string when no call has failed yet.
 * Thread-local, fixed storage: valid until the next failing call on the same thread. Never NULL. */
ATTN_API const char *attn_last_error(void);

/* ---- Workspace ---------------------------------------------------------------------------- */

/** Scratch memory reused across forward calls. A workspace grows to the largest request it has
 * served and keeps that memory until destroyed. One workspace must not be used by two threads at
 * once; give each thread its own. Forward also accepts NULL: it then uses a workspace that the
 * library keeps for the calling thread, which likewise grows to the largest request and is freed
 * when the thread exits or by attn_thread_workspace_release(). */
typedef struct attn_workspace attn_workspace;

/** Creates an empty workspace. ATTN_E_INVALID_ARG for a NULL out, ATTN_E_NOMEM. */
ATTN_API attn_status attn_workspace_create(attn_workspace **out);
/** NULL is accepted and ignored. */
ATTN_API void attn_workspace_destroy(attn_workspace *ws);
/** Bytes the workspace currently holds (0 for NULL). After one forward call on a new workspace this
 * equals the workspace_bytes that the family's cost function reports for the same shape. */
ATTN_API int64_t attn_workspace_size(const attn_workspace *ws);
/** Frees the memory of the calling thread's workspace (the one forward calls given ws = NULL use)
 * now instead of at thread exit. Harmless when it holds nothing. Since 1.3. */
ATTN_API void attn_thread_workspace_release(void);
/** Bytes the calling thread's workspace holds (0 before its first use or after a release). Since 1.3. */
ATTN_API int64_t attn_thread_workspace_size(void);

/* ---- Parameters --------------------------------------------------------------------------- */

/** The named float32 tensors of a handle. Obtained from attn_<family>_params(handle); owned by the
 * handle and valid until it is destroyed. Setting, initializing and loading must not run
 * concurrently with anything else on the same handle. */
typedef struct attn_params attn_params;

/** One tensor of a parameter set, as attn_params_info and attn_params_find describe it. */
typedef struct attn_tensor_info {
    const char *name; /**< points into the handle; valid until the handle is destroyed */
    int64_t ndim;     /**< 1..4 */
    int64_t shape[4]; /**< unused trailing entries are 0 */
    int64_t count;    /**< number of float elements */
} attn_tensor_info;

/** Number of tensors; 0 for NULL. */
ATTN_API int64_t attn_params_count(const attn_params *p);
/** Tensor number `index` (0 <= index < count), in a fixed, documented order. */
ATTN_API attn_status attn_params_info(const attn_params *p, int64_t index, attn_tensor_info *out);
/** Looks a tensor up by its exact name; ATTN_E_NOT_FOUND if there is none. */
ATTN_API attn_status attn_params_find(const attn_params *p, const char *name, attn_tensor_info *out);
/** Copies `count` floats (must equal the tensor's count) into the tensor. Rejects NaN and Inf
 * (ATTN_E_NUMERICAL), leaving the tensor unchanged. */
ATTN_API attn_status attn_params_set(attn_params *p, const char *name, const float *data, int64_t count);
/** Copies the tensor into `out`, which holds `count` floats (must equal the tensor's count). */
ATTN_API attn_status attn_params_get(const attn_params *p, const char *name, float *out, int64_t count);
/** Deterministic initialization from `seed` following PyTorch's default laws for the matching
 * module (the same seed gives the same values on every machine; they are not PyTorch's values). */
ATTN_API attn_status attn_params_init(attn_params *p, uint64_t seed);

/* attn_params_load flags. */
#define ATTN_LOAD_ALLOW_MISSING 0x1u  /**< tensors absent from the file keep their current values */
#define ATTN_LOAD_REJECT_UNKNOWN 0x2u /**< a tensor under `prefix` that names no parameter is an error */

/** Loads a safetensors file. Parameter `name` is read from the tensor `prefix + name` (prefix may be
 * NULL or ""). F32, F64, F16 and BF16 tensors are converted to float32. All-or-nothing: on any
 * error (ATTN_E_IO, ATTN_E_FORMAT, ATTN_E_NOT_FOUND, ATTN_E_SHAPE, ATTN_E_UNSUPPORTED dtype,
 * ATTN_E_NUMERICAL for NaN/Inf values) no parameter is changed. */
ATTN_API attn_status attn_params_load(attn_params *p, const char *path, const char *prefix, uint32_t flags);
/** Opens a safetensors file as a set of parameters of its own, owned by no handle: every tensor whose
 * name begins with `prefix` (NULL or "" = all), named without the prefix and converted to float32
 * from F32, F64, F16 or BF16. A 0-dimensional tensor is listed as shape [1]; tensors of other dtypes
 * (integers, booleans, 8-bit floats) and empty ones are passed over. For reading a checkpoint's
 * tensors that no handle holds (embeddings, norms, heads) with attn_params_count/info/find/get; set,
 * save and init (to zeros) work as on any set. Close it with attn_params_close. *out is NULL on
 * failure: the errors of attn_params_load, ATTN_E_UNSUPPORTED for a tensor of more than 4
 * dimensions, ATTN_E_NOT_FOUND when no float tensor is under the prefix. Added in libattn 1.3. */
ATTN_API attn_status attn_params_open(attn_params **out, const char *path, const char *prefix);
/** Frees a set made by attn_params_open; NULL is fine. A handle's set (attn_<x>_params) is left
 * alone: it dies with its handle. */
ATTN_API void attn_params_close(attn_params *p);
/** Writes every tensor as F32 to a safetensors file under `prefix + name`, with the metadata
 * {"format": "pt"} so that Python's safetensors (numpy or torch) loads it. */
ATTN_API attn_status attn_params_save(const attn_params *p, const char *path, const char *prefix);

/* ---- Cost --------------------------------------------------------------------------------- */

/** What one forward call costs for a given shape, as the attn_<x>_cost functions report it. */
typedef struct attn_cost {
    int64_t params;          /**< number of float parameters of the handle */
    int64_t flops;           /**< floating-point operations of one forward call; multiply-add = 2 */
    int64_t workspace_bytes; /**< peak scratch memory of that call beyond the caller's buffers */
} attn_cost;

#ifdef __cplusplus
}
#endif

#endif /* ATTN_COMMON_H */
