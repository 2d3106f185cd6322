/**
 * @file attn.hpp
 * @brief Header-only C++17 wrappers over the C API of libattn.
 *
 * The classes here own the C handles (one owner each, move-only, freed by their destructors) and
 * turn the C API's status codes into exceptions. Nothing here is compiled into libattn: the header
 * only calls the functions of attn.h, so a program built with it links the same `libattn.so.1`,
 * with the same symbol versions, as a C program, and needs no C++ runtime from the library.
 *
 * @par Errors are exceptions
 * Every wrapper that calls a fallible C function throws attn::Error when the function returns a
 * status other than ATTN_OK. Error::status() is that status (ATTN_E_SHAPE, ...) and
 * Error::what() is the text of attn_last_error(), copied when the error is thrown, so it stays
 * valid whatever the thread calls later. Exceptions were chosen over returned status codes
 * because constructors (which create the handles) cannot return a status, and because a C++
 * caller otherwise has to check every call by hand; code that prefers codes catches attn::Error
 * and reads status(). The wrappers also check the element counts of the tensors they are given
 * against the handle's options and the shape arguments before calling the library, and throw
 * attn::Error with status ATTN_E_SHAPE and a message of their own (naming the `attn::` function
 * and the tensor) when one does not match; shapes the library itself rejects (a batch < 1, sizes
 * beyond its limits) are passed through so that its own message is reported. Functions that
 * return std::vector may also throw std::bad_alloc. Destructors, moves and accessors never throw.
 * No exception ever crosses the C library: it is thrown by the inline wrapper after the C call
 * has returned, in the calling thread.
 *
 * @par Threads
 * The C API's rules hold unchanged: forward, attention_matrix and cost are `const` and may run
 * on one handle from many threads at once, each thread with its own attn::Workspace (or none);
 * creating, destroying (the destructor), moving, and setting or loading parameters must not run
 * concurrently with anything else on the same handle. A Workspace is used by one thread at a time.
 *
 * @par Tensors
 * Tensors are passed as attn::Span, a pointer and an element count that converts implicitly from
 * std::vector, std::array, a C array or any contiguous container with `data()` and `size()`. They
 * are float32, row-major, contiguous and batch-first, as in C; an empty Span stands for the C API's
 * NULL (an optional tensor left out). Functions that return std::vector size the result from the
 * handle's options and the shape arguments.
 *
 * Example:
 * @code
 * #include <attn/attn.hpp>
 * attn::Rnn::Options o = attn::Rnn::default_options();
 * o.cell = ATTN_CELL_LSTM;
 * o.input_size = 4;
 * o.hidden_size = 8;
 * attn::Rnn lstm(o);
 * lstm.params().load("lstm.safetensors");        // throws attn::Error on failure
 * std::vector<float> x(2 * 5 * 4, 0.5f);          // [batch 2, seq_len 5, input_size 4]
 * std::vector<float> y = lstm.forward(2, 5, x);  // [2, 5, 8]
 * @endcode
 */
#ifndef ATTN_ATTN_HPP
#define ATTN_ATTN_HPP

#if !defined(__cplusplus) || (__cplusplus < 201703L && (!defined(_MSVC_LANG) || _MSVC_LANG < 201703L))
#error "attn/attn.hpp needs C++17 or later; C programs include attn/attn.h"
#endif

#include "attn.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

/** @brief The C++ wrappers of libattn (header-only; see attn.hpp). */
namespace attn {

/**
 * @brief The exception thrown for every failed libattn call.
 *
 * status() is the C status code (ATTN_E_INVALID_ARG, ATTN_E_SHAPE, ATTN_E_NOMEM,
 * ATTN_E_UNSUPPORTED, ATTN_E_NOT_FOUND, ATTN_E_IO, ATTN_E_FORMAT, ATTN_E_NUMERICAL or
 * ATTN_E_INTERNAL) and what() the message: attn_last_error()'s text for a failure reported by the
 * library (e.g. "attn_rnn_forward: batch must be > 0 (got 0)"), or the wrapper's own message for a
 * tensor whose element count does not match (status ATTN_E_SHAPE, the message names the attn::
 * function and the tensor).
 */
class Error : public std::runtime_error {
public:
    /**
     * @brief An error with a status code and a message.
     * @param status the C status code, negative (an ATTN_E_* value)
     * @param message the text what() returns
     */
    Error(attn_status status, const std::string &message) : std::runtime_error(message), status_(status) {}

    /** @brief The C status code of the failure (an ATTN_E_* value). */
    attn_status status() const noexcept { return status_; }

