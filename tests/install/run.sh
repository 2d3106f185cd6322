#!/usr/bin/env bash
# Install test driver (registered by tests/install.cmake): installs a built libattn into a fresh
# temporary prefix, checks that every public header (the C headers and the C++ wrappers attn.hpp)
# is there, and builds and runs consumers against the installation:
#   (a) C: tests/install/hello.c with `cc $(pkg-config --cflags --libs attn)`, run with
#       LD_LIBRARY_PATH;
#   (b) C: the same program as a CMake project using find_package(attn) and attn::attn
#       (tests/install/cmake), run through its build RPATH;
#   (c) C++17: tests/install/hello.cpp (attn/attn.hpp: an LSTM forward, errors caught as
#       attn::Error) as a C++-only CMake project using find_package(attn 1.3) (tests/install/cpp);
#   (d) C++17: the same program with `c++ -std=c++17 $(pkg-config --cflags --libs attn)`;
# and checks that find_package(attn 2.0) is refused (SameMajorVersion).
# libattn is built as a shared library only (the top-level CMakeLists.txt has no static option),
# so there is no static-linking consumer.
#
# usage: run.sh BUILD_DIR C_COMPILER CMAKE_COMMAND SANITIZERS CXX_COMPILER
# SANITIZERS: the library's -fsanitize= list ("address,undefined", "thread") or "" for none; every
# consumer is built with it too (the sanitizer's runtime has to come first in the process).
# CXX_COMPILER: a C++17 compiler for (c) and (d); "" when CMake found none (the C++ steps are then
# reported as skipped).
# Set ATTN_KEEP_INSTALL_TMP=1 to keep the temporary directory for inspection.
set -euo pipefail

