# Exported-symbols test: the dynamic symbols of libattn.so are exactly the ATTN_API functions of
# include/attn/*.h, and the SONAME is libattn.so.<major>. With --map it also checks the
# symbol-version policy of docs/abi.md ("Symbol versions"): every function in exactly one node of
# src/libattn.map, the nodes in order and each inheriting the one before, the released nodes equal
# to their frozen lists abi/symbols-<x.y>.txt (so a released node cannot be edited), every symbol
# of the built library under the version the map gives it, and the ABI baseline
# abi/libattn.so.1.abi holding exactly the symbols of the released nodes (it is the last release).
add_test(NAME exports
  COMMAND ${ATTN_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_exports.py
          $<TARGET_FILE:attn> ${PROJECT_SOURCE_DIR}/include/attn
          --soname libattn.so.${PROJECT_VERSION_MAJOR}
          --map ${PROJECT_SOURCE_DIR}/src/libattn.map --frozen-dir ${PROJECT_SOURCE_DIR}/abi
          --baseline ${PROJECT_SOURCE_DIR}/abi/libattn.so.1.abi)
set_tests_properties(exports PROPERTIES LABELS "packaging;abi")

# Self-test of that policy check: it passes on the sources as they are and fails, naming the rule,
# on copies that break each rule, and on small libraries built here with wrong symbol versions.
add_test(NAME symbol_policy
  COMMAND ${ATTN_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_symbol_policy.py ${PROJECT_SOURCE_DIR}
          ${CMAKE_C_COMPILER})
set_tests_properties(symbol_policy PROPERTIES LABELS "packaging;abi")