    /** @brief The static description of status() (attn_status_str), e.g. "ATTN_E_SHAPE: ...". */
    const char *status_text() const noexcept { return attn_status_str(status_); }

private:
    attn_status status_;
};

namespace detail {

/* Throws attn::Error for a failed status, with the calling thread's attn_last_error() text. */
inline void check(attn_status status) {
    if (status == ATTN_OK) return;
    const char *message = attn_last_error();
    throw Error(status, (message != nullptr && message[0] != '\0') ? message : attn_status_str(status));
}

/* *out = the product of the factors when every factor is >= 1 and the product fits int64_t;
 * false otherwise (the library then reports the shape itself). */
inline bool product(std::initializer_list<int64_t> factors, int64_t *out) noexcept {
    int64_t p = 1;
    for (int64_t f : factors) {
        if (f < 1 || p > INT64_MAX / f) return false;
        p *= f;
    }
    *out = p;
    return true;
}

/* Throws ATTN_E_SHAPE unless a tensor of `size` elements has the expected count. An optional
 * tensor (NULL allowed in C) may be empty. */
inline void expect_count(const char *function, const char *tensor, std::size_t size, int64_t expected,
                         const char *shape, bool optional) {
    if (optional && size == 0) return;
    if (static_cast<uint64_t>(size) == static_cast<uint64_t>(expected)) return;
    throw Error(ATTN_E_SHAPE, std::string(function) + ": " + tensor + " has " + std::to_string(size) +
                                  (size == 1 ? " element" : " elements") + ", expected " +
                                  std::to_string(expected) + " " + shape + (optional ? " (or none)" : ""));
}

template <typename T> using remove_cvref_t = std::remove_cv_t<std::remove_reference_t<T>>;

/* C: a contiguous container whose data() converts to E* and that has size(). */
template <typename C, typename E, typename = void> struct is_container_of : std::false_type {};
template <typename C, typename E>
struct is_container_of<C, E,
                       std::void_t<decltype(std::data(std::declval<C>())), decltype(std::size(std::declval<C>()))>>
    : std::bool_constant<std::is_convertible_v<decltype(std::data(std::declval<C>())), E *>> {};

/* The deleters of the owning classes. */
struct RnnDeleter {
    void operator()(attn_rnn *h) const noexcept { attn_rnn_destroy(h); }
};
struct MemoryRnnDeleter {
    void operator()(attn_memrnn *h) const noexcept { attn_memrnn_destroy(h); }
};
struct MhaDeleter {
    void operator()(attn_mha *h) const noexcept { attn_mha_destroy(h); }
};
struct PerceiverDeleter {
    void operator()(attn_perceiver *h) const noexcept { attn_perceiver_destroy(h); }
};
struct WorkspaceDeleter {
    void operator()(attn_workspace *h) const noexcept { attn_workspace_destroy(h); }
};
struct ParamsCloser {
    void operator()(attn_params *h) const noexcept { attn_params_close(h); }
};

} // namespace detail

/**
 * @brief A view of `size()` contiguous elements of type T that the caller owns (a minimal
 * std::span for C++17).
 *
 * Converts implicitly from std::vector, std::array, C arrays and any container with `data()` and
 * `size()` (a `Span<const T>` also from a `Span<T>` and from a temporary container); a pointer and
 * a size are taken explicitly, `attn::Span<const float>(p, n)`. An empty span is what the C API
 * calls NULL. A span never owns or copies its elements: the memory must
 * outlive the call it is passed to.
 * @tparam T the element type, `const`-qualified for inputs
 */
template <typename T> class Span {
public:
    /** @brief The element type. */
    using element_type = T;

    /** @brief An empty span (NULL for the C API). */
    constexpr Span() noexcept = default;
    /** @brief An empty span, written `nullptr`. */
    constexpr Span(std::nullptr_t) noexcept {}
    /**
     * @brief The `size` elements starting at `data`.
     * @param data first element (may be NULL when size is 0)
     * @param size number of elements
     */
    constexpr explicit Span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}
    /**
     * @brief The elements of a container (lvalue): std::vector, std::array, a C array, a Span, ...
     * @param c the container; its elements must stay in place while the span is used
     */
    template <typename C, typename = std::enable_if_t<detail::is_container_of<C &, T>::value &&
                                                      !std::is_same_v<detail::remove_cvref_t<C>, Span>>>
    constexpr Span(C &c) noexcept : data_(std::data(c)), size_(std::size(c)) {}
    /**
     * @brief The elements of a const or temporary container, for a span of const elements.
     * @param c the container; a temporary lives until the end of the full expression (the call)
     */
    template <typename C, typename U = T,
              typename = std::enable_if_t<std::is_const_v<U> && detail::is_container_of<const C &, T>::value &&
                                          !std::is_same_v<detail::remove_cvref_t<C>, Span>>>
    constexpr Span(const C &c) noexcept : data_(std::data(c)), size_(std::size(c)) {}

    /** @brief Pointer to the first element (NULL for a default-constructed span). */
    constexpr T *data() const noexcept { return data_; }
    /** @brief Number of elements. */
    constexpr std::size_t size() const noexcept { return size_; }
    /** @brief Whether the span has no elements (the C API then gets NULL). */
    constexpr bool empty() const noexcept { return size_ == 0; }
    /** @brief Iterator to the first element. */
    constexpr T *begin() const noexcept { return data_; }
    /** @brief Iterator past the last element. */
    constexpr T *end() const noexcept { return data_ + size_; }
    /**
     * @brief Element `i` (unchecked).
     * @param i index, 0 <= i < size()
     */
    constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }

private:
    T *data_ = nullptr;
    std::size_t size_ = 0;
};

namespace detail {
/* The pointer handed to the C API: NULL for an empty span. */
template <typename T> T *ptr(Span<T> s) noexcept { return s.empty() ? nullptr : s.data(); }
} // namespace detail

/** @brief Parameters, FLOPs and workspace bytes of one forward call (attn_cost). */
using Cost = attn_cost;
/** @brief The rank report of a matrix (attn_rank_report; see attn::rank_analyze). */
using RankReport = attn_rank_report;

/** @brief The loaded library's version, MAJOR*10000 + MINOR*100 + PATCH (attn_version_number). */
inline uint32_t version_number() noexcept { return attn_version_number(); }
/** @brief The loaded library's version as "MAJOR.MINOR.PATCH" (static storage). */
inline const char *version_string() noexcept { return attn_version_string(); }
/** @brief One line describing the library build: version, BLAS, threads, compiler (static storage). */
inline const char *build_info() noexcept { return attn_build_info(); }

/**
 * @brief Scratch memory reused across forward calls (owns an attn_workspace).
 *
 * It grows to the largest request it has served and keeps that memory until destroyed, so a loop
 * of forward calls allocates once. One thread at a time: give each thread its own. Move-only; a
 * moved-from Workspace holds nothing and, passed to forward, acts as none (the call allocates).
 */
class Workspace {
public:
    /** @brief Creates an empty workspace; throws attn::Error (ATTN_E_NOMEM) on failure. */
    Workspace() {
        attn_workspace *ws = nullptr;
        detail::check(attn_workspace_create(&ws));
        handle_.reset(ws);
    }

    /** @brief Bytes the workspace currently holds (0 for a moved-from one). */
    int64_t size() const noexcept { return attn_workspace_size(handle_.get()); }
    /** @brief The C handle (still owned by this object). */
    attn_workspace *handle() const noexcept { return handle_.get(); }
    /** @brief Gives up ownership: returns the C handle, which the caller must attn_workspace_destroy. */
    attn_workspace *release() noexcept { return handle_.release(); }
    /** @brief Whether this object holds a workspace (false once moved from or released). */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

private:
    std::unique_ptr<attn_workspace, detail::WorkspaceDeleter> handle_;
};

namespace detail {
inline attn_workspace *ws_handle(Workspace *ws) noexcept { return ws != nullptr ? ws->handle() : nullptr; }
} // namespace detail

/**
 * @brief Description of one tensor of a parameter set (attn_tensor_info, with its own copy of the
 * name).
 */
struct TensorInfo {
    std::string name;           ///< the tensor's name (PyTorch's state_dict key)
    std::vector<int64_t> shape; ///< its extents, 1 to 4 of them
    int64_t count = 0;          ///< number of float elements (the product of shape)
};

/**
 * @brief A non-owning view of a parameter set (attn_params): a handle's tensors (Rnn::params(),
 * ...) or a file's (ParamsFile::params()).
 *
 * The view is valid as long as the object that owns the set (the handle or the ParamsFile) is
 * alive and not moved from. Reading (count, info, find, get, save) may run concurrently with
 * forward; setting, initializing and loading must not run concurrently with anything else on the
 * owning handle.
 */
