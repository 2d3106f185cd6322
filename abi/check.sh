#!/usr/bin/env bash
# ABI check of libattn against the committed baseline abi/libattn.so.1.abi (libabigail).
#
#   abi/check.sh LIBRARY [HEADERS_DIR]            compare a built libattn.so with the baseline
#   abi/check.sh --update LIBRARY [HEADERS_DIR]   rewrite the baseline from LIBRARY
#
# LIBRARY must carry debug info (build with -g, e.g. CMAKE_BUILD_TYPE=RelWithDebInfo); this
# script builds nothing. HEADERS_DIR defaults to include/attn of this repository: only types and
# functions reachable from the public headers are part of the ABI.
# Exit status: 0 when the ABI is unchanged or only compatibly extended (new functions, fields
# appended to an options struct: a note is printed), 1 on an incompatible change (a removed
# function or symbol, a changed type, struct layout or signature) or any error.
#
# The baseline is the ABI of the last release (libattn 1.2.0): regenerate it with --update from the
# library of a release when that release is made, and commit it with the release's frozen symbol
# list abi/symbols-<major>.<minor>.txt (docs/abi.md, "Symbol versions").
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
baseline=$here/libattn.so.1.abi
suppressions=$here/suppressions.abignore

usage() {
    sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 1
}
die() {
    echo "abi/check.sh: $*" >&2
    exit 1
}

update=0
if [[ ${1:-} == --update ]]; then
    update=1
    shift
fi
[[ $# -ge 1 && $# -le 2 ]] || usage
library=$1
headers=${2:-$here/../include/attn}

for tool in abidw abidiff readelf; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install abigail-tools binutils)"
done
[[ -f $library ]] || die "no library at $library"
[[ -d $headers ]] || die "no headers directory at $headers"
headers=$(cd "$headers" && pwd)
readelf -S -W "$library" | grep -q '\.debug_info' ||
    die "$library has no debug info; build it with -g (CMAKE_BUILD_TYPE=RelWithDebInfo)"

if [[ $update == 1 ]]; then
    # Paths (corpus, compilation dir, header locations) are left out so the baseline does not
    # depend on where the repository was checked out or built.
    abidw --headers-dir "$headers" --no-corpus-path --no-comp-dir-path --short-locs \
        --out-file "$baseline.tmp" "$library" || die "abidw failed on $library"
    mv "$baseline.tmp" "$baseline"
    echo "abi/check.sh: baseline rewritten: $baseline"
    echo "  $(grep -c '<elf-symbol ' "$baseline") ELF symbols, $(grep -c '<function-decl ' "$baseline") function declarations"
    exit 0
fi

[[ -f $baseline ]] || die "no baseline $baseline; create it with: $0 --update $library"

# What counts as public: types defined in the public headers and in the system headers they
# include (<stdint.h>, <stddef.h>). With include/attn alone, abidiff would treat int64_t as a
# private type and silently accept a parameter changing from int64_t to int32_t; without any
# headers, every change inside an opaque handle's private struct would be reported.
public_headers=(--headers-dir2 "$headers" --headers-dir2 /usr/include)
if command -v cc >/dev/null && compiler_include=$(cc -print-file-name=include) && [[ -d $compiler_include ]]; then
    public_headers+=(--headers-dir2 "$compiler_include")
fi

echo "abi/check.sh: abidiff $baseline $library (headers $headers)"
# The full report, additions included, for the log.
set +e
abidiff --suppressions "$suppressions" "${public_headers[@]}" "$baseline" "$library"
status=$?
set -e

# abidiff's exit status is a bit field: 1 error, 2 usage error, 4 ABI change, 8 incompatible change.
# Bit 8 is set only for removed functions, variables or symbols; a changed struct layout or parameter
# type of an existing function sets bit 4 alone, exactly like a mere addition. So when bit 4 is set,
# compare again ignoring added functions and symbols: whatever still differs changes an existing
# interface (appending to an options struct is suppressed as compatible, see suppressions.abignore).
if ((status & 3)); then
    die "abidiff failed to compare (exit status $status)"
elif ((status & 8)); then
    echo "abi/check.sh: FAILED: incompatible ABI change (removed interfaces, see the report above)." >&2
    exit 1
elif ((status & 4)); then
    set +e
    abidiff --suppressions "$suppressions" --no-added-syms "${public_headers[@]}" "$baseline" "$library" \
        >/dev/null 2>&1
    changed=$?
    set -e
    if ((changed & 3)); then
        die "abidiff failed to compare (exit status $changed)"
    elif ((changed & 12)); then
        echo "abi/check.sh: FAILED: incompatible ABI change: an existing interface changed (types, struct" >&2
        echo "  layout or signatures; see the report above). Released interfaces must not change: add new" >&2
        echo "  functions, and append fields to options structs only (CONVENTIONS.md, ABI)." >&2
        exit 1
    fi
    echo "abi/check.sh: note: compatible ABI changes only (additions) against the baseline; passing."
    echo "  Functions added since the last release go into the version node of the release in progress"
    echo "  (src/libattn.map; docs/abi.md, \"Symbol versions\")."
else
    echo "abi/check.sh: ABI identical to the baseline."
fi
