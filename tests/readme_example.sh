#!/usr/bin/env bash
# README example test (registered by tests/readme_example.cmake). Checks that README.md's section
# "Using it from C" is true, by doing what it says:
#   1. its C block is examples/lstm.c, byte for byte; its shell block is exactly the commands below;
#   2. install this build into a fresh temporary prefix (stands in for /opt/attn) and run the
#      README's commands there: PKG_CONFIG_PATH, the cc line (rpath), ./lstm lstm.safetensors;
#   3. the checkpoint comes from the README's Python block, run verbatim with /usr/bin/python3 and
#      PyTorch; as the `safetensors` package is not installed here, a stand-in module provides
#      safetensors.torch.save_file through the writer of tests/python/attn_ffi.py;
#   4. the program's output matches PyTorch's on the same input to 1e-4;
#   5. with a checkpoint of another hidden size the program exits nonzero and prints exactly the
#      README's sample error.
#
# usage: readme_example.sh BUILD_DIR C_COMPILER CMAKE_COMMAND PYTHON SANITIZERS
# SANITIZERS: the library's -fsanitize= list ("address,undefined", "thread") or "" for none; the
# example is then compiled with it and Python runs with its runtime preloaded (as
# tests/python.cmake does).
# Set ATTN_KEEP_README_TMP=1 to keep the temporary directory for inspection.
set -euo pipefail

