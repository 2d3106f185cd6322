#!/usr/bin/python3
"""Self-test of the symbol-version policy check (tests/check_exports.py --map; docs/abi.md,
"Symbol versions"): the check passes on the repository as it is, and fails, with the message of
the rule broken, on copies of the sources that break each rule:

  (a) a function in two nodes, a node listing an undeclared name, a function in no node;
  (b) nodes out of order, a node inheriting the wrong one, a pattern or local: in a later node,
      a node newer than the headers' version;
  (c) a new function without a new node (it falls into ATTN_1.0's pattern), a name added to or
      removed from a released node, a released function removed from the headers, a frozen list
      edited, released nodes that do not come first, two unreleased nodes, an unreleased node that
      is not the release in progress, a frozen list without its node;
  (d) on small libraries built here with the C compiler and a version script: a default version
      other than the map's, a re-versioned function whose old version was dropped, an old version
      of a function no release had, and the correct cases (including a .symver old version).

usage: test_symbol_policy.py SOURCE_DIR C_COMPILER
Exit status 0 when every case behaves as expected.
"""
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

SOURCE_DIR = None
CC = None


def run_check(library, headers, map_file, frozen_dir, *extra):
    cmd = [sys.executable, str(SOURCE_DIR / "tests" / "check_exports.py"), str(library), str(headers),
           "--map", str(map_file), "--frozen-dir", str(frozen_dir), *extra]
    result = subprocess.run(cmd, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


class Repository(unittest.TestCase):
    """Mutations of a copy of include/attn, src/libattn.map and abi/symbols-*.txt, checked without a
    library ("-"): rules (a), (b), (c)."""

    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="attn-symbol-policy."))
        shutil.copytree(SOURCE_DIR / "include" / "attn", self.tmp / "attn")
        shutil.copy(SOURCE_DIR / "src" / "libattn.map", self.tmp / "libattn.map")
        (self.tmp / "abi").mkdir()
        for frozen in (SOURCE_DIR / "abi").glob("symbols-*.txt"):
            shutil.copy(frozen, self.tmp / "abi" / frozen.name)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def edit(self, relative, old, new):
        path = self.tmp / relative
        text = path.read_text()
        self.assertIn(old, text, f"{relative}: the text to replace is gone; update this test")
        path.write_text(text.replace(old, new, 1))

    def add_function(self, name):
        self.edit("attn/rnn.h", "ATTN_API void attn_rnn_destroy(attn_rnn *rnn);",
                  f"ATTN_API void attn_rnn_destroy(attn_rnn *rnn);\nATTN_API attn_status {name}(const attn_rnn *rnn);")

    def add_to_node(self, node, name):
        self.edit("libattn.map", f"{node} {{\n  global:\n", f"{node} {{\n  global:\n    {name};\n")

    def check(self, *extra):
        return run_check("-", self.tmp / "attn", self.tmp / "libattn.map", self.tmp / "abi", *extra)

    def assert_fails(self, *needles):
        status, output = self.check()
        self.assertEqual(status, 1, f"the check passed, expected a failure naming {needles}:\n{output}")
        for needle in needles:
            self.assertIn(needle, output)

    def test_repository_passes(self):
        status, output = self.check("--baseline", str(SOURCE_DIR / "abi" / "libattn.so.1.abi"))
        self.assertEqual(status, 0, output)

    def test_new_function_in_the_new_node_passes(self):
        self.add_function("attn_rnn_new_thing")
        self.add_to_node("ATTN_1.3", "attn_rnn_new_thing")
        status, output = self.check()
        self.assertEqual(status, 0, output)

    # (a)
    def test_function_in_two_nodes(self):
        self.add_to_node("ATTN_1.3", "attn_perceiver_cost")
        self.assert_fails("(a) attn_perceiver_cost is listed in several nodes: ATTN_1.2, ATTN_1.3")

    def test_listed_name_not_declared(self):
        self.add_to_node("ATTN_1.3", "attn_nothing_here")
        self.assert_fails("(a) ATTN_1.3 lists attn_nothing_here, which no header declares")

    def test_function_in_no_node(self):
        self.edit("attn/rnn.h", "ATTN_API void attn_rnn_destroy(attn_rnn *rnn);",
                  "ATTN_API void attn_rnn_destroy(attn_rnn *rnn);\nATTN_API void attn_Rnn_upper(void);")
        self.assert_fails("(a) attn_Rnn_upper (rnn.h) is in no version node")

    # (b)
    def test_wrong_parent(self):
        self.edit("libattn.map", "} ATTN_1.2;", "} ATTN_1.1;")
        self.assert_fails("(b) node ATTN_1.3 inherits ATTN_1.1; it must inherit the node before it, ATTN_1.2")

    def test_nodes_out_of_order(self):
        text = (self.tmp / "libattn.map").read_text()
        start, middle = text.index("ATTN_1.1 {"), text.index("/* libattn 1.2")
        end = text.index("} ATTN_1.1;") + len("} ATTN_1.1;")
        (self.tmp / "libattn.map").write_text(text[:start] + text[middle:end] + "\n" + text[start:middle] + text[end:])
        self.assert_fails("(b) node ATTN_1.1 follows ATTN_1.2: nodes must be in increasing order")

    def test_pattern_in_a_later_node(self):
        self.add_to_node("ATTN_1.3", "attn_lowrank_*")
        self.assert_fails("(b) node ATTN_1.3 has the pattern(s) ['attn_lowrank_*']")

    def test_node_newer_than_the_headers(self):
        self.add_function("attn_rnn_new_thing")
        with open(self.tmp / "libattn.map", "a") as f:
            f.write("ATTN_1.4 {\n  global:\n    attn_rnn_new_thing;\n} ATTN_1.3;\n")
        self.assert_fails("(b) node ATTN_1.4 is newer than the headers' version 1.3",
                          "(c) 2 unreleased nodes (ATTN_1.3, ATTN_1.4)")

    # (c)
    def test_new_function_without_a_node(self):
        self.add_function("attn_rnn_new_thing")
        self.assert_fails("(c) released node ATTN_1.0 gains attn_rnn_new_thing")

    def test_name_added_to_a_released_node(self):
        self.add_function("attn_rnn_new_thing")
        self.add_to_node("ATTN_1.1", "attn_rnn_new_thing")
        self.assert_fails("(c) released node ATTN_1.1 gains attn_rnn_new_thing")

    def test_name_removed_from_a_released_node(self):
        self.edit("libattn.map", "    attn_memrnn_cost;\n", "")
        self.assert_fails("(c) released node ATTN_1.0 gains attn_memrnn_cost",
                          "(c) released node ATTN_1.1 loses attn_memrnn_cost")

    def test_released_function_removed_from_the_headers(self):
        self.edit("attn/attention.h", "ATTN_API attn_status attn_mha_cost(", "attn_status attn_mha_cost(")
        self.assert_fails("(c) attn_mha_cost of released node ATTN_1.0 is no longer declared")

    def test_frozen_list_edited(self):
        self.edit("abi/symbols-1.2.txt", "attn_perceiver_cost\n", "")
        self.assert_fails("(c) released node ATTN_1.2 gains attn_perceiver_cost")

    def test_released_nodes_come_first(self):
        (self.tmp / "abi" / "symbols-1.1.txt").unlink()
        self.assert_fails("(c) node ATTN_1.2 is frozen but ATTN_1.1 before it is not",
                          "(c) 2 unreleased nodes (ATTN_1.1, ATTN_1.3)")

    def test_unreleased_node_of_an_older_version(self):
        self.edit("attn/common.h", "#define ATTN_VERSION_MINOR 3", "#define ATTN_VERSION_MINOR 4")
        self.assert_fails("(c) unreleased node ATTN_1.3 is not the release in progress (headers 1.4)")

    def test_frozen_list_without_its_node(self):
        (self.tmp / "abi" / "symbols-1.5.txt").write_text("attn_rnn_create\n")
        self.assert_fails("(c) abi/symbols-1.5.txt freezes node ATTN_1.5, which src/libattn.map no longer has")

    def test_baseline_of_an_older_release(self):
        baseline = self.tmp / "old.abi"
        baseline.write_text(textwrap.dedent("""\
            <abi-corpus version='2.1' soname='libattn.so.1'>
              <elf-function-symbols>
                <elf-symbol name='attn_rnn_create' version='ATTN_1.0' is-default-version='yes'/>
              </elf-function-symbols>
            </abi-corpus>
            """))
        status, output = self.check("--baseline", str(baseline))
        self.assertEqual(status, 1, output)
        self.assertIn("baseline: its ATTN_1.0 symbols differ from abi/symbols-1.0.txt", output)
        self.assertIn("baseline: released node ATTN_1.1 is missing from the baseline", output)