class Params {
public:
    /** @brief A view of nothing: count() is 0 and every other call throws ATTN_E_INVALID_ARG. */
    Params() noexcept = default;
    /**
     * @brief A view of a C parameter set, which stays owned by its handle or file.
     * @param params the set, e.g. attn_rnn_params(h); NULL gives a view of nothing
     */
    explicit Params(attn_params *params) noexcept : params_(params) {}

    /** @brief The C parameter set (owned elsewhere). */
    attn_params *handle() const noexcept { return params_; }
    /** @brief Number of tensors (0 for a view of nothing). */
    int64_t count() const noexcept { return attn_params_count(params_); }

    /**
     * @brief Tensor number `index`, in the family's documented order (attn_params_info).
     * @param index 0 <= index < count(), else attn::Error (ATTN_E_INVALID_ARG)
     */
    TensorInfo info(int64_t index) const {
        attn_tensor_info ti;
        detail::check(attn_params_info(params_, index, &ti));
        return convert(ti);
    }
    /**
     * @brief The tensor with this exact name (attn_params_find).
     * @param name a tensor name; attn::Error with ATTN_E_NOT_FOUND if there is none
     */
    TensorInfo find(const std::string &name) const {
        attn_tensor_info ti;
        detail::check(attn_params_find(params_, name.c_str(), &ti));
        return convert(ti);
    }
    /**
     * @brief Whether the set has a tensor of this exact name.
     * @param name a tensor name
     */
    bool contains(const std::string &name) const {
        attn_tensor_info ti;
        const attn_status status = attn_params_find(params_, name.c_str(), &ti);
        if (status == ATTN_E_NOT_FOUND) return false;
        detail::check(status);
        return true;
    }
    /** @brief Every tensor, in order. */
    std::vector<TensorInfo> list() const {
        std::vector<TensorInfo> all;
        const int64_t n = count();
        all.reserve(static_cast<std::size_t>(n));
        for (int64_t i = 0; i < n; i++) all.push_back(info(i));
        return all;
    }

    /**
     * @brief Copies values into a tensor (attn_params_set). NaN or Inf: ATTN_E_NUMERICAL, and the
     * tensor is unchanged.
     * @param name the tensor's name
     * @param data exactly as many floats as the tensor has (else ATTN_E_SHAPE)
     */
    void set(const std::string &name, Span<const float> data) {
        detail::check(attn_params_set(params_, name.c_str(), data.data(), static_cast<int64_t>(data.size())));
    }
    /**
     * @brief Copies a tensor out (attn_params_get).
     * @param name the tensor's name
     * @param out exactly as many floats as the tensor has (else ATTN_E_SHAPE)
     */
    void get(const std::string &name, Span<float> out) const {
        detail::check(attn_params_get(params_, name.c_str(), out.data(), static_cast<int64_t>(out.size())));
    }
    /**
     * @brief A copy of a tensor's values.
     * @param name the tensor's name
     */
    std::vector<float> get(const std::string &name) const {
        std::vector<float> values(static_cast<std::size_t>(find(name).count));
        get(name, Span<float>(values));
        return values;
    }
    /**
     * @brief Deterministic initialization of every tensor from a seed (attn_params_init).
     * @param seed the same seed gives the same values on every machine
     */
    void init(uint64_t seed) { detail::check(attn_params_init(params_, seed)); }
    /**
     * @brief Loads a safetensors file, all or nothing (attn_params_load).
     * @param path the file
     * @param prefix parameter `name` is read from the tensor `prefix + name`
     * @param flags ATTN_LOAD_ALLOW_MISSING and/or ATTN_LOAD_REJECT_UNKNOWN, or 0
     */
    void load(const std::string &path, const std::string &prefix = std::string(), uint32_t flags = 0) {
        detail::check(attn_params_load(params_, path.c_str(), prefix.c_str(), flags));
    }
    /**
     * @brief Writes every tensor as F32 to a safetensors file (attn_params_save).
     * @param path the file (replaced if it exists)
     * @param prefix written before every tensor name
     */
    void save(const std::string &path, const std::string &prefix = std::string()) const {
        detail::check(attn_params_save(params_, path.c_str(), prefix.c_str()));
    }

private:
    static TensorInfo convert(const attn_tensor_info &info) {
        TensorInfo out;
        out.name = info.name;
        const int64_t ndim = std::min<int64_t>(std::max<int64_t>(info.ndim, 0), 4);
        out.shape.assign(info.shape, info.shape + ndim);
        out.count = info.count;
        return out;
    }

    attn_params *params_ = nullptr;
};

/**
 * @brief The tensors of a safetensors file as a parameter set owned by no handle (owns what
 * attn_params_open returns; libattn 1.3).
 *
 * For reading a checkpoint's tensors that no handle holds (embeddings, norms, heads). Move-only;
 * the destructor closes the set (attn_params_close), which invalidates every Params view of it.
 */
class ParamsFile {
public:
    /**
     * @brief Opens a file (attn_params_open): every float tensor whose name begins with `prefix`,
     * named without the prefix and converted to float32.
     * @param path the safetensors file
     * @param prefix only tensors under this prefix; "" for all
     * @throws attn::Error with the errors of attn_params_open (ATTN_E_IO, ATTN_E_FORMAT,
     *         ATTN_E_NOT_FOUND when no float tensor is under the prefix, ...)
     */
    explicit ParamsFile(const std::string &path, const std::string &prefix = std::string()) {
        attn_params *p = nullptr;
        detail::check(attn_params_open(&p, path.c_str(), prefix.c_str()));
        handle_.reset(p);
    }

    /** @brief A view of the file's tensors, valid while this object holds them. */
    Params params() const noexcept { return Params(handle_.get()); }
    /** @brief The C parameter set (still owned by this object). */
    attn_params *handle() const noexcept { return handle_.get(); }
    /** @brief Gives up ownership: returns the C set, which the caller must attn_params_close. */
    attn_params *release() noexcept { return handle_.release(); }
    /** @brief Whether this object holds a set (false once moved from or released). */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

private:
    std::unique_ptr<attn_params, detail::ParamsCloser> handle_;
};

/**
 * @brief A recurrent network: Elman, LSTM or GRU over a dense, low-rank or Kronecker recurrence
 * (owns an attn_rnn; see rnn.h and docs/rnn.md).
 *
 * Move-only. forward(), forward_lengths(), recurrent_matrix() and cost() are const and may run
 * concurrently, each thread with its own Workspace (or none).
 */
class Rnn {
public:
    /** @brief The options (attn_rnn_options); start from default_options(). */
    using Options = attn_rnn_options;

    /** @brief The defaults, with struct_size set (attn_rnn_options_init). */
    static Options default_options() {
        Options o;
        detail::check(attn_rnn_options_init(&o));
        return o;
    }

