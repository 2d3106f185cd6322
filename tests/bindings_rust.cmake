# Rust bindings test: `cargo test` of the crate in bindings/rust against this build's libattn:
# forward of every family against float64 references and documented invariants, parameters,
# analysis, error capture, two threads on one handle, and the check that src/sys.rs declares
# exactly the headers' functions, structs (layouts from the C compiler) and constants.
# Included from tests/CMakeLists.txt.
#
# Debian's toolchain (/usr/bin/cargo 1.65, /usr/bin/rustc 1.63): CI machines have no other, and a
# newer rustup toolchain earlier on PATH must not be picked up, so rustc and rustdoc are taken
# from the directory of ATTN_TEST_CARGO. Without it the test is skipped (exit 77). The crate has
# no dependencies (--offline); cargo's output, CARGO_HOME included, stays in this build directory.

if(ATTN_SANITIZERS)
  # rustc links no sanitizer runtime, so the test binary could not load an instrumented libattn;
  # the C tests cover the library in these builds.
  message(STATUS "rust bindings test: not registered in the sanitizer build (${ATTN_SANITIZERS})")
  return()
endif()

set(ATTN_TEST_CARGO /usr/bin/cargo CACHE FILEPATH
  "cargo for the Rust bindings test (rustc and rustdoc are taken from its directory)")
get_filename_component(_attn_rust_bin "${ATTN_TEST_CARGO}" DIRECTORY)

add_test(NAME bindings_rust
  COMMAND sh -c [=[
for tool in "$1" "$RUSTC" "$RUSTDOC"; do
  if [ ! -x "$tool" ]; then
    echo "bindings_rust: $tool not found (Debian: apt-get install cargo); skipped"
    exit 77
  fi
done
exec "$@"
]=] sh ${ATTN_TEST_CARGO} test --offline --manifest-path ${PROJECT_SOURCE_DIR}/bindings/rust/Cargo.toml)
set_tests_properties(bindings_rust PROPERTIES
  ENVIRONMENT "ATTN_LIB_DIR=$<TARGET_FILE_DIR:attn>;ATTN_INCLUDE_DIR=${PROJECT_SOURCE_DIR}/include;CARGO_TARGET_DIR=${CMAKE_CURRENT_BINARY_DIR}/bindings_rust/target;CARGO_HOME=${CMAKE_CURRENT_BINARY_DIR}/bindings_rust/cargo-home;RUSTC=${_attn_rust_bin}/rustc;RUSTDOC=${_attn_rust_bin}/rustdoc;CC=${CMAKE_C_COMPILER};CARGO_TERM_COLOR=never;ATTN_TEST_TMPDIR=${CMAKE_CURRENT_BINARY_DIR}"
  LABELS "bindings;rust"
  SKIP_RETURN_CODE 77
  # A cold build of the crate and its tests takes about 15 s on two cores.
  TIMEOUT 600)