class Library(unittest.TestCase):
    """Rule (d) on small libraries built with the C compiler: attn_a and attn_b were released in
    ATTN_1.0; attn_a is re-versioned in ATTN_1.1 (its old version kept with .symver), attn_c is new
    in ATTN_1.1, the release in progress."""

    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="attn-symbol-policy-lib."))
        (self.tmp / "attn").mkdir()
        (self.tmp / "attn" / "common.h").write_text(textwrap.dedent("""\
            #define ATTN_VERSION_MAJOR 1
            #define ATTN_VERSION_MINOR 1
            #define ATTN_API __attribute__((visibility("default")))
            ATTN_API int attn_a(void);
            ATTN_API int attn_b(void);
            ATTN_API int attn_c(void);
            """))
        (self.tmp / "abi").mkdir()
        (self.tmp / "abi" / "symbols-1.0.txt").write_text("attn_a\nattn_b\n")
        self.map = self.tmp / "right.map"
        self.map.write_text(textwrap.dedent("""\
            ATTN_1.0 { global: attn_[a-z]*; local: *; };
            ATTN_1.1 { global: attn_a; attn_c; } ATTN_1.0;
            """))

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def build(self, map_text, old_version=True):
        source = self.tmp / "lib.c"
        code = textwrap.dedent("""\
            #include "attn/common.h"
            ATTN_API int attn_a(void) { return 2; }
            ATTN_API int attn_b(void) { return 1; }
            ATTN_API int attn_c(void) { return 3; }
            """)
        if old_version:
            code += textwrap.dedent("""\
                __attribute__((visibility("default"))) int attn__a_1_0(void) { return 1; }
                __asm__(".symver attn__a_1_0, attn_a@ATTN_1.0");
                """)
        source.write_text(code)
        build_map = self.tmp / "build.map"
        build_map.write_text(textwrap.dedent(map_text))
        library = self.tmp / "libfake.so"
        subprocess.run([CC, "-shared", "-fPIC", "-fvisibility=hidden", "-I", str(self.tmp), str(source), "-o",
                        str(library), f"-Wl,--version-script={build_map}"], check=True)
        return library

    def check(self, library):
        return run_check(library, self.tmp / "attn", self.map, self.tmp / "abi")

    def test_right_versions_pass(self):
        status, output = self.check(self.build(self.map.read_text()))
        self.assertEqual(status, 0, output)

    def test_default_version_other_than_the_map(self):
        library = self.build("""\
            ATTN_1.0 { global: attn_[a-z]*; local: *; };
            ATTN_1.1 { global: attn_a; } ATTN_1.0;
            """)
        status, output = self.check(library)
        self.assertEqual(status, 1, output)
        self.assertIn("(d) attn_c: default version ATTN_1.0 in the library, the map gives ATTN_1.1", output)
        self.assertIn("(d) attn_c@ATTN_1.0 is in the library but not in its frozen list", output)

    def test_old_version_dropped(self):
        status, output = self.check(self.build(self.map.read_text(), old_version=False))
        self.assertEqual(status, 1, output)
        self.assertIn("(d) attn_a: no symbol attn_a@ATTN_1.0 in the library (its frozen list has it)", output)

    def test_old_version_of_a_function_no_release_had(self):
        (self.tmp / "abi" / "symbols-1.0.txt").write_text("attn_b\n")
        library = self.build(self.map.read_text())
        status, output = self.check(library)
        self.assertEqual(status, 1, output)
        self.assertIn("(d) attn_a@ATTN_1.0: an old (non-default) version is only for a function a released node "
                      "exported", output)


def main():
    global SOURCE_DIR, CC
    if len(sys.argv) != 3:
        sys.exit("usage: test_symbol_policy.py SOURCE_DIR C_COMPILER")
    SOURCE_DIR, CC = pathlib.Path(sys.argv[1]).resolve(), sys.argv[2]
    program = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