    /**
     * @brief Creates the network (attn_rnn_create); its parameters are initialized from seed 0.
     * @param options start from default_options(), then set cell, input_size, hidden_size, ...
     * @throws attn::Error ATTN_E_INVALID_ARG naming an option out of range, ATTN_E_NOMEM, ...
     */
    explicit Rnn(const Options &options) {
        attn_rnn *h = nullptr;
        detail::check(attn_rnn_create(&h, &options));
        handle_.reset(h);
        options_ = default_options();
        detail::check(attn_rnn_get_options(h, &options_));
    }

    /** @brief The options the network was created with (attn_rnn_get_options). */
    const Options &options() const noexcept { return options_; }
    /** @brief Its tensors, named as torch.nn.RNN/LSTM/GRU's state_dict (a view owned by this object). */
    Params params() noexcept { return Params(attn_rnn_params(handle_.get())); }
    /** @brief The C handle (still owned by this object). */
    attn_rnn *handle() const noexcept { return handle_.get(); }
    /** @brief Gives up ownership: returns the C handle, which the caller must attn_rnn_destroy. */
    attn_rnn *release() noexcept { return handle_.release(); }
    /** @brief Whether this object holds a network (false once moved from or released). */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /**
     * @brief Runs the network over a batch of sequences (attn_rnn_forward); every tensor given.
     *
     * D is 2 for a bidirectional network, else 1; L is num_layers, I input_size, H hidden_size.
     * @param ws a workspace, or nullptr (the calling thread's workspace, kept by the library)
     * @param batch B >= 1
     * @param seq_len T >= 1
     * @param x input [B, T, I]
     * @param h0 initial hidden state [L*D, B, H], or empty for zeros
     * @param c0 initial cell state [L*D, B, H] (LSTM only), or empty for zeros
     * @param y output [B, T, D*H]
     * @param h_n final hidden state [L*D, B, H], or empty if not wanted
     * @param c_n final cell state [L*D, B, H] (LSTM only), or empty
     * @throws attn::Error ATTN_E_SHAPE for a tensor of the wrong size, or the errors of
     *         attn_rnn_forward
     */
    void forward(Workspace *ws, int64_t batch, int64_t seq_len, Span<const float> x, Span<const float> h0,
                 Span<const float> c0, Span<float> y, Span<float> h_n = {}, Span<float> c_n = {}) const {
        check_tensors("attn::Rnn::forward", batch, seq_len, x, h0, c0, y, h_n, c_n);
        detail::check(attn_rnn_forward(handle_.get(), detail::ws_handle(ws), batch, seq_len, detail::ptr(x),
                                       detail::ptr(h0), detail::ptr(c0), detail::ptr(y), detail::ptr(h_n),
                                       detail::ptr(c_n)));
    }
    /**
     * @brief Runs the network from zero states and returns y [B, T, D*H].
     * @param batch B >= 1
     * @param seq_len T >= 1
     * @param x input [B, T, I]
     * @param ws a workspace, or nullptr
     */
    std::vector<float> forward(int64_t batch, int64_t seq_len, Span<const float> x, Workspace *ws = nullptr) const {
        std::vector<float> y(output_count(batch, seq_len));
        forward(ws, batch, seq_len, x, {}, {}, Span<float>(y));
        return y;
    }

    /**
     * @brief Runs the network over variable-length sequences (attn_rnn_forward_lengths; 1.1).
     *
     * Tensors as forward(); sequence b has lengths[b] valid steps, and y is 0 beyond them.
     * @param ws a workspace, or nullptr
     * @param batch B >= 1
     * @param seq_len T >= 1, the padded length
     * @param lengths [B], each in 1..T
     * @param x input [B, T, I]
     * @param h0 [L*D, B, H] or empty
     * @param c0 [L*D, B, H] (LSTM only) or empty
     * @param y output [B, T, D*H]
     * @param h_n [L*D, B, H] or empty
     * @param c_n [L*D, B, H] (LSTM only) or empty
     */
    void forward_lengths(Workspace *ws, int64_t batch, int64_t seq_len, Span<const int64_t> lengths,
                         Span<const float> x, Span<const float> h0, Span<const float> c0, Span<float> y,
                         Span<float> h_n = {}, Span<float> c_n = {}) const {
        const char *fn = "attn::Rnn::forward_lengths";
        if (batch >= 1) detail::expect_count(fn, "lengths", lengths.size(), batch, "[batch]", false);
        check_tensors(fn, batch, seq_len, x, h0, c0, y, h_n, c_n);
        detail::check(attn_rnn_forward_lengths(handle_.get(), detail::ws_handle(ws), batch, seq_len,
                                               detail::ptr(lengths), detail::ptr(x), detail::ptr(h0),
                                               detail::ptr(c0), detail::ptr(y), detail::ptr(h_n), detail::ptr(c_n)));
    }
    /**
     * @brief Variable-length forward from zero states; returns y [B, T, D*H].
     * @param batch B >= 1
     * @param seq_len T >= 1
     * @param lengths [B], each in 1..T
     * @param x input [B, T, I]
     * @param ws a workspace, or nullptr
     */
    std::vector<float> forward_lengths(int64_t batch, int64_t seq_len, Span<const int64_t> lengths,
                                       Span<const float> x, Workspace *ws = nullptr) const {
        std::vector<float> y(output_count(batch, seq_len));
        forward_lengths(ws, batch, seq_len, lengths, x, {}, {}, Span<float>(y));
        return y;
    }

    /**
     * @brief The effective recurrent matrix [G*H, H] of one layer and direction
     * (attn_rnn_recurrent_matrix); G = 1 (Elman), 4 (LSTM) or 3 (GRU).
     * @param layer 0 <= layer < num_layers
     * @param direction 0 forward, 1 reverse (bidirectional only)
     * @param out [G*H, H]
     */
    void recurrent_matrix(int64_t layer, int64_t direction, Span<float> out) const {
        detail::expect_count("attn::Rnn::recurrent_matrix", "out", out.size(), gates() * options_.hidden_size *
                             options_.hidden_size, "[G * hidden_size, hidden_size]", false);
        detail::check(attn_rnn_recurrent_matrix(handle_.get(), layer, direction, detail::ptr(out)));
    }
    /**
     * @brief The effective recurrent matrix [G*H, H] of one layer and direction, as a new vector.
     * @param layer 0 <= layer < num_layers
     * @param direction 0 forward, 1 reverse
     */
    std::vector<float> recurrent_matrix(int64_t layer, int64_t direction) const {
        std::vector<float> out(static_cast<std::size_t>(gates() * options_.hidden_size * options_.hidden_size));
        recurrent_matrix(layer, direction, Span<float>(out));
        return out;
    }