if [[ $# -ne 5 ]]; then
    echo "usage: $0 BUILD_DIR C_COMPILER CMAKE_COMMAND SANITIZE CXX_COMPILER" >&2
    exit 2
fi
build_dir=$1
cc=$2
cmake=$3
sanitize=$4
cxx=$5
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src_root=$(cd "$here/../.." && pwd)

san_flags=()
[[ -z $sanitize ]] || san_flags=("-fsanitize=$sanitize" -fno-omit-frame-pointer)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/attn-install-test.XXXXXX")
cleanup() {
    if [[ ${ATTN_KEEP_INSTALL_TMP:-0} == 1 ]]; then
        echo "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
prefix=$tmp/prefix

step() { printf '\n== %s\n' "$*"; }
die() {
    echo "install test FAILED: $*" >&2
    exit 1
}

step "cmake --install $build_dir --prefix $prefix"
"$cmake" --install "$build_dir" --prefix "$prefix" || die "cmake --install failed"

# Every public header is installed, the C++ wrappers included, and nothing else.
for h in "$src_root"/include/attn/*.h "$src_root"/include/attn/*.hpp; do
    cmp -s "$h" "$prefix/include/attn/$(basename "$h")" || die "header $(basename "$h") not installed (or differs)"
done
[[ -f $prefix/include/attn/attn.hpp ]] || die "the C++ wrappers attn/attn.hpp are not installed"
n_installed=$(find "$prefix/include/attn" -type f | wc -l)
n_source=$(find "$src_root/include/attn" -maxdepth 1 -type f \( -name '*.h' -o -name '*.hpp' \) | wc -l)
[[ $n_installed -eq $n_source ]] || die "$n_installed files installed in include/attn, expected $n_source"

# GNUInstallDirs may choose lib/ or lib/<multiarch>/: find where attn.pc went.
pc_file=$(find "$prefix" -name attn.pc -path '*/pkgconfig/*' | head -n 1)
[[ -n $pc_file ]] || die "attn.pc not installed under $prefix"
PKG_CONFIG_PATH=$(dirname "$pc_file")
export PKG_CONFIG_PATH
# Make sure nothing from the system's pkg-config search path can stand in for ours.
export PKG_CONFIG_LIBDIR=$PKG_CONFIG_PATH

step "pkg-config ($pc_file)"
version=$(pkg-config --modversion attn) || die "pkg-config cannot read attn.pc"
cflags=$(pkg-config --cflags attn)
libs=$(pkg-config --libs attn)
static_libs=$(pkg-config --static --libs attn)
libdir=$(pkg-config --variable=libdir attn)
echo "version: $version"
echo "cflags:  $cflags"
echo "libs:    $libs"
echo "static:  $static_libs"
[[ $libdir == "$prefix"/* ]] || die "attn.pc libdir $libdir is not inside the install prefix $prefix"
[[ -e $libdir/libattn.so.1 ]] || die "libattn.so.1 (the SONAME link) missing in $libdir"
for lib in -lopenblas -llapacke -lyajl; do
    [[ " $static_libs " == *" $lib "* ]] || die "Libs.private lacks $lib"
done

step "(a) pkg-config consumer"
# shellcheck disable=SC2086 # pkg-config output is a list of words by design
"$cc" -std=c11 -Wall -Wextra -Werror "${san_flags[@]}" -DATTN_EXPECTED_VERSION="\"$version\"" \
    "$here/hello.c" -o "$tmp/hello_pkgconfig" $cflags $libs -lm || die "compiling hello.c with pkg-config flags"
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$tmp/hello_pkgconfig" ||
    die "hello (pkg-config build) exited with status $?"

step "(b) CMake consumer: find_package(attn) + attn::attn"
cmake_args=(-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release)
if [[ ${#san_flags[@]} -gt 0 ]]; then
    cmake_args+=(-DCMAKE_C_FLAGS="${san_flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san_flags[*]}")
fi
"$cmake" -S "$here/cmake" -B "$tmp/consumer" "${cmake_args[@]}" || die "configuring the CMake consumer"
"$cmake" --build "$tmp/consumer" || die "building the CMake consumer"
# No LD_LIBRARY_PATH: CMake's build RPATH must point at the installed library.
"$tmp/consumer/hello_cmake" || die "hello (CMake build) exited with status $?"

if [[ -z $cxx ]]; then
    step "(c), (d) C++ consumers: SKIPPED (CMake found no C++ compiler)"
else
    step "(c) C++17 CMake consumer: find_package(attn 1.3) + attn::attn, attn/attn.hpp"
    cxx_args=(-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release)
    if [[ ${#san_flags[@]} -gt 0 ]]; then
        cxx_args+=(-DCMAKE_CXX_FLAGS="${san_flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san_flags[*]}")
    fi
    "$cmake" -S "$here/cpp" -B "$tmp/consumer-cpp" "${cxx_args[@]}" || die "configuring the C++ consumer"
    "$cmake" --build "$tmp/consumer-cpp" || die "building the C++ consumer"
    "$tmp/consumer-cpp/hello_cpp" || die "hello_cpp (CMake build) exited with status $?"

    step "(d) C++17 pkg-config consumer"
    # shellcheck disable=SC2086 # pkg-config output is a list of words by design
    "$cxx" -std=c++17 -Wall -Wextra -Wpedantic -Werror "${san_flags[@]}" -DATTN_EXPECTED_VERSION="\"$version\"" \
        "$here/hello.cpp" -o "$tmp/hello_cpp_pkgconfig" $cflags $libs || die "compiling hello.cpp with pkg-config flags"
    LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$tmp/hello_cpp_pkgconfig" ||
        die "hello_cpp (pkg-config build) exited with status $?"
fi

step "find_package(attn 2.0) must be refused (SameMajorVersion)"
if "$cmake" -S "$here/cmake" -B "$tmp/consumer-v2" "${cmake_args[@]}" -DATTN_REQUIRED_VERSION=2.0 \
    >"$tmp/v2.log" 2>&1; then
    cat "$tmp/v2.log"
    die "find_package(attn 2.0) accepted version $version"
fi
grep -q 'considered but not accepted' "$tmp/v2.log" ||
    { cat "$tmp/v2.log"; die "find_package(attn 2.0) failed for another reason than the version"; }
echo "refused, as expected"

step "install test passed"
