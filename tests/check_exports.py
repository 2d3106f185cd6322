#!/usr/bin/python3
"""Checks the exported interface of a built libattn.so against the public headers.

  * the dynamic symbols the library defines (`nm -D --defined-only`) are exactly the functions
    declared with ATTN_API in include/attn/*.h: nothing internal leaks, nothing public is missing;
  * every one of them carries an allowed symbol version node (`readelf --dyn-syms -W`), by
    default ATTN_1.0 (a later release adds its node with another --version-node);
  * the SONAME is the expected one (--soname).

usage: check_exports.py LIBRARY HEADERS_DIR [--soname NAME] [--version-node NODE ...]
Exit status 0 when everything matches, 1 with the differences printed otherwise.
"""
import argparse
import pathlib
import re
import subprocess
import sys

# The exported name is the identifier right before the parameter list of an ATTN_API declaration.
API_DECL = re.compile(r"\bATTN_API\b([^;{}()]*?)\b([A-Za-z_]\w*)\s*\(")


def strip_comments_and_preprocessor(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"\\\n", " ", text)  # join continued preprocessor lines before dropping them
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def declared_api(headers_dir):
    names = {}
    headers = sorted(pathlib.Path(headers_dir).glob("*.h"))
    if not headers:
        sys.exit(f"check_exports: no headers in {headers_dir}")
    for header in headers:
        code = strip_comments_and_preprocessor(header.read_text())
        for match in API_DECL.finditer(code):
            names.setdefault(match.group(2), header.name)
    return names


def run(*cmd):
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        sys.exit(f"check_exports: {' '.join(cmd)} failed: {err}")


def defined_dynamic_symbols(library, version_nodes):
    """Names from nm -D --defined-only, without @VERSION suffixes and without the absolute
    symbols (type A) that the linker creates to name each version node."""
    names = set()
    for line in run("nm", "-D", "--defined-only", library).splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        sym_type, name = fields[-2], fields[-1].split("@")[0]
        if sym_type == "A" and name in version_nodes | {fields[-1]}:
            continue
        names.add(name)
    return names


def symbol_versions(library):
    """{name: (version or None, symbol type)} for the defined dynamic symbols."""
    out = {}
    for line in run("readelf", "--dyn-syms", "-W", library).splitlines():
        fields = line.split()
        # Num: Value Size Type Bind Vis Ndx Name [(n)]
        if len(fields) < 8 or not fields[0].endswith(":") or fields[6] in ("UND", "Ndx"):
            continue
        name, _, version = fields[7].partition("@")
        out[name] = (version.lstrip("@") or None, fields[3])
    return out


def soname(library):
    match = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", run("readelf", "-d", "-W", library))
    return match.group(1) if match else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("library")
    parser.add_argument("headers_dir")
    parser.add_argument("--soname", help="expected SONAME, e.g. libattn.so.1")
    parser.add_argument("--version-node", action="append", dest="nodes", help="allowed version node(s)")
    args = parser.parse_args()
    nodes = set(args.nodes or ["ATTN_1.0"])

    declared = declared_api(args.headers_dir)
    exported = defined_dynamic_symbols(args.library, nodes)
    versions = symbol_versions(args.library)
    problems = []

    missing = sorted(set(declared) - exported)
    if missing:
        problems.append("declared with ATTN_API but not exported by the library:")
        problems += [f"  - {name}  ({declared[name]})" for name in missing]
    extra = sorted(exported - set(declared))
    if extra:
        problems.append("exported by the library but not declared with ATTN_API in the public headers:")
        problems += [f"  + {name}  ({versions.get(name, (None, '?'))[1]})" for name in extra]
    for name in sorted(exported & set(declared)):
        version, sym_type = versions.get(name, (None, "?"))
        if version not in nodes:
            problems.append(f"{name}: version node {version or '(none)'}, expected one of {sorted(nodes)}")
        if sym_type != "FUNC":
            problems.append(f"{name}: symbol type {sym_type}, expected FUNC")
    if args.soname:
        actual = soname(args.library)
        if actual != args.soname:
            problems.append(f"SONAME is {actual}, expected {args.soname}")

    if problems:
        print(f"check_exports: {args.library} does not match {args.headers_dir}/*.h")
        print("\n".join(problems))
        return 1
    print(f"check_exports: {len(exported)} exported functions match the ATTN_API declarations, "
          f"all in {', '.join(sorted(nodes))}" + (f"; SONAME {args.soname}" if args.soname else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
