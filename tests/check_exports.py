#!/usr/bin/python3
"""Checks the exported interface of a built libattn.so against the public headers and, with --map,
the symbol-version policy of docs/abi.md ("Symbol versions").

Without --map (the original check):
  * the dynamic symbols the library defines (`nm -D --defined-only`) are exactly the functions
    declared with ATTN_API in include/attn/*.h: nothing internal leaks, nothing public is missing;
  * every one of them carries an allowed symbol version node (`readelf --dyn-syms -W`), by
    default ATTN_1.0 (--version-node adds more);
  * the SONAME is the expected one (--soname).

With --map src/libattn.map (and --frozen-dir abi/), the version script itself is checked, then the
library against it:
  (a) every ATTN_API function has exactly one node: the later node that lists it by its exact name,
      or else the first node, whose pattern (attn_[a-z]*) it must match; no node lists a name
      twice, no two nodes list the same name, and every listed name is declared in the headers;
  (b) the nodes are ATTN_<major>.<minor> with the headers' major, in increasing order, none newer
      than the headers' version (ATTN_VERSION_MAJOR.MINOR); the first has `local: *;` and inherits
      nothing, every later one inherits the one before it and lists exact names only (no pattern,
      no local:);
  (c) a released node is frozen: abi/symbols-<major>.<minor>.txt lists the functions a release
      exported under it, and the node must still give exactly those. A function added to the
      headers without a new node would fall into ATTN_1.0's pattern and fails here, as does a
      name added to or removed from a released node. The one allowed difference is a function that
      a later node lists again (a new default version, e.g. attn_rnn_options_init, whose options
      struct grew): the library must then keep its old version too (checked in (d)). Released
      nodes come first; after them at most one unreleased node, the one of the release in
      progress (the headers' version); a frozen list without its node is an error;
  (d) the library's dynamic symbols carry exactly the versions the map gives: each function's
      default version (name@@NODE) is its node from (a); a non-default version (name@NODE) exists
      only for a function of a released node's frozen list that a later node re-versioned; and
      the symbols under each released node are exactly its frozen list (the unreleased node: its
      names). Skipped when LIBRARY is "-" (a check of the sources alone).
  With --baseline abi/libattn.so.1.abi (the libabigail baseline of `bash dev abi`), the baseline's
  ELF symbols must be those of the last release: the frozen lists of every released node, under
  the same versions, and no other node.

usage: check_exports.py LIBRARY|- HEADERS_DIR [--soname NAME] [--version-node NODE ...]
                        [--map MAP [--frozen-dir DIR] [--baseline ABI_XML]]
Exit status 0 when everything matches, 1 with the differences printed otherwise.
"""
import argparse
import fnmatch
import pathlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

# The exported name is the identifier right before the parameter list of an ATTN_API declaration.
API_DECL = re.compile(r"\bATTN_API\b([^;{}()]*?)\b([A-Za-z_]\w*)\s*\(")
NODE_NAME = re.compile(r"^ATTN_(\d+)\.(\d+)$")


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


def header_version(headers_dir):
    """(major, minor) from ATTN_VERSION_MAJOR/MINOR in common.h."""
    text = (pathlib.Path(headers_dir) / "common.h").read_text()
    parts = [re.search(rf"#define\s+ATTN_VERSION_{p}\s+(\d+)", text) for p in ("MAJOR", "MINOR")]
    if not all(parts):
        sys.exit(f"check_exports: no ATTN_VERSION_MAJOR/MINOR in {headers_dir}/common.h")
    return int(parts[0].group(1)), int(parts[1].group(1))


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


def versioned_symbols(library):
    """[(name, version or None, is_default, symbol type)] for the defined dynamic symbols; a
    function with an old version besides its default one appears once per version."""
    out = []
    for line in run("readelf", "--dyn-syms", "-W", library).splitlines():
        fields = line.split()
        # Num: Value Size Type Bind Vis Ndx Name [(n)]
        if len(fields) < 8 or not fields[0].endswith(":") or fields[6] in ("UND", "Ndx"):
            continue
        name, at, version = fields[7].partition("@")
        is_default = version.startswith("@")
        out.append((name, version.lstrip("@") or None, is_default or not at, fields[3]))
    return out


def soname(library):
    match = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", run("readelf", "-d", "-W", library))
    return match.group(1) if match else None


# ---- the version script ---------------------------------------------------------------------------

