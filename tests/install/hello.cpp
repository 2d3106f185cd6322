/*
 * hello.cpp: a C++17 consumer of an *installed* libattn through its header-only wrappers
 * (attn/attn.hpp), built with find_package(attn) (tests/install/cpp) and with pkg-config. It runs
 * an LSTM forward (every tensor given, and the returning overload), and checks that failures
 * arrive as attn::Error: one from the library (attn_last_error()'s text) and one from the
 * wrapper's element-count check. Exit status 0 on success; the first failed check is printed.
 */
#include <attn/attn.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

namespace {

int failed(const char *what) {
    std::fprintf(stderr, "hello_cpp: %s\n", what);
    return 1;
}

int check_version() {
    std::printf("libattn %s (header %d.%d.%d), C++ wrappers\n", attn::version_string(), ATTN_VERSION_MAJOR,
                ATTN_VERSION_MINOR, ATTN_VERSION_PATCH);
    if (attn::version_number() / 10000 != ATTN_VERSION_MAJOR) return failed("the loaded library's major differs");
#ifdef ATTN_EXPECTED_VERSION
    if (std::strcmp(attn::version_string(), ATTN_EXPECTED_VERSION) != 0)
        return failed("the library's version differs from the package metadata's");
#endif
    return 0;
}

int run_lstm() {
    const int64_t batch = 2, steps = 3, input = 4, hidden = 8;
    attn::Rnn::Options options = attn::Rnn::default_options();
    options.cell = ATTN_CELL_LSTM;
    options.input_size = input;
    options.hidden_size = hidden;
    attn::Rnn lstm(options);
    lstm.params().init(1);

    std::vector<float> x(static_cast<std::size_t>(batch * steps * input));
    for (std::size_t i = 0; i < x.size(); i++) x[i] = static_cast<float>(static_cast<int>(i % 7) - 3) * 0.25f;
    std::vector<float> y(static_cast<std::size_t>(batch * steps * hidden));
    std::vector<float> h_n(static_cast<std::size_t>(batch * hidden)), c_n(h_n.size());
    attn::Workspace ws;
    lstm.forward(&ws, batch, steps, x, {}, {}, y, h_n, c_n);

    for (float v : y)
        if (!std::isfinite(v) || std::fabs(v) >= 1.0f) return failed("an LSTM output outside (-1, 1)");
    for (int64_t b = 0; b < batch; b++) // h_n is the last step of y (one layer, one direction)
        if (std::memcmp(&h_n[static_cast<std::size_t>(b * hidden)],
                        &y[static_cast<std::size_t>((b * steps + steps - 1) * hidden)], sizeof(float) * hidden) != 0)
            return failed("h_n differs from the last step of y");
    if (lstm.forward(batch, steps, x) != y) return failed("forward returning y differs from forward into y");
    if (ws.size() != lstm.cost(batch, steps).workspace_bytes) return failed("workspace size differs from cost()");

    attn::Rnn moved = std::move(lstm);
    if (lstm || !moved) return failed("a move did not transfer the handle");
    std::printf("lstm forward ok: y[0] = %.6f\n", static_cast<double>(y[0]));
    return 0;
}

int check_errors() {
    attn::Rnn::Options bad = attn::Rnn::default_options(); // input_size and hidden_size left 0
    try {
        attn::Rnn rnn(bad);
        return failed("creating an RNN of sizes 0 did not throw");
    } catch (const attn::Error &e) {
        if (e.status() != ATTN_E_INVALID_ARG) return failed("wrong status for sizes 0");
        if (std::strcmp(e.what(), attn_last_error()) != 0 || e.what()[0] == '\0')
            return failed("attn::Error::what() is not attn_last_error()");
        std::printf("expected error: %s\n", e.what());
    }
    attn::Rnn::Options options = attn::Rnn::default_options();
    options.input_size = 4;
    options.hidden_size = 8;
    const attn::Rnn rnn(options);
    try {
        (void)rnn.forward(2, 3, std::vector<float>(5)); // x needs 2 * 3 * 4 floats
        return failed("a short x did not throw");
    } catch (const attn::Error &e) {
        if (e.status() != ATTN_E_SHAPE) return failed("wrong status for a short x");
        std::printf("expected error: %s\n", e.what());
    }
    return 0;
}

} // namespace

int main() {
    if (check_version() != 0 || run_lstm() != 0 || check_errors() != 0) return 1;
    std::printf("hello_cpp: all checks passed\n");
    return 0;
}