    /**
     * @brief Parameters, FLOPs and workspace bytes of forward for this shape (attn_rnn_cost).
     * @param batch B >= 1
     * @param seq_len T >= 1
     */
    Cost cost(int64_t batch, int64_t seq_len) const {
        Cost c;
        detail::check(attn_rnn_cost(handle_.get(), batch, seq_len, &c));
        return c;
    }

private:
    int64_t directions() const noexcept { return options_.bidirectional ? 2 : 1; }
    int64_t gates() const noexcept {
        return options_.cell == ATTN_CELL_LSTM ? 4 : options_.cell == ATTN_CELL_GRU ? 3 : 1;
    }
    /* Elements of y; 0 for a shape the library rejects (it then gets no y and reports the shape). */
    std::size_t output_count(int64_t batch, int64_t seq_len) const noexcept {
        int64_t n = 0;
        return detail::product({batch, seq_len, directions(), options_.hidden_size}, &n) ? static_cast<std::size_t>(n)
                                                                                         : 0;
    }
    void check_tensors(const char *fn, int64_t batch, int64_t seq_len, Span<const float> x, Span<const float> h0,
                       Span<const float> c0, Span<float> y, Span<float> h_n, Span<float> c_n) const {
        int64_t n = 0;
        if (detail::product({batch, seq_len, options_.input_size}, &n))
            detail::expect_count(fn, "x", x.size(), n, "[batch, seq_len, input_size]", false);
        if (detail::product({batch, seq_len, directions(), options_.hidden_size}, &n))
            detail::expect_count(fn, "y", y.size(), n, "[batch, seq_len, D * hidden_size]", false);
        if (!detail::product({options_.num_layers, directions(), batch, options_.hidden_size}, &n)) return;
        const char *state = "[num_layers * D, batch, hidden_size]";
        detail::expect_count(fn, "h0", h0.size(), n, state, true);
        detail::expect_count(fn, "h_n", h_n.size(), n, state, true);
        if (options_.cell == ATTN_CELL_LSTM) { // other cells: the library rejects any c0/c_n
            detail::expect_count(fn, "c0", c0.size(), n, state, true);
            detail::expect_count(fn, "c_n", c_n.size(), n, state, true);
        }
    }

    std::unique_ptr<attn_rnn, detail::RnnDeleter> handle_;
    Options options_{};
};

/**
 * @brief The memory-network RNN, a Neural Turing Machine with an LSTM controller (owns an
 * attn_memrnn; libattn 1.1; see memory.h and docs/memory.md).
 *
 * Move-only. forward() and cost() are const and may run concurrently, each thread with its own
 * Workspace (or none).
 */
class MemoryRnn {
public:
    /** @brief The options (attn_memrnn_options); start from default_options(). */
    using Options = attn_memrnn_options;

    /** @brief The defaults, with struct_size set (attn_memrnn_options_init). */
    static Options default_options() {
        Options o;
        detail::check(attn_memrnn_options_init(&o));
        return o;
    }

    /**
     * @brief Creates the machine (attn_memrnn_create); its parameters are initialized from seed 0.
     * @param options start from default_options(), then set input_size, output_size,
     *        controller_size, memory_slots, memory_width, ...
     * @throws attn::Error with the errors of attn_memrnn_create
     */
    explicit MemoryRnn(const Options &options) {
        attn_memrnn *h = nullptr;
        detail::check(attn_memrnn_create(&h, &options));
        handle_.reset(h);
        options_ = default_options();
        detail::check(attn_memrnn_get_options(h, &options_));
    }

    /** @brief The options the machine was created with (attn_memrnn_get_options). */
    const Options &options() const noexcept { return options_; }
    /** @brief Its tensors, named as EncapsulatedNTM's state_dict (a view owned by this object). */
    Params params() noexcept { return Params(attn_memrnn_params(handle_.get())); }
    /** @brief The C handle (still owned by this object). */
    attn_memrnn *handle() const noexcept { return handle_.get(); }
    /** @brief Gives up ownership: returns the C handle, which the caller must attn_memrnn_destroy. */
    attn_memrnn *release() noexcept { return handle_.release(); }
    /** @brief Whether this object holds a machine (false once moved from or released). */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /**
     * @brief Runs the machine over a batch of sequences from its learned initial state
     * (attn_memrnn_forward).
     * @param ws a workspace, or nullptr
     * @param batch B >= 1
     * @param seq_len T >= 1
     * @param x input [B, T, input_size]
     * @param y output [B, T, output_size] (sigmoid outputs)
     * @param read_weights each read head's weighting [B, T, num_heads, memory_slots], or empty
     * @param memory_out the memory after the last step [B, memory_slots, memory_width], or empty
     */
    void forward(Workspace *ws, int64_t batch, int64_t seq_len, Span<const float> x, Span<float> y,
                 Span<float> read_weights = {}, Span<float> memory_out = {}) const {
        const char *fn = "attn::MemoryRnn::forward";
        int64_t n = 0;
        if (detail::product({batch, seq_len, options_.input_size}, &n))
            detail::expect_count(fn, "x", x.size(), n, "[batch, seq_len, input_size]", false);
        if (detail::product({batch, seq_len, options_.output_size}, &n))
            detail::expect_count(fn, "y", y.size(), n, "[batch, seq_len, output_size]", false);
        if (detail::product({batch, seq_len, options_.num_heads, options_.memory_slots}, &n))
            detail::expect_count(fn, "read_weights", read_weights.size(), n,
                                 "[batch, seq_len, num_heads, memory_slots]", true);
        if (detail::product({batch, options_.memory_slots, options_.memory_width}, &n))
            detail::expect_count(fn, "memory_out", memory_out.size(), n, "[batch, memory_slots, memory_width]", true);
        detail::check(attn_memrnn_forward(handle_.get(), detail::ws_handle(ws), batch, seq_len, detail::ptr(x),
                                          detail::ptr(y), detail::ptr(read_weights), detail::ptr(memory_out)));
    }
    /**
     * @brief Runs the machine and returns y [B, T, output_size].
     * @param batch B >= 1
     * @param seq_len T >= 1
     * @param x input [B, T, input_size]
     * @param ws a workspace, or nullptr
     */
    std::vector<float> forward(int64_t batch, int64_t seq_len, Span<const float> x, Workspace *ws = nullptr) const {
        int64_t n = 0; // a shape the library rejects: no y, and the library reports the shape
        std::vector<float> y(detail::product({batch, seq_len, options_.output_size}, &n) ? static_cast<std::size_t>(n) : 0);
        forward(ws, batch, seq_len, x, Span<float>(y));
        return y;
    }