class Node:
    def __init__(self, name, parent, globals_, locals_):
        self.name, self.parent, self.globals, self.locals = name, parent, globals_, locals_
        match = NODE_NAME.match(name)
        self.version = (int(match.group(1)), int(match.group(2))) if match else None

    @property
    def patterns(self):
        return [g for g in self.globals if any(c in g for c in "*?[")]

    @property
    def exact(self):
        return [g for g in self.globals if not any(c in g for c in "*?[")]


def parse_map(path):
    """The nodes of a GNU ld version script, in file order. Comments (/* */, # and //) are
    dropped; `extern "C++"` blocks are not used by libattn and are refused."""
    text = pathlib.Path(path).read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"(#|//)[^\n]*", " ", text)
    if "extern" in text:
        sys.exit(f"check_exports: {path}: extern blocks are not supported by this check")
    nodes = []
    pos = 0
    node_re = re.compile(r"\s*([A-Za-z_][\w.]*)\s*\{(.*?)\}\s*([A-Za-z_][\w.]*)?\s*;", re.S)
    while True:
        match = node_re.match(text, pos)
        if not match:
            break
        name, body, parent = match.group(1), match.group(2), match.group(3)
        section, globals_, locals_ = "global", [], []
        for item in body.split(";"):
            item = item.strip()
            label = re.match(r"^(global|local)\s*:\s*(.*)$", item, re.S)
            if label:
                section, item = label.group(1), label.group(2).strip()
            if item:
                (globals_ if section == "global" else locals_).append(item)
        nodes.append(Node(name, parent, globals_, locals_))
        pos = match.end()
    if text[pos:].strip():
        sys.exit(f"check_exports: {path}: cannot parse the version script after: {text[pos:pos + 60]!r}")
    if not nodes:
        sys.exit(f"check_exports: {path}: no version nodes")
    return nodes


def read_frozen(frozen_dir):
    """{node name: set of names} from symbols-<major>.<minor>.txt (one name a line, # comments)."""
    frozen = {}
    for path in sorted(pathlib.Path(frozen_dir).glob("symbols-*.txt")):
        match = re.fullmatch(r"symbols-(\d+\.\d+)\.txt", path.name)
        if not match:
            sys.exit(f"check_exports: {path}: expected a name symbols-<major>.<minor>.txt")
        names = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        names = [n for n in names if n]
        if len(names) != len(set(names)):
            sys.exit(f"check_exports: {path} lists a name twice")
        frozen["ATTN_" + match.group(1)] = set(names)
    return frozen


def baseline_symbols(path):
    """{version: set of names} of the ELF function symbols of a libabigail baseline (abidw)."""
    out = {}
    root = ET.parse(path).getroot()
    for sym in root.iter("elf-symbol"):
        out.setdefault(sym.get("version") or None, set()).add(sym.get("name"))
    return out