if [[ $# -ne 5 ]]; then
    echo "usage: $0 BUILD_DIR C_COMPILER CMAKE_COMMAND PYTHON SANITIZE" >&2
    exit 2
fi
build_dir=$1
compiler=$2
cmake=$3
python=$4
sanitize=$5
src_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readme=$src_root/README.md

san_flags=()
py_env=()
case "$sanitize" in
    "") ;;
    thread) san_flags=(-fsanitize=thread -fno-omit-frame-pointer) ;;
    *)
        san_flags=("-fsanitize=$sanitize" -fno-omit-frame-pointer)
        py_env=("LD_PRELOAD=$("$compiler" -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0)
        ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/attn-readme-test.XXXXXX")
cleanup() {
    if [[ ${ATTN_KEEP_README_TMP:-0} == 1 ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
die() {
    echo "readme_example test FAILED: $*" >&2
    exit 1
}

# block LANG [N]: the N-th (default 1st) ```LANG block of README.md's section "## Using it from C".
block() {
    awk -v lang="$1" -v want="${2:-1}" '
        /^## / { in_section = ($0 == "## Using it from C") }
        in_section && inside && /^```$/ { inside = 0; next }
        in_section && inside && n == want { print }
        in_section && $0 == "```" lang { inside = 1; n++ }' "$readme"
}

# The README's shell block, line for line; /opt/attn stands for the install prefix.
# shellcheck disable=SC2016 # kept unexpanded: they are run with eval
readme_commands=(
    'cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j && cmake --install build --prefix /opt/attn'
    'export PKG_CONFIG_PATH=/opt/attn/lib/pkgconfig'
    'cc examples/lstm.c -o lstm $(pkg-config --cflags --libs attn) -Wl,-rpath,$(pkg-config --variable=libdir attn)'
    './lstm lstm.safetensors'
)

step "README.md agrees with examples/lstm.c and with the commands this test runs"
diff -u <(block c) "$src_root/examples/lstm.c" || die "README's C block differs from examples/lstm.c"
diff -u <(block sh) <(printf '%s\n' "${readme_commands[@]}") ||
    die "README's shell block differs from the commands of this test"
block python >"$tmp/readme_save.py"
[[ -s $tmp/readme_save.py ]] || die "README has no Python block in 'Using it from C'"
block text >"$tmp/readme_error.txt"
[[ $(wc -l <"$tmp/readme_error.txt") -eq 1 ]] || die "README needs a one-line sample error (a text block)"
echo "ok"

work=$tmp/work
prefix=$tmp/opt-attn
mkdir -p "$work"
ln -s "$src_root/examples" "$work/examples"
cd "$work"

step "install (README: ${readme_commands[0]##*&& })"
"$cmake" --install "$build_dir" --prefix "$prefix" >/dev/null || die "cmake --install failed"

step "README: ${readme_commands[1]}"
eval "${readme_commands[1]//\/opt\/attn/$prefix}"
[[ -f $PKG_CONFIG_PATH/attn.pc ]] || die "attn.pc is not in $PKG_CONFIG_PATH: $(find "$prefix" -name attn.pc)"
libdir=$(pkg-config --variable=libdir attn)
[[ $libdir == "$prefix"/* ]] || die "pkg-config found an attn.pc outside $prefix (libdir $libdir)"

step "README: ${readme_commands[2]}"
# The README's cc, with this build's compiler and strict warnings (and the sanitizer if the library has it).
cc() { "$compiler" -std=c11 -Wall -Wextra -Wpedantic -Werror "${san_flags[@]}" "$@"; }
eval "${readme_commands[2]}" || die "compiling examples/lstm.c as the README says"
runpath=$(readelf -d lstm | grep -E 'RUNPATH|RPATH' || true)
[[ $runpath == *"[$libdir]"* ]] || die "lstm has no rpath to $libdir: $runpath"

step "checkpoint: the README's Python block, run by $python with PyTorch"
cat "$tmp/readme_save.py"
# reference.py HIDDEN: runs the README's Python block (with LSTM hidden size HIDDEN) in the current
# directory, then prints what examples/lstm.c prints, computed by PyTorch.
cat >"$tmp/reference.py" <<'EOF'
import sys, types
import numpy as np
import torch
import attn_ffi

def save_file(tensors, filename, metadata=None):  # safetensors.torch.save_file
    attn_ffi.write_safetensors(filename, {k: v.detach().contiguous().numpy() for k, v in tensors.items()}, metadata)

sys.modules["safetensors"] = types.ModuleType("safetensors")
sys.modules["safetensors.torch"] = sys.modules["safetensors"].torch = types.ModuleType("safetensors.torch")
sys.modules["safetensors.torch"].save_file = save_file

code = open(sys.argv[1]).read()
hidden = sys.argv[2]
if hidden != "64":
    assert "LSTM(32, 64," in code, "the README's Python block no longer builds LSTM(32, 64, ...)"
    code = code.replace("LSTM(32, 64,", "LSTM(32, %s," % hidden)
torch.manual_seed(0)
scope = {}
exec(compile(code, "README.md", "exec"), scope)
B, T, I, H = 4, 50, 32, 64
x = ((np.arange(B * T * I) % 11 - 5) / 8).astype(np.float32).reshape(B, T, I)
with torch.no_grad():
    y = scope["lstm"](torch.from_numpy(x))[0].numpy()
print("y[0, %d, 0:4] = %s" % (T - 1, " ".join("%.6f" % v for v in y[0, T - 1, :4])))
print("mean(y) = %.6f" % y.astype(np.float64).mean())
EOF
run_python() {
    env "${py_env[@]}" ATTN_LIB="$libdir/libattn.so.1" PYTHONPATH="$src_root/tests/python" \
        PYTHONDONTWRITEBYTECODE=1 "$python" "$tmp/reference.py" "$tmp/readme_save.py" "$@"
}
run_python 64 >"$tmp/torch.txt" || die "the README's Python block failed"
[[ -s lstm.safetensors ]] || die "the README's Python block did not write lstm.safetensors"

step "README: ${readme_commands[3]}"
unset LD_LIBRARY_PATH # the rpath alone must find libattn.so.1
status=0
eval "${readme_commands[3]}" >"$tmp/lstm.txt" 2>"$tmp/lstm.err" || status=$?
cat "$tmp/lstm.txt" "$tmp/lstm.err"
[[ $status -eq 0 ]] || die "./lstm exited with status $status"
echo "PyTorch:"
cat "$tmp/torch.txt"
"$python" - "$tmp/lstm.txt" "$tmp/torch.txt" <<'EOF' || die "the example's output differs from PyTorch's"
import re, sys
lines = [open(p).read().splitlines() for p in sys.argv[1:]]
assert len(lines[0]) == len(lines[1]) == 2, lines
for ours, ref in zip(*lines):
    label = ours.split("=")[0]
    assert label == ref.split("=")[0], (ours, ref)
    a, b = ([float(v) for v in s.split("=")[1].split()] for s in (ours, ref))
    assert len(a) == len(b) and all(abs(p - q) <= 1e-4 for p, q in zip(a, b)), (ours, ref)
print("agrees with PyTorch to 1e-4")
EOF

step "a checkpoint of LSTM(32, 48, ...) stops the program with the README's sample error"
mkdir "$work/wrong"
ln -s ../lstm "$work/wrong/lstm"
cd "$work/wrong"
run_python 48 >/dev/null || die "writing the wrong checkpoint"
status=0
eval "${readme_commands[3]}" >"$tmp/wrong.txt" 2>"$tmp/wrong.err" || status=$?
cat "$tmp/wrong.err"
[[ $status -ne 0 ]] || die "./lstm exited 0 with a wrong checkpoint"
[[ ! -s $tmp/wrong.txt ]] || die "./lstm printed results after a failed load: $(cat "$tmp/wrong.txt")"
diff -u "$tmp/readme_error.txt" "$tmp/wrong.err" || die "stderr differs from the README's sample error"

step "readme_example test passed"