    /**
     * @brief Parameters, FLOPs and workspace bytes of forward for this shape (attn_memrnn_cost).
     * @param batch B >= 1
     * @param seq_len T >= 1
     */
    Cost cost(int64_t batch, int64_t seq_len) const {
        Cost c;
        detail::check(attn_memrnn_cost(handle_.get(), batch, seq_len, &c));
        return c;
    }

private:
    std::unique_ptr<attn_memrnn, detail::MemoryRnnDeleter> handle_;
    Options options_{};
};

/**
 * @brief Multi-head attention: full softmax, Linformer or Nystrom (owns an attn_mha; see
 * attention.h and docs/attention.md).
 *
 * Move-only. forward(), attention_matrix() and cost() are const and may run concurrently, each
 * thread with its own Workspace (or none).
 */
class MultiheadAttention {
public:
    /** @brief The options (attn_mha_options); start from default_options(). */
    using Options = attn_mha_options;

    /** @brief The defaults, with struct_size set (attn_mha_options_init). */
    static Options default_options() {
        Options o;
        detail::check(attn_mha_options_init(&o));
        return o;
    }

    /**
     * @brief Creates the layer (attn_mha_create); its parameters are initialized from seed 0.
     * @param options start from default_options(), then set embed_dim, num_heads, kind, ...
     * @throws attn::Error with the errors of attn_mha_create
     */
    explicit MultiheadAttention(const Options &options) {
        attn_mha *h = nullptr;
        detail::check(attn_mha_create(&h, &options));
        handle_.reset(h);
        options_ = default_options();
        detail::check(attn_mha_get_options(h, &options_));
    }

    /** @brief The options the layer was created with, kdim and vdim resolved (attn_mha_get_options). */
    const Options &options() const noexcept { return options_; }
    /** @brief Its tensors, named as torch.nn.MultiheadAttention's state_dict (a view owned by this object). */
    Params params() noexcept { return Params(attn_mha_params(handle_.get())); }
    /** @brief The C handle (still owned by this object). */
    attn_mha *handle() const noexcept { return handle_.get(); }
    /** @brief Gives up ownership: returns the C handle, which the caller must attn_mha_destroy. */
    attn_mha *release() noexcept { return handle_.release(); }
    /** @brief Whether this object holds a layer (false once moved from or released). */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /**
     * @brief Attention of tgt_len queries over src_len keys and values (attn_mha_forward).
     *
     * E is embed_dim; query, key and value may be the same tensor (self-attention).
     * @param ws a workspace, or nullptr
     * @param batch B >= 1
     * @param tgt_len L >= 1, queries per batch element
     * @param src_len S >= 1, keys and values per batch element
     * @param query [B, L, E]
     * @param key [B, S, kdim]
     * @param value [B, S, vdim]
     * @param key_padding_mask [B, S], nonzero = ignore that key, or empty
     * @param out [B, L, E]
     */
    void forward(Workspace *ws, int64_t batch, int64_t tgt_len, int64_t src_len, Span<const float> query,
                 Span<const float> key, Span<const float> value, Span<const uint8_t> key_padding_mask,
                 Span<float> out) const {
        const char *fn = "attn::MultiheadAttention::forward";
        check_inputs(fn, batch, tgt_len, src_len, query, key, value, key_padding_mask);
        int64_t n = 0;
        if (detail::product({batch, tgt_len, options_.embed_dim}, &n))
            detail::expect_count(fn, "out", out.size(), n, "[batch, tgt_len, embed_dim]", false);
        detail::check(attn_mha_forward(handle_.get(), detail::ws_handle(ws), batch, tgt_len, src_len,
                                       detail::ptr(query), detail::ptr(key), detail::ptr(value),
                                       detail::ptr(key_padding_mask), detail::ptr(out)));
    }
    /**
     * @brief Attention as forward(), returning out [B, L, E].
     * @param batch B >= 1
     * @param tgt_len L >= 1
     * @param src_len S >= 1
     * @param query [B, L, E]
     * @param key [B, S, kdim]
     * @param value [B, S, vdim]
     * @param key_padding_mask [B, S] or empty
     * @param ws a workspace, or nullptr
     */
    std::vector<float> forward(int64_t batch, int64_t tgt_len, int64_t src_len, Span<const float> query,
                               Span<const float> key, Span<const float> value,
                               Span<const uint8_t> key_padding_mask = {}, Workspace *ws = nullptr) const {
        int64_t n = 0; // a shape the library rejects: no out, and the library reports the shape
        std::vector<float> out(detail::product({batch, tgt_len, options_.embed_dim}, &n) ? static_cast<std::size_t>(n) : 0);
        forward(ws, batch, tgt_len, src_len, query, key, value, key_padding_mask, Span<float>(out));
        return out;
    }

    /**
     * @brief The attention matrix of every head (attn_mha_attention_matrix), for analysis.
     * @param ws a workspace, or nullptr
     * @param batch B >= 1
     * @param tgt_len L >= 1
     * @param src_len S >= 1
     * @param query [B, L, E]
     * @param key [B, S, kdim]
     * @param value [B, S, vdim]
     * @param key_padding_mask [B, S] or empty
     * @param weights [B, num_heads, L, S]
     */
    void attention_matrix(Workspace *ws, int64_t batch, int64_t tgt_len, int64_t src_len, Span<const float> query,
                          Span<const float> key, Span<const float> value, Span<const uint8_t> key_padding_mask,
                          Span<float> weights) const {
        const char *fn = "attn::MultiheadAttention::attention_matrix";
        check_inputs(fn, batch, tgt_len, src_len, query, key, value, key_padding_mask);
        int64_t n = 0;
        if (detail::product({batch, options_.num_heads, tgt_len, src_len}, &n))
            detail::expect_count(fn, "weights", weights.size(), n, "[batch, num_heads, tgt_len, src_len]", false);
        detail::check(attn_mha_attention_matrix(handle_.get(), detail::ws_handle(ws), batch, tgt_len, src_len,
                                                detail::ptr(query), detail::ptr(key), detail::ptr(value),
                                                detail::ptr(key_padding_mask), detail::ptr(weights)));
    }
    /**
     * @brief The attention matrix of every head, returned as weights [B, num_heads, L, S].
     * @param batch B >= 1
     * @param tgt_len L >= 1
     * @param src_len S >= 1
     * @param query [B, L, E]
     * @param key [B, S, kdim]
     * @param value [B, S, vdim]
     * @param key_padding_mask [B, S] or empty
     * @param ws a workspace, or nullptr
     */
    std::vector<float> attention_matrix(int64_t batch, int64_t tgt_len, int64_t src_len, Span<const float> query,
                                        Span<const float> key, Span<const float> value,
                                        Span<const uint8_t> key_padding_mask = {}, Workspace *ws = nullptr) const {
        int64_t n = 0; // a shape the library rejects: no weights, and the library reports the shape
        std::vector<float> weights(
            detail::product({batch, options_.num_heads, tgt_len, src_len}, &n) ? static_cast<std::size_t>(n) : 0);
        attention_matrix(ws, batch, tgt_len, src_len, query, key, value, key_padding_mask, Span<float>(weights));
        return weights;
    }