def check_policy(nodes, declared, frozen, headers_version, problems):
    """Checks (a), (b), (c). Returns {function: its default node} and the released node names."""
    # (b) names, order, inheritance, shape of the nodes.
    for index, node in enumerate(nodes):
        if node.version is None:
            problems.append(f"(b) node {node.name}: expected a name ATTN_<major>.<minor>")
            continue
        if node.version[0] != headers_version[0]:
            problems.append(f"(b) node {node.name}: major {node.version[0]}, the headers' is {headers_version[0]}")
        if node.version > headers_version:
            problems.append(f"(b) node {node.name} is newer than the headers' version "
                            f"{headers_version[0]}.{headers_version[1]}")
        if index == 0:
            if node.parent:
                problems.append(f"(b) the first node {node.name} inherits {node.parent}; it must inherit nothing")
            if node.locals != ["*"]:
                problems.append(f"(b) the first node {node.name} must end with `local: *;` (has {node.locals})")
            continue
        previous = nodes[index - 1]
        if previous.version is not None and node.version <= previous.version:
            problems.append(f"(b) node {node.name} follows {previous.name}: nodes must be in increasing order")
        if node.parent != previous.name:
            problems.append(f"(b) node {node.name} inherits {node.parent or 'nothing'}; it must inherit the node "
                            f"before it, {previous.name}")
        if node.patterns:
            problems.append(f"(b) node {node.name} has the pattern(s) {node.patterns}: a node after the first "
                            "lists exact names only")
        if node.locals:
            problems.append(f"(b) node {node.name} has local: entries {node.locals}; only the first node has one")
    names = [n.name for n in nodes]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"(b) node {name} appears twice")

    # (a) one node per function.
    listed = {}
    for node in nodes:
        for name in node.exact:
            if name in listed.setdefault(name, []):
                problems.append(f"(a) node {node.name} lists {name} twice")
            listed[name].append(node.name)
    for name, where in sorted(listed.items()):
        if len(set(where)) > 1:
            problems.append(f"(a) {name} is listed in several nodes: {', '.join(where)} (one node per function)")
        if name not in declared:
            problems.append(f"(a) {', '.join(sorted(set(where)))} lists {name}, which no header declares with "
                            "ATTN_API")
    base = nodes[0]
    assigned = {}
    for name in declared:
        if name in listed:
            assigned[name] = listed[name][-1]
        elif any(fnmatch.fnmatchcase(name, p) for p in base.patterns):
            assigned[name] = base.name
        else:
            problems.append(f"(a) {name} ({declared[name]}) is in no version node (it matches none of "
                            f"{base.name}'s patterns {base.patterns}): it would not be exported")

    # (c) frozen nodes.
    released = [n.name for n in nodes if n.name in frozen]
    for name in sorted(set(frozen) - set(names)):
        problems.append(f"(c) abi/symbols-{name[5:]}.txt freezes node {name}, which src/libattn.map no longer has "
                        "(a released node is never removed)")
    for index, node in enumerate(nodes):
        if node.name in frozen and index > 0 and nodes[index - 1].name not in frozen:
            problems.append(f"(c) node {node.name} is frozen but {nodes[index - 1].name} before it is not: "
                            "released nodes come first")
    unreleased = [n for n in nodes if n.name not in frozen]
    if len(unreleased) > 1:
        problems.append(f"(c) {len(unreleased)} unreleased nodes ({', '.join(n.name for n in unreleased)}); "
                        "at most one, the release in progress (freeze the others: abi/symbols-<x.y>.txt)")
    for node in unreleased:
        if node.version is not None and node.version != headers_version:
            problems.append(f"(c) unreleased node {node.name} is not the release in progress "
                            f"(headers {headers_version[0]}.{headers_version[1]}): freeze it, or rename it")
    later_listed = {}
    for index, node in enumerate(nodes):
        for name in node.exact:
            for earlier in nodes[:index]:
                later_listed.setdefault((earlier.name, name), node.name)
    for node in nodes:
        if node.name not in frozen:
            continue
        gives = {name for name, where in assigned.items() if where == node.name}
        want = frozen[node.name]
        for name in sorted(gives - want):
            problems.append(f"(c) released node {node.name} gains {name}: a function added after a release goes "
                            f"into a new node (not frozen in abi/symbols-{node.name[5:]}.txt)")
        for name in sorted(want - gives):
            if name not in declared:
                problems.append(f"(c) {name} of released node {node.name} is no longer declared in the headers "
                                "(a released function is never removed)")
            elif (node.name, name) not in later_listed:
                problems.append(f"(c) released node {node.name} loses {name} (frozen in "
                                f"abi/symbols-{node.name[5:]}.txt)")
    return assigned, released


def check_library_versions(symbols, nodes, assigned, frozen, problems):
    """(d): the versions of the built library's symbols."""
    node_names = {n.name for n in nodes}
    by_version = {}
    defaults = {}
    symbols = [s for s in symbols if s[0] not in node_names]  # the absolute symbols naming the nodes
    for name, version, is_default, _ in symbols:
        by_version.setdefault(version, set()).add(name)
        if is_default:
            defaults.setdefault(name, []).append(version)
    for name, node in sorted(assigned.items()):
        got = defaults.get(name, [])
        if got != [node]:
            problems.append(f"(d) {name}: default version {', '.join(map(str, got)) or '(none)'} in the library, "
                            f"the map gives {node} ({name}@@{node} expected)")
    for name, version, is_default, _ in symbols:
        if is_default or version is None:
            continue
        if version not in frozen or name not in frozen[version]:
            problems.append(f"(d) {name}@{version}: an old (non-default) version is only for a function a released "
                            f"node exported and a later node re-versioned")
        elif assigned.get(name) == version:
            problems.append(f"(d) {name}@{version} is not the default version although the map gives {version}")
    for node in nodes:
        want = frozen[node.name] if node.name in frozen else {n for n, v in assigned.items() if v == node.name}
        got = by_version.get(node.name, set())
        what = "its frozen list" if node.name in frozen else "the map"
        for name in sorted(want - got):
            problems.append(f"(d) {name}: no symbol {name}@{node.name} in the library ({what} has it)")
        for name in sorted(got - want):
            problems.append(f"(d) {name}@{node.name} is in the library but not in {what}")
    for version in sorted(set(by_version) - node_names, key=str):
        problems.append(f"(d) symbols of version {version}, which is no node of the map: {sorted(by_version[version])}")


