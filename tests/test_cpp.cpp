/*
 * test_cpp.cpp: the C++17 wrappers of include/attn/attn.hpp against the C API they wrap.
 *
 * Every wrapper call is compared with the C call it stands for, on the same handle and the same
 * inputs, bit for bit (forward, forward_lengths, recurrent_matrix, attention_matrix, cost, the
 * parameter calls, the analysis functions). Errors: every failed C call becomes attn::Error with
 * the C status and attn_last_error()'s text; the wrappers' own element-count checks throw
 * ATTN_E_SHAPE naming the attn:: function and the tensor, before the library is called; shapes the
 * library rejects reach it, so its message is the one reported. Ownership: the classes are
 * move-only, a move transfers the handle, release() gives it up. Threads: two threads run forward
 * on one const handle, each with its own Workspace.
 *
 * Built with -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Werror, so the
 * header stays clean under a strict consumer's warnings (tests/cpp.cmake).
 */
#include <attn/attn.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

// CMocka needs these first.
#include <csetjmp>
#include <cstdarg>
#include <cstddef>
extern "C" {
#include <cmocka.h>
}

// The strict warnings (tests/cpp.cmake) are for attn.hpp, included above: GCC and Clang judge a
// diagnostic by where its code is, so the header's code, its templates included, stays under them.
// The test code below mixes int64_t shapes and size_t sizes freely.
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"