    /**
     * @brief Parameters, FLOPs and workspace bytes of forward for this shape (attn_mha_cost).
     * @param batch B >= 1
     * @param tgt_len L >= 1
     * @param src_len S >= 1
     */
    Cost cost(int64_t batch, int64_t tgt_len, int64_t src_len) const {
        Cost c;
        detail::check(attn_mha_cost(handle_.get(), batch, tgt_len, src_len, &c));
        return c;
    }

private:
    void check_inputs(const char *fn, int64_t batch, int64_t tgt_len, int64_t src_len, Span<const float> query,
                      Span<const float> key, Span<const float> value, Span<const uint8_t> mask) const {
        int64_t n = 0;
        if (detail::product({batch, tgt_len, options_.embed_dim}, &n))
            detail::expect_count(fn, "query", query.size(), n, "[batch, tgt_len, embed_dim]", false);
        if (detail::product({batch, src_len, options_.kdim}, &n))
            detail::expect_count(fn, "key", key.size(), n, "[batch, src_len, kdim]", false);
        if (detail::product({batch, src_len, options_.vdim}, &n))
            detail::expect_count(fn, "value", value.size(), n, "[batch, src_len, vdim]", false);
        if (detail::product({batch, src_len}, &n))
            detail::expect_count(fn, "key_padding_mask", mask.size(), n, "[batch, src_len]", true);
    }

    std::unique_ptr<attn_mha, detail::MhaDeleter> handle_;
    Options options_{};
};

/**
 * @brief The Perceiver (owns an attn_perceiver; libattn 1.2; see perceiver.h and
 * docs/perceiver.md).
 *
 * Move-only. forward() and cost() are const and may run concurrently, each thread with its own
 * Workspace (or none).
 */
class Perceiver {
public:
    /** @brief The options (attn_perceiver_options); start from default_options(). */
    using Options = attn_perceiver_options;

    /** @brief The defaults, with struct_size set (attn_perceiver_options_init). */
    static Options default_options() {
        Options o;
        detail::check(attn_perceiver_options_init(&o));
        return o;
    }

    /**
     * @brief Creates the Perceiver (attn_perceiver_create); its parameters are initialized from seed 0.
     * @param options start from default_options(), then set depth, num_freq_bands, max_freq, ...
     * @throws attn::Error with the errors of attn_perceiver_create
     */
    explicit Perceiver(const Options &options) {
        attn_perceiver *h = nullptr;
        detail::check(attn_perceiver_create(&h, &options));
        handle_.reset(h);
        options_ = default_options();
        detail::check(attn_perceiver_get_options(h, &options_));
    }

    /** @brief The options the Perceiver was created with (attn_perceiver_get_options). */
    const Options &options() const noexcept { return options_; }
    /** @brief Its tensors, named as lucidrains' Perceiver state_dict (a view owned by this object). */
    Params params() noexcept { return Params(attn_perceiver_params(handle_.get())); }
    /** @brief The C handle (still owned by this object). */
    attn_perceiver *handle() const noexcept { return handle_.get(); }
    /** @brief Gives up ownership: returns the C handle, which the caller must attn_perceiver_destroy. */
    attn_perceiver *release() noexcept { return handle_.release(); }
    /** @brief Whether this object holds a Perceiver (false once moved from or released). */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /**
     * @brief One forward pass over a batch (attn_perceiver_forward). N is the product of axis_sizes.
     * @param ws a workspace, or nullptr
     * @param batch B >= 1
     * @param axis_sizes the size of each of the input_axis spatial axes
     * @param data [B, axis_sizes..., input_channels]
     * @param mask [B, N], nonzero = ignore that input position, or empty
     * @param out [B, num_classes], or [B, num_latents, latent_dim] when num_classes is 0
     */
    void forward(Workspace *ws, int64_t batch, Span<const int64_t> axis_sizes, Span<const float> data,
                 Span<const uint8_t> mask, Span<float> out) const {
        const char *fn = "attn::Perceiver::forward";
        check_axes(fn, axis_sizes);
        int64_t positions = 0, n = 0;
        if (product_of(axis_sizes, &positions)) {
            if (detail::product({batch, positions, options_.input_channels}, &n))
                detail::expect_count(fn, "data", data.size(), n, "[batch, axis_sizes..., input_channels]", false);
            if (detail::product({batch, positions}, &n))
                detail::expect_count(fn, "mask", mask.size(), n, "[batch, N]", true);
        }
        if (output_count(batch, &n))
            detail::expect_count(fn, "out", out.size(), n,
                                 options_.num_classes > 0 ? "[batch, num_classes]" : "[batch, num_latents, latent_dim]",
                                 false);
        detail::check(attn_perceiver_forward(handle_.get(), detail::ws_handle(ws), batch, detail::ptr(axis_sizes),
                                             detail::ptr(data), detail::ptr(mask), detail::ptr(out)));
    }
    /**
     * @brief One forward pass, returning out: [B, num_classes], or [B, num_latents, latent_dim].
     * @param batch B >= 1
     * @param axis_sizes the size of each spatial axis
     * @param data [B, axis_sizes..., input_channels]
     * @param mask [B, N] or empty
     * @param ws a workspace, or nullptr
     */
    std::vector<float> forward(int64_t batch, Span<const int64_t> axis_sizes, Span<const float> data,
                               Span<const uint8_t> mask = {}, Workspace *ws = nullptr) const {
        int64_t n = 0; // a shape the library rejects: no out, and the library reports the shape
        std::vector<float> out(output_count(batch, &n) ? static_cast<std::size_t>(n) : 0);
        forward(ws, batch, axis_sizes, data, mask, Span<float>(out));
        return out;
    }