def check_baseline(baseline, nodes, frozen, problems):
    released = [n.name for n in nodes if n.name in frozen]
    for version, names in sorted(baseline.items(), key=lambda item: str(item[0])):
        if version not in frozen:
            problems.append(f"baseline: symbols of version {version}, which is not a released (frozen) node: "
                            "the baseline is the ABI of the last release")
        elif names != frozen[version]:
            problems.append(f"baseline: its {version} symbols differ from abi/symbols-{version[5:]}.txt: "
                            f"only in the baseline {sorted(names - frozen[version])}, "
                            f"only in the list {sorted(frozen[version] - names)}")
    for name in released:
        if name not in baseline:
            problems.append(f"baseline: released node {name} is missing from the baseline: regenerate it from the "
                            "last release (abi/check.sh --update, docs/abi.md)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("library", help='the built libattn.so, or "-" to check the sources only (needs --map)')
    parser.add_argument("headers_dir")
    parser.add_argument("--soname", help="expected SONAME, e.g. libattn.so.1")
    parser.add_argument("--version-node", action="append", dest="nodes",
                        help="allowed version node(s), without --map (default ATTN_1.0)")
    parser.add_argument("--map", help="the linker version script, src/libattn.map: check the version policy")
    parser.add_argument("--frozen-dir", help="directory of the frozen lists symbols-<major>.<minor>.txt (abi/)")
    parser.add_argument("--baseline", help="the libabigail baseline (abi/libattn.so.1.abi) to check against them")
    args = parser.parse_args()
    if args.library == "-" and not args.map:
        parser.error('LIBRARY "-" needs --map')
    if (args.frozen_dir or args.baseline) and not args.map:
        parser.error("--frozen-dir and --baseline need --map")
    if args.map and args.nodes:
        parser.error("--version-node and --map exclude each other (the map names the nodes)")

    declared = declared_api(args.headers_dir)
    problems = []
    summary = []
    nodes = assigned = None
    frozen = {}
    if args.map:
        nodes = parse_map(args.map)
        frozen = read_frozen(args.frozen_dir) if args.frozen_dir else {}
        assigned, released = check_policy(nodes, declared, frozen, header_version(args.headers_dir), problems)
        allowed = {n.name for n in nodes}
        summary.append(f"{len(declared)} ATTN_API functions in {len(nodes)} nodes "
                       f"({', '.join(n.name for n in nodes)}); released and frozen: {', '.join(released) or 'none'}")
        if args.baseline:
            check_baseline(baseline_symbols(args.baseline), nodes, frozen, problems)
            summary.append(f"the baseline holds the symbols of {', '.join(released)}")
    else:
        allowed = set(args.nodes or ["ATTN_1.0"])

    if args.library != "-":
        exported = defined_dynamic_symbols(args.library, allowed)
        symbols = versioned_symbols(args.library)
        sym_types = {name: sym_type for name, _, _, sym_type in symbols}
        missing = sorted(set(declared) - exported)
        if missing:
            problems.append("declared with ATTN_API but not exported by the library:")
            problems += [f"  - {name}  ({declared[name]})" for name in missing]
        extra = sorted(exported - set(declared))
        if extra:
            problems.append("exported by the library but not declared with ATTN_API in the public headers:")
            problems += [f"  + {name}  ({sym_types.get(name, '?')})" for name in extra]
        for name, version, _, sym_type in symbols:
            if name not in declared:
                continue
            if version not in allowed:
                problems.append(f"{name}: version node {version or '(none)'}, expected one of {sorted(allowed)}")
            if sym_type != "FUNC":
                problems.append(f"{name}: symbol type {sym_type}, expected FUNC")
        if args.map:
            check_library_versions(symbols, nodes, assigned, frozen, problems)
        if args.soname:
            actual = soname(args.library)
            if actual != args.soname:
                problems.append(f"SONAME is {actual}, expected {args.soname}")
        summary.insert(0, f"{len(exported)} exported functions match the ATTN_API declarations, all in "
                          f"{', '.join(sorted(allowed))}" + (f"; SONAME {args.soname}" if args.soname else "") +
                       ("; every symbol carries the version the map gives" if args.map else ""))

    if problems:
        print(f"check_exports: {args.library} / {args.headers_dir}/*.h" +
              (f" / {args.map}" if args.map else "") + ": FAILED")
        print("\n".join(problems))
        return 1
    print("check_exports: " + "\ncheck_exports: ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