namespace {

// ---- helpers ------------------------------------------------------------------------------------

// Deterministic data in [-1, 1) (splitmix64).
std::vector<float> data(std::size_t n, uint64_t seed) {
    std::vector<float> v(n);
    for (float &x : v) {
        uint64_t z = (seed += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x = static_cast<float>(static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0);
    }
    return v;
}

template <typename T> bool same_bits(const std::vector<T> &a, const std::vector<T> &b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

void expect_same(const std::vector<float> &got, const std::vector<float> &want, const char *what) {
    if (!same_bits(got, want)) fail_msg("%s: the wrapper's result differs from the C API's", what);
}

void expect_ok(attn_status status, const char *what) {
    if (status != ATTN_OK) fail_msg("%s failed: %s", what, attn_last_error());
}

std::string temp_path(const char *name) {
    const char *dir = std::getenv("ATTN_TEST_TMPDIR");
    return std::string(dir != nullptr && *dir != '\0' ? dir : ".") + "/test_cpp_" + name;
}

// Runs `body`, which must throw attn::Error with `status` and a message that contains `needle`.
// A library error's message must also be attn_last_error()'s text, word for word.
template <typename F>
void expect_error(F &&body, attn_status status, const char *needle, bool from_library, const char *what) {
    try {
        body();
    } catch (const attn::Error &e) {
        if (e.status() != status)
            fail_msg("%s: status %d (%s), expected %d", what, static_cast<int>(e.status()), e.what(),
                     static_cast<int>(status));
        if (std::strstr(e.what(), needle) == nullptr)
            fail_msg("%s: message \"%s\" lacks \"%s\"", what, e.what(), needle);
        if (from_library && std::strcmp(e.what(), attn_last_error()) != 0)
            fail_msg("%s: message \"%s\" is not attn_last_error() \"%s\"", what, e.what(), attn_last_error());
        if (std::strcmp(e.status_text(), attn_status_str(status)) != 0)
            fail_msg("%s: status_text() is not attn_status_str()", what);
        return;
    } catch (const std::exception &e) {
        fail_msg("%s: threw %s, not attn::Error", what, e.what());
    }
    fail_msg("%s: did not throw", what);
}

// Runs a test body, turning an unexpected exception into a CMocka failure (an exception must not
// unwind through CMocka's C frames).
template <typename F> void guarded(F &&body) {
    try {
        body();
    } catch (const attn::Error &e) {
        fail_msg("unexpected attn::Error %d: %s", static_cast<int>(e.status()), e.what());
    } catch (const std::exception &e) {
        fail_msg("unexpected exception: %s", e.what());
    }
}

attn::Rnn::Options lstm_options() {
    attn::Rnn::Options o = attn::Rnn::default_options();
    o.cell = ATTN_CELL_LSTM;
    o.input_size = 3;
    o.hidden_size = 4;
    o.num_layers = 2;
    o.bidirectional = 1;
    return o;
}

// ---- types ---------------------------------------------------------------------------------------

template <typename T> constexpr bool move_only_v =
    !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> && std::is_nothrow_move_constructible_v<T> &&
    std::is_nothrow_move_assignable_v<T>;
static_assert(move_only_v<attn::Rnn>, "attn::Rnn is move-only");
static_assert(move_only_v<attn::MemoryRnn>, "attn::MemoryRnn is move-only");
static_assert(move_only_v<attn::MultiheadAttention>, "attn::MultiheadAttention is move-only");
static_assert(move_only_v<attn::Perceiver>, "attn::Perceiver is move-only");
static_assert(move_only_v<attn::Workspace>, "attn::Workspace is move-only");
static_assert(move_only_v<attn::ParamsFile>, "attn::ParamsFile is move-only");
static_assert(std::is_nothrow_destructible_v<attn::Rnn>, "destructors never throw");
static_assert(std::is_base_of_v<std::runtime_error, attn::Error>, "attn::Error is a std::runtime_error");
static_assert(std::is_copy_constructible_v<attn::Params>, "attn::Params is a view, copyable");
static_assert(!std::is_constructible_v<attn::Span<float>, const std::vector<float> &>,
              "no mutable span of a const container");
static_assert(!std::is_constructible_v<attn::Span<float>, attn::Span<const float>>, "no const_cast by a span");
static_assert(std::is_convertible_v<std::vector<float> &, attn::Span<const float>>, "vector -> Span<const>");
static_assert(!std::is_convertible_v<float *, attn::Span<float>>, "a bare pointer needs its size");

void test_span(void **) {
    guarded([] {
        float c_array[6] = {1, 2, 3, 4, 5, 6};
        std::array<float, 4> array{};
        const std::vector<float> cvec(5, 1.0f);
        std::vector<float> vec(3, 2.0f);
        attn::Span<float> a(c_array);
        attn::Span<float> b(array);
        attn::Span<const float> c(cvec);
        attn::Span<const float> d(a); // Span<T> -> Span<const T>
        attn::Span<float> e(vec);
        attn::Span<const float> f(vec.data(), 2);
        assert_int_equal(a.size(), 6);
        assert_ptr_equal(a.data(), c_array);
        assert_int_equal(b.size(), 4);
        assert_int_equal(c.size(), 5);
        assert_ptr_equal(d.data(), c_array);
        assert_int_equal(e.size(), 3);
        assert_int_equal(f.size(), 2);
        assert_true(f[1] == 2.0f);
        float sum = 0;
        for (float x : a) sum += x;
        assert_true(sum == 21.0f);
        attn::Span<const float> none;
        attn::Span<const float> null_span = nullptr;
        assert_true(none.empty() && null_span.empty() && none.data() == nullptr);
    });
}

void test_version(void **) {
    assert_int_equal(attn::version_number(), attn_version_number());
    assert_string_equal(attn::version_string(), attn_version_string());
    assert_string_equal(attn::build_info(), attn_build_info());
    assert_int_equal(attn::version_number() / 10000, ATTN_VERSION_MAJOR);
}

// ---- errors ----------------------------------------------------------------------------------------

void test_create_errors(void **) {
    guarded([] {
        attn::Rnn::Options o = lstm_options();
        o.hidden_size = 0;
        expect_error([&] { attn::Rnn rnn(o); }, ATTN_E_INVALID_ARG, "attn_rnn_create", true, "Rnn(hidden 0)");
        // Also catchable as std::runtime_error, with the same text.
        bool caught = false;
        try {
            attn::Rnn rnn(o);
        } catch (const std::runtime_error &e) {
            caught = std::strcmp(e.what(), attn_last_error()) == 0;
        }
        assert_true(caught);

        attn::MultiheadAttention::Options m = attn::MultiheadAttention::default_options();
        m.embed_dim = 6;
        m.num_heads = 4; // 6 is not divisible by 4
        expect_error([&] { attn::MultiheadAttention mha(m); }, ATTN_E_INVALID_ARG, "attn_mha_create", true,
                     "MultiheadAttention(E 6, 4 heads)");
        attn::MemoryRnn::Options n = attn::MemoryRnn::default_options();
        expect_error([&] { attn::MemoryRnn mem(n); }, ATTN_E_INVALID_ARG, "attn_memrnn_create", true,
                     "MemoryRnn(defaults)");
        attn::Perceiver::Options p = attn::Perceiver::default_options();
        expect_error([&] { attn::Perceiver per(p); }, ATTN_E_INVALID_ARG, "attn_perceiver_create", true,
                     "Perceiver(defaults)");
        expect_error([] { attn::ParamsFile f(temp_path("does_not_exist.safetensors")); }, ATTN_E_IO,
                     "attn_params_open", true, "ParamsFile(missing file)");
    });
}

// ---- ownership --------------------------------------------------------------------------------------

void test_move_and_release(void **) {
    guarded([] {
        attn::Rnn a(lstm_options());
        attn_rnn *h = a.handle();
        assert_non_null(h);
        attn::Rnn b(std::move(a));
        assert_false(static_cast<bool>(a)); // NOLINT(bugprone-use-after-move): the moved-from state is tested
        assert_true(static_cast<bool>(b));
        assert_ptr_equal(b.handle(), h);

        attn::Rnn::Options other = lstm_options();
        other.cell = ATTN_CELL_GRU;
        attn::Rnn c(other);
        c = std::move(b); // frees c's own network (the sanitizer build would report a leak)
        assert_ptr_equal(c.handle(), h);
        assert_int_equal(c.options().cell, ATTN_CELL_LSTM);

        // A moved-from handle is NULL to the library: its calls fail with the library's message.
        std::vector<float> x = data(2 * 5 * 3, 1);
        expect_error([&] { (void)b.forward(2, 5, x); }, ATTN_E_INVALID_ARG, "attn_rnn_forward", true,
                     "forward on a moved-from Rnn");
        assert_int_equal(b.params().count(), 0);

        attn_rnn *released = c.release();
        assert_ptr_equal(released, h);
        assert_false(static_cast<bool>(c));
        attn_rnn_destroy(released);

        attn::Workspace w1;
        attn::Workspace w2(std::move(w1));
        assert_false(static_cast<bool>(w1));
        assert_true(static_cast<bool>(w2));
        assert_int_equal(w1.size(), 0);
        attn_workspace_destroy(w2.release());
    });
}

// ---- Rnn -------------------------------------------------------------------------------------------

void test_rnn(void **) {
    guarded([] {
        attn::Rnn rnn(lstm_options());
        rnn.params().init(7);
        const int64_t B = 2, T = 5, I = 3, H = 4, S = 2 * 2 * B * H; // S: [L*D, B, H]
        const std::vector<float> x = data(B * T * I, 11), h0 = data(S, 12), c0 = data(S, 13);

        // Every tensor given: against attn_rnn_forward.
        std::vector<float> y(B * T * 2 * H), hn(S), cn(S), y_c(y.size()), hn_c(S), cn_c(S);
        attn::Workspace ws;
        assert_int_equal(ws.size(), 0);
        rnn.forward(&ws, B, T, x, h0, c0, y, hn, cn);
        expect_ok(attn_rnn_forward(rnn.handle(), nullptr, B, T, x.data(), h0.data(), c0.data(), y_c.data(),
                                   hn_c.data(), cn_c.data()),
                  "attn_rnn_forward");
        expect_same(y, y_c, "Rnn::forward y");
        expect_same(hn, hn_c, "Rnn::forward h_n");
        expect_same(cn, cn_c, "Rnn::forward c_n");

        // cost, and the workspace it predicts.
        const attn::Cost cost = rnn.cost(B, T);
        attn_cost cost_c;
        expect_ok(attn_rnn_cost(rnn.handle(), B, T, &cost_c), "attn_rnn_cost");
        assert_int_equal(cost.params, cost_c.params);
        assert_int_equal(cost.flops, cost_c.flops);
        assert_int_equal(cost.workspace_bytes, cost_c.workspace_bytes);
        assert_int_equal(ws.size(), cost.workspace_bytes);

        // Zero states, y returned.
        expect_ok(attn_rnn_forward(rnn.handle(), nullptr, B, T, x.data(), nullptr, nullptr, y_c.data(), nullptr,
                                   nullptr),
                  "attn_rnn_forward");
        expect_same(rnn.forward(B, T, x), y_c, "Rnn::forward -> y");
        expect_same(rnn.forward(B, T, x, &ws), y_c, "Rnn::forward -> y (workspace)");

        // Variable lengths.
        const std::vector<int64_t> lengths = {3, 5};
        expect_ok(attn_rnn_forward_lengths(rnn.handle(), nullptr, B, T, lengths.data(), x.data(), nullptr, nullptr,
                                           y_c.data(), nullptr, nullptr),
                  "attn_rnn_forward_lengths");
        expect_same(rnn.forward_lengths(B, T, lengths, x), y_c, "Rnn::forward_lengths -> y");
        rnn.forward_lengths(&ws, B, T, lengths, x, h0, c0, y, hn, cn);
        expect_ok(attn_rnn_forward_lengths(rnn.handle(), nullptr, B, T, lengths.data(), x.data(), h0.data(),
                                           c0.data(), y_c.data(), hn_c.data(), cn_c.data()),
                  "attn_rnn_forward_lengths");
        expect_same(y, y_c, "Rnn::forward_lengths y");
        expect_same(hn, hn_c, "Rnn::forward_lengths h_n");
        expect_same(cn, cn_c, "Rnn::forward_lengths c_n");

        // The recurrent matrix [4H, H] of layer 1, reverse direction.
        std::vector<float> w_c(4 * H * H);
        expect_ok(attn_rnn_recurrent_matrix(rnn.handle(), 1, 1, w_c.data()), "attn_rnn_recurrent_matrix");
        expect_same(rnn.recurrent_matrix(1, 1), w_c, "Rnn::recurrent_matrix");

        assert_int_equal(rnn.options().hidden_size, H);
        assert_int_equal(rnn.options().struct_size, sizeof(attn_rnn_options));
    });
}

void test_rnn_errors(void **) {
    guarded([] {
        attn::Rnn rnn(lstm_options());
        const int64_t B = 2, T = 5, H = 4;
        std::vector<float> x = data(B * T * 3, 1), y(B * T * 2 * H), state(2 * 2 * B * H);
        std::vector<float> short_x(x.begin(), x.end() - 1);
        // The wrapper's own checks, before the library: status ATTN_E_SHAPE, the attn:: name.
        expect_error([&] { rnn.forward(nullptr, B, T, short_x, {}, {}, y); }, ATTN_E_SHAPE,
                     "attn::Rnn::forward: x has 29 elements, expected 30", false, "short x");
        expect_error([&] { (void)rnn.forward(B, T, short_x); }, ATTN_E_SHAPE, "attn::Rnn::forward: x has", false,
                     "short x (vector)");
        expect_error([&] { rnn.forward(nullptr, B, T, x, {}, {}, attn::Span<float>(y.data(), 8)); }, ATTN_E_SHAPE,
                     "attn::Rnn::forward: y has 8 elements", false, "short y");
        expect_error([&] { rnn.forward(nullptr, B, T, x, attn::Span<const float>(state.data(), 5), {}, y); },
                     ATTN_E_SHAPE, "h0 has 5 elements, expected 32", false, "short h0");
        expect_error([&] { rnn.forward(nullptr, B, T, x, {}, {}, y, {}, attn::Span<float>(state.data(), 31)); },
                     ATTN_E_SHAPE, "c_n has 31 elements", false, "short c_n");
        expect_error([&] { (void)rnn.forward_lengths(B, T, std::vector<int64_t>{5}, x); }, ATTN_E_SHAPE,
                     "attn::Rnn::forward_lengths: lengths has 1 element, expected 2", false, "short lengths");
        expect_error([&] { rnn.recurrent_matrix(0, 0, attn::Span<float>(y.data(), 3)); }, ATTN_E_SHAPE,
                     "attn::Rnn::recurrent_matrix: out has 3 elements", false, "short recurrent matrix");
        // Shapes the library rejects reach it: its message.
        expect_error([&] { (void)rnn.forward(0, T, x); }, ATTN_E_SHAPE, "attn_rnn_forward: batch must be > 0", true,
                     "batch 0");
        expect_error([&] { (void)rnn.forward(B, -1, x); }, ATTN_E_SHAPE, "attn_rnn_forward", true, "seq_len -1");
        expect_error([&] { (void)rnn.forward_lengths(B, T, std::vector<int64_t>{5, 6}, x); }, ATTN_E_SHAPE,
                     "attn_rnn_forward_lengths", true, "length 6 > seq_len");
        expect_error([&] { (void)rnn.cost(B, 0); }, ATTN_E_SHAPE, "attn_rnn_cost", true, "cost seq_len 0");
        expect_error([&] { (void)rnn.recurrent_matrix(2, 0); }, ATTN_E_INVALID_ARG, "attn_rnn_recurrent_matrix", true,
                     "layer 2 of 2");
        // An output overlapping an input: the library's aliasing check.
        std::vector<float> xy(x.size() + y.size());
        expect_error(
            [&] {
                rnn.forward(nullptr, B, T, attn::Span<const float>(xy.data(), x.size()), {}, {},
                            attn::Span<float>(xy.data() + 1, y.size()));
            },
            ATTN_E_INVALID_ARG, "overlaps", true, "y overlapping x");
        // c0 for a GRU: passed through, the library rejects it.
        attn::Rnn::Options g = lstm_options();
        g.cell = ATTN_CELL_GRU;
        attn::Rnn gru(g);
        expect_error([&] { gru.forward(nullptr, B, T, x, {}, state, y); }, ATTN_E_INVALID_ARG, "attn_rnn_forward",
                     true, "c0 for a GRU");
    });
}

void test_rnn_threads(void **) {
    guarded([] {
        const attn::Rnn rnn(lstm_options());
        const std::vector<float> x = data(3 * 7 * 3, 5);
        const std::vector<float> want = rnn.forward(3, 7, x);
        std::vector<float> got[2];
        std::thread threads[2];
        for (int t = 0; t < 2; t++) {
            threads[t] = std::thread([&, t] {
                attn::Workspace ws; // one per thread
                for (int i = 0; i < 3; i++) got[t] = rnn.forward(3, 7, x, &ws);
            });
        }
        for (std::thread &t : threads) t.join();
        expect_same(got[0], want, "thread 0");
        expect_same(got[1], want, "thread 1");
    });
}

// ---- Params and ParamsFile ----------------------------------------------------------------------------

void test_params(void **) {
    guarded([] {
        attn::Rnn rnn(lstm_options());
        attn::Params p = rnn.params();
        attn_params *pc = attn_rnn_params(rnn.handle());
        assert_ptr_equal(p.handle(), pc);
        assert_int_equal(p.count(), attn_params_count(pc));

        const std::vector<attn::TensorInfo> all = p.list();
        assert_int_equal(static_cast<int64_t>(all.size()), p.count());
        for (std::size_t i = 0; i < all.size(); i++) {
            attn_tensor_info info;
            expect_ok(attn_params_info(pc, static_cast<int64_t>(i), &info), "attn_params_info");
            assert_string_equal(all[i].name.c_str(), info.name);
            assert_int_equal(static_cast<int64_t>(all[i].shape.size()), info.ndim);
            for (int64_t d = 0; d < info.ndim; d++)
                assert_int_equal(all[i].shape[static_cast<std::size_t>(d)], info.shape[d]);
            assert_int_equal(all[i].count, info.count);
        }
        const attn::TensorInfo w = p.find("weight_hh_l1_reverse");
        assert_int_equal(w.shape.size(), 2);
        assert_int_equal(w.shape[0], 16);
        assert_int_equal(w.shape[1], 4);
        assert_true(p.contains("bias_ih_l0"));
        assert_false(p.contains("bias_ih_l2"));
        expect_error([&] { (void)p.find("bias_ih_l2"); }, ATTN_E_NOT_FOUND, "bias_ih_l2", true, "find unknown");

        // set / get, against attn_params_get.
        const std::vector<float> values = data(64, 3);
        p.set("weight_hh_l1_reverse", values);
        std::vector<float> back(64);
        expect_ok(attn_params_get(pc, "weight_hh_l1_reverse", back.data(), 64), "attn_params_get");
        expect_same(back, values, "Params::set");
        expect_same(p.get("weight_hh_l1_reverse"), values, "Params::get -> vector");
        std::vector<float> out(64);
        p.get("weight_hh_l1_reverse", out);
        expect_same(out, values, "Params::get(span)");

        // A NaN is refused and changes nothing; a wrong count is the library's ATTN_E_SHAPE.
        std::vector<float> nan = values;
        nan[5] = std::nanf("");
        expect_error([&] { p.set("weight_hh_l1_reverse", nan); }, ATTN_E_NUMERICAL, "attn_params_set", true,
                     "set NaN");
        expect_same(p.get("weight_hh_l1_reverse"), values, "unchanged after a refused set");
        expect_error([&] { p.set("weight_hh_l1_reverse", attn::Span<const float>(values.data(), 63)); }, ATTN_E_SHAPE,
                     "attn_params_set", true, "set 63 of 64");

        // init(seed) is attn_params_init(seed).
        attn::Rnn twin(lstm_options());
        p.init(99);
        expect_ok(attn_params_init(attn_rnn_params(twin.handle()), 99), "attn_params_init");
        for (const attn::TensorInfo &t : all) expect_same(p.get(t.name), twin.params().get(t.name), t.name.c_str());

        // save, then load into another handle, under a prefix.
        const std::string path = temp_path("params.safetensors");
        p.save(path, "enc.");
        attn::Rnn loaded(lstm_options());
        loaded.params().load(path, "enc.", ATTN_LOAD_REJECT_UNKNOWN);
        for (const attn::TensorInfo &t : all) expect_same(loaded.params().get(t.name), p.get(t.name), t.name.c_str());
        expect_error([&] { loaded.params().load(path); }, ATTN_E_NOT_FOUND, "attn_params_load", true,
                     "load without the prefix");
        expect_error([&] { loaded.params().load(temp_path("missing.safetensors")); }, ATTN_E_IO, "attn_params_load",
                     true, "load a missing file");

        // A view of nothing.
        attn::Params none;
        assert_int_equal(none.count(), 0);
        expect_error([&] { (void)none.info(0); }, ATTN_E_INVALID_ARG, "attn_params_info", true, "info on no set");

        // ParamsFile: the file's tensors, without the prefix.
        attn::ParamsFile file(path, "enc.");
        assert_true(static_cast<bool>(file));
        assert_int_equal(file.params().count(), p.count());
        for (const attn::TensorInfo &t : all) {
            const attn::TensorInfo f = file.params().find(t.name);
            assert_true(f.shape == t.shape);
            expect_same(file.params().get(t.name), p.get(t.name), t.name.c_str());
        }
        attn::ParamsFile moved(std::move(file));
        assert_false(static_cast<bool>(file)); // NOLINT(bugprone-use-after-move)
        assert_int_equal(moved.params().count(), p.count());
        attn_params_close(moved.release());
        expect_error([&] { attn::ParamsFile f(path, "dec."); }, ATTN_E_NOT_FOUND, "attn_params_open", true,
                     "ParamsFile(no tensor under the prefix)");
        std::remove(path.c_str());
    });
}

// ---- MemoryRnn --------------------------------------------------------------------------------------------

void test_memory_rnn(void **) {
    guarded([] {
        attn::MemoryRnn::Options o = attn::MemoryRnn::default_options();
        o.input_size = 3;
        o.output_size = 2;
        o.controller_size = 8;
        o.num_heads = 2;
        o.memory_slots = 6;
        o.memory_width = 4;
        attn::MemoryRnn mem(o);
        mem.params().init(3);
        const int64_t B = 2, T = 4;
        const std::vector<float> x = data(B * T * 3, 21);
        std::vector<float> y(B * T * 2), rw(B * T * 2 * 6), m(B * 6 * 4);
        std::vector<float> y_c(y.size()), rw_c(rw.size()), m_c(m.size());
        attn::Workspace ws;
        mem.forward(&ws, B, T, x, y, rw, m);
        expect_ok(attn_memrnn_forward(mem.handle(), nullptr, B, T, x.data(), y_c.data(), rw_c.data(), m_c.data()),
                  "attn_memrnn_forward");
        expect_same(y, y_c, "MemoryRnn::forward y");
        expect_same(rw, rw_c, "MemoryRnn::forward read_weights");
        expect_same(m, m_c, "MemoryRnn::forward memory_out");
        expect_same(mem.forward(B, T, x), y_c, "MemoryRnn::forward -> y");

        const attn::Cost cost = mem.cost(B, T);
        attn_cost cost_c;
        expect_ok(attn_memrnn_cost(mem.handle(), B, T, &cost_c), "attn_memrnn_cost");
        assert_int_equal(cost.flops, cost_c.flops);
        assert_int_equal(cost.params, cost_c.params);
        assert_int_equal(cost.workspace_bytes, cost_c.workspace_bytes);
        assert_int_equal(mem.options().memory_slots, 6);

        expect_error([&] { mem.forward(nullptr, B, T, x, y, attn::Span<float>(rw.data(), 10)); }, ATTN_E_SHAPE,
                     "attn::MemoryRnn::forward: read_weights has 10 elements", false, "short read_weights");
        expect_error([&] { (void)mem.forward(B, T + 1, x); }, ATTN_E_SHAPE, "attn::MemoryRnn::forward: x has", false,
                     "x of another seq_len");
        expect_error([&] { (void)mem.forward(0, T, x); }, ATTN_E_SHAPE, "attn_memrnn_forward", true, "batch 0");
    });
}

// ---- MultiheadAttention -------------------------------------------------------------------------------------

void test_mha(void **) {
    guarded([] {
        attn::MultiheadAttention::Options o = attn::MultiheadAttention::default_options();
        o.embed_dim = 8;
        o.num_heads = 2;
        o.kdim = 6;
        o.vdim = 5;
        attn::MultiheadAttention mha(o);
        mha.params().init(4);
        const int64_t B = 2, L = 3, S = 4, E = 8;
        const std::vector<float> q = data(B * L * E, 31), k = data(B * S * 6, 32), v = data(B * S * 5, 33);
        const std::vector<uint8_t> mask = {0, 0, 1, 0, 1, 0, 0, 0};
        std::vector<float> out(B * L * E), out_c(out.size());
        attn::Workspace ws;
        mha.forward(&ws, B, L, S, q, k, v, mask, out);
        expect_ok(attn_mha_forward(mha.handle(), nullptr, B, L, S, q.data(), k.data(), v.data(), mask.data(),
                                   out_c.data()),
                  "attn_mha_forward");
        expect_same(out, out_c, "MultiheadAttention::forward");
        expect_same(mha.forward(B, L, S, q, k, v, mask, &ws), out_c, "MultiheadAttention::forward -> out");
        expect_ok(attn_mha_forward(mha.handle(), nullptr, B, L, S, q.data(), k.data(), v.data(), nullptr,
                                   out_c.data()),
                  "attn_mha_forward");
        expect_same(mha.forward(B, L, S, q, k, v), out_c, "MultiheadAttention::forward -> out, no mask");

        std::vector<float> wts_c(B * 2 * L * S);
        expect_ok(attn_mha_attention_matrix(mha.handle(), nullptr, B, L, S, q.data(), k.data(), v.data(), mask.data(),
                                            wts_c.data()),
                  "attn_mha_attention_matrix");
        expect_same(mha.attention_matrix(B, L, S, q, k, v, mask), wts_c, "attention_matrix -> weights");
        std::vector<float> wts(wts_c.size());
        mha.attention_matrix(nullptr, B, L, S, q, k, v, mask, wts);
        expect_same(wts, wts_c, "attention_matrix");

        const attn::Cost cost = mha.cost(B, L, S);
        attn_cost cost_c;
        expect_ok(attn_mha_cost(mha.handle(), B, L, S, &cost_c), "attn_mha_cost");
        assert_int_equal(cost.flops, cost_c.flops);
        assert_int_equal(cost.workspace_bytes, cost_c.workspace_bytes);
        assert_int_equal(mha.options().kdim, 6);

        // Self-attention: kdim = vdim = E by default, one tensor three times.
        attn::MultiheadAttention::Options so = attn::MultiheadAttention::default_options();
        so.embed_dim = 8;
        so.num_heads = 2;
        attn::MultiheadAttention self(so);
        expect_ok(attn_mha_forward(self.handle(), nullptr, B, L, L, q.data(), q.data(), q.data(), nullptr,
                                   out_c.data()),
                  "attn_mha_forward (self)");
        expect_same(self.forward(B, L, L, q, q, q), out_c, "self-attention");

        expect_error([&] { (void)mha.forward(B, L, S, q, v, v); }, ATTN_E_SHAPE,
                     "attn::MultiheadAttention::forward: key has 40 elements, expected 48", false, "key of vdim columns");
        expect_error([&] { (void)mha.forward(B, L, S, q, k, v, std::vector<uint8_t>(3)); }, ATTN_E_SHAPE,
                     "key_padding_mask has 3 elements, expected 8", false, "short mask");
        expect_error([&] { mha.attention_matrix(nullptr, B, L, S, q, k, v, {}, attn::Span<float>(wts.data(), 47)); },
                     ATTN_E_SHAPE, "attention_matrix: weights has 47 elements, expected 48", false, "short weights");
        expect_error([&] { (void)mha.forward(B, 0, S, q, k, v); }, ATTN_E_SHAPE, "attn_mha_forward", true,
                     "tgt_len 0");
    });
}

// ---- Perceiver --------------------------------------------------------------------------------------------

void test_perceiver(void **) {
    guarded([] {
        attn::Perceiver::Options o = attn::Perceiver::default_options();
        o.input_channels = 3;
        o.input_axis = 2;
        o.num_freq_bands = 2;
        o.max_freq = 4.0;
        o.depth = 2;
        o.num_latents = 4;
        o.latent_dim = 8;
        o.cross_dim_head = 4;
        o.latent_heads = 2;
        o.latent_dim_head = 4;
        o.num_classes = 3;
        attn::Perceiver per(o);
        per.params().init(5);
        const int64_t B = 2;
        const std::array<int64_t, 2> axes = {3, 5};
        const std::vector<float> d = data(B * 15 * 3, 41);
        std::vector<uint8_t> mask(B * 15, 0);
        mask[4] = 1;
        std::vector<float> out(B * 3), out_c(out.size());
        attn::Workspace ws;
        per.forward(&ws, B, axes, d, mask, out);
        expect_ok(attn_perceiver_forward(per.handle(), nullptr, B, axes.data(), d.data(), mask.data(), out_c.data()),
                  "attn_perceiver_forward");
        expect_same(out, out_c, "Perceiver::forward");
        expect_same(per.forward(B, axes, d, mask, &ws), out_c, "Perceiver::forward -> out");

        const attn::Cost cost = per.cost(B, axes);
        attn_cost cost_c;
        expect_ok(attn_perceiver_cost(per.handle(), B, axes.data(), &cost_c), "attn_perceiver_cost");
        assert_int_equal(cost.flops, cost_c.flops);
        assert_int_equal(cost.workspace_bytes, cost_c.workspace_bytes);

        // Without a head the output is the latent array.
        o.num_classes = 0;
        attn::Perceiver latents(o);
        assert_int_equal(latents.forward(B, axes, d).size(), B * 4 * 8);

        expect_error([&] { (void)per.forward(B, std::vector<int64_t>{15}, d); }, ATTN_E_SHAPE,
                     "attn::Perceiver::forward: axis_sizes has 1 element, expected 2", false, "one axis of two");
        expect_error([&] { (void)per.cost(B, std::vector<int64_t>{3, 5, 1}); }, ATTN_E_SHAPE,
                     "attn::Perceiver::cost: axis_sizes has 3 elements", false, "cost, three axes");
        expect_error([&] { (void)per.forward(B, std::vector<int64_t>{5, 5}, d); }, ATTN_E_SHAPE,
                     "attn::Perceiver::forward: data has 90 elements, expected 150", false, "data of other axes");
        expect_error([&] { (void)per.forward(B, std::vector<int64_t>{3, 0}, d); }, ATTN_E_SHAPE,
                     "attn_perceiver_forward", true, "axis size 0");
    });
}

// ---- analysis -------------------------------------------------------------------------------------------

void test_analysis(void **) {
    guarded([] {
        const int64_t rows = 7, cols = 5;
        const std::vector<float> a = data(rows * cols, 51);
        std::vector<double> sigma_c(5);
        expect_ok(attn_singular_values(a.data(), rows, cols, sigma_c.data()), "attn_singular_values");
        assert_true(same_bits(attn::singular_values(a, rows, cols), sigma_c));
        std::vector<double> sigma(5);
        attn::singular_values(a, rows, cols, sigma);
        assert_true(same_bits(sigma, sigma_c));

        attn_rank_report report_c;
        expect_ok(attn_rank_analyze(a.data(), rows, cols, &report_c), "attn_rank_analyze");
        const attn::RankReport report = attn::rank_analyze(a, rows, cols);
        assert_memory_equal(&report, &report_c, sizeof report);

        double error_c = 0;
        expect_ok(attn_lowrank_error(a.data(), rows, cols, 2, &error_c), "attn_lowrank_error");
        assert_true(attn::lowrank_error(a, rows, cols, 2) == error_c);

        std::vector<float> u_c(rows * 2), v_c(2 * cols);
        expect_ok(attn_lowrank_factors(a.data(), rows, cols, 2, u_c.data(), v_c.data()), "attn_lowrank_factors");
        const attn::LowRankFactors f = attn::lowrank_factors(a, rows, cols, 2);
        expect_same(f.u, u_c, "lowrank_factors u");
        expect_same(f.v, v_c, "lowrank_factors v");
        std::vector<float> u(u_c.size()), v(v_c.size());
        attn::lowrank_factors(a, rows, cols, 2, u, v);
        expect_same(u, u_c, "lowrank_factors(span) u");
        expect_same(v, v_c, "lowrank_factors(span) v");

        expect_error([&] { (void)attn::singular_values(a, rows, cols + 1); }, ATTN_E_SHAPE,
                     "attn::singular_values: a has 35 elements, expected 42", false, "a of another shape");
        expect_error([&] { attn::singular_values(a, rows, cols, attn::Span<double>(sigma.data(), 4)); },
                     ATTN_E_SHAPE, "sigma has 4 elements, expected 5", false, "short sigma");
        expect_error([&] { (void)attn::singular_values(a, 0, cols); }, ATTN_E_SHAPE, "attn_singular_values", true,
                     "rows 0");
        expect_error([&] { (void)attn::rank_analyze(a, -1, cols); }, ATTN_E_SHAPE, "attn_rank_analyze", true,
                     "rows -1");
        expect_error([&] { (void)attn::lowrank_error(a, rows, cols, -1); }, ATTN_E_INVALID_ARG, "attn_lowrank_error",
                     true, "rank -1");
        expect_error([&] { (void)attn::lowrank_factors(a, rows, cols, 0); }, ATTN_E_INVALID_ARG,
                     "attn_lowrank_factors", true, "rank 0");
        expect_error([&] { (void)attn::lowrank_factors(a, rows, cols, 6); }, ATTN_E_INVALID_ARG,
                     "attn_lowrank_factors", true, "rank 6 > min(rows, cols)");
        expect_error([&] { attn::lowrank_factors(a, rows, cols, 2, v, u); }, ATTN_E_SHAPE,
                     "attn::lowrank_factors: u has 10 elements, expected 14", false, "u and v swapped");
        std::vector<float> bad = a;
        bad[7] = std::nanf("");
        expect_error([&] { (void)attn::rank_analyze(bad, rows, cols); }, ATTN_E_NUMERICAL, "attn_rank_analyze", true,
                     "NaN entry");
    });
}

} // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_span),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_move_and_release),
        cmocka_unit_test(test_rnn),
        cmocka_unit_test(test_rnn_errors),
        cmocka_unit_test(test_rnn_threads),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_memory_rnn),
        cmocka_unit_test(test_mha),
        cmocka_unit_test(test_perceiver),
        cmocka_unit_test(test_analysis),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