    /**
     * @brief Parameters, FLOPs and workspace bytes of forward for this input shape
     * (attn_perceiver_cost).
     * @param batch B >= 1
     * @param axis_sizes the size of each of the input_axis spatial axes
     */
    Cost cost(int64_t batch, Span<const int64_t> axis_sizes) const {
        check_axes("attn::Perceiver::cost", axis_sizes);
        Cost c;
        detail::check(attn_perceiver_cost(handle_.get(), batch, detail::ptr(axis_sizes), &c));
        return c;
    }

private:
    void check_axes(const char *fn, Span<const int64_t> axis_sizes) const {
        detail::expect_count(fn, "axis_sizes", axis_sizes.size(), options_.input_axis, "[input_axis]", false);
    }
    static bool product_of(Span<const int64_t> sizes, int64_t *out) noexcept {
        int64_t p = 1;
        for (int64_t s : sizes)
            if (!detail::product({p, s}, &p)) return false;
        *out = p;
        return true;
    }
    bool output_count(int64_t batch, int64_t *out) const noexcept {
        if (options_.num_classes > 0) return detail::product({batch, options_.num_classes}, out);
        return detail::product({batch, options_.num_latents, options_.latent_dim}, out);
    }

    std::unique_ptr<attn_perceiver, detail::PerceiverDeleter> handle_;
    Options options_{};
};

/**
 * @brief The best rank-r approximation u v of a matrix (see attn::lowrank_factors).
 */
struct LowRankFactors {
    std::vector<float> u; ///< [rows, rank]: the left singular vectors times the singular values
    std::vector<float> v; ///< [rank, cols]: the right singular vectors (orthonormal rows)
};

namespace detail {
/* Checks a.size() against rows * cols when that product is a valid size; returns the product, or
 * -1 when it is not one (the library then reports the shape). */
inline int64_t matrix_count(const char *fn, Span<const float> a, int64_t rows, int64_t cols) {
    int64_t n = 0;
    if (!product({rows, cols}, &n)) return -1;
    expect_count(fn, "a", a.size(), n, "[rows, cols]", false);
    return n;
}
} // namespace detail

/**
 * @brief The singular values of a [rows, cols], in decreasing order, computed in double
 * (attn_singular_values; libattn 1.3). Any thread, any time.
 * @param a the matrix, float32 row-major [rows, cols]
 * @param rows rows >= 1
 * @param cols cols >= 1
 * @param sigma [min(rows, cols)]
 */
inline void singular_values(Span<const float> a, int64_t rows, int64_t cols, Span<double> sigma) {
    if (detail::matrix_count("attn::singular_values", a, rows, cols) >= 0)
        detail::expect_count("attn::singular_values", "sigma", sigma.size(), std::min(rows, cols),
                             "[min(rows, cols)]", false);
    detail::check(attn_singular_values(detail::ptr(a), rows, cols, detail::ptr(sigma)));
}
/**
 * @brief The singular values of a [rows, cols], in decreasing order, as a new vector.
 * @param a the matrix [rows, cols]
 * @param rows rows >= 1
 * @param cols cols >= 1
 */
inline std::vector<double> singular_values(Span<const float> a, int64_t rows, int64_t cols) {
    const bool valid = detail::matrix_count("attn::singular_values", a, rows, cols) >= 0;
    // An invalid shape still goes to the library, which rejects it (with its message) before it
    // writes anything, so one double stands in for the output.
    std::vector<double> sigma(valid ? static_cast<std::size_t>(std::min(rows, cols)) : 1);
    detail::check(attn_singular_values(detail::ptr(a), rows, cols, sigma.data()));
    return sigma;
}

/**
 * @brief What the spectrum of a [rows, cols] says about its rank: norms, stable, effective and
 * numerical rank, rank at 90 % and 99 % (attn_rank_analyze; libattn 1.3).
 * @param a the matrix [rows, cols]
 * @param rows rows >= 1
 * @param cols cols >= 1
 */
inline RankReport rank_analyze(Span<const float> a, int64_t rows, int64_t cols) {
    (void)detail::matrix_count("attn::rank_analyze", a, rows, cols);
    RankReport report;
    detail::check(attn_rank_analyze(detail::ptr(a), rows, cols, &report));
    return report;
}

/**
 * @brief The Frobenius distance from a [rows, cols] to the nearest matrix of rank <= rank
 * (Eckart-Young; attn_lowrank_error; libattn 1.3).
 * @param a the matrix [rows, cols]
 * @param rows rows >= 1
 * @param cols cols >= 1
 * @param rank rank >= 0; 0 gives the Frobenius norm, >= min(rows, cols) gives 0
 */
inline double lowrank_error(Span<const float> a, int64_t rows, int64_t cols, int64_t rank) {
    (void)detail::matrix_count("attn::lowrank_error", a, rows, cols);
    double error = 0.0;
    detail::check(attn_lowrank_error(detail::ptr(a), rows, cols, rank, &error));
    return error;
}

/**
 * @brief The best rank-`rank` approximation of a [rows, cols] as u [rows, rank] times
 * v [rank, cols] (the truncated SVD; attn_lowrank_factors; libattn 1.3).
 * @param a the matrix [rows, cols]
 * @param rows rows >= 1
 * @param cols cols >= 1
 * @param rank 1 <= rank <= min(rows, cols)
 * @param u [rows, rank]
 * @param v [rank, cols]
 */
inline void lowrank_factors(Span<const float> a, int64_t rows, int64_t cols, int64_t rank, Span<float> u,
                            Span<float> v) {
    const char *fn = "attn::lowrank_factors";
    if (detail::matrix_count(fn, a, rows, cols) >= 0 && rank >= 1 && rank <= std::min(rows, cols)) {
        detail::expect_count(fn, "u", u.size(), rows * rank, "[rows, rank]", false);
        detail::expect_count(fn, "v", v.size(), rank * cols, "[rank, cols]", false);
    }
    detail::check(attn_lowrank_factors(detail::ptr(a), rows, cols, rank, detail::ptr(u), detail::ptr(v)));
}
/**
 * @brief The best rank-`rank` approximation of a [rows, cols], returned as new u and v.
 * @param a the matrix [rows, cols]
 * @param rows rows >= 1
 * @param cols cols >= 1
 * @param rank 1 <= rank <= min(rows, cols)
 */
inline LowRankFactors lowrank_factors(Span<const float> a, int64_t rows, int64_t cols, int64_t rank) {
    const bool valid = detail::matrix_count("attn::lowrank_factors", a, rows, cols) >= 0 && rank >= 1 &&
                       rank <= std::min(rows, cols);
    LowRankFactors f;
    // An invalid shape or rank still goes to the library, which rejects it (with its message)
    // before it writes anything, so one float each stands in for the outputs.
    f.u.resize(valid ? static_cast<std::size_t>(rows * rank) : 1);
    f.v.resize(valid ? static_cast<std::size_t>(rank * cols) : 1);
    detail::check(attn_lowrank_factors(detail::ptr(a), rows, cols, rank, f.u.data(), f.v.data()));
    return f;
}

} // namespace attn

#endif /* ATTN_ATTN_HPP */
