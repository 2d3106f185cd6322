# Exported-symbols test: the dynamic symbols of libattn.so are exactly the ATTN_API functions of
# include/attn/*.h, each in version node ATTN_1.0, ATTN_1.1, ATTN_1.2 or ATTN_1.3, and the SONAME is
# libattn.so.<major>.
# A release that adds a version node to src/libattn.map adds it here with another --version-node.
add_test(NAME exports
  COMMAND ${ATTN_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_exports.py
          $<TARGET_FILE:attn> ${PROJECT_SOURCE_DIR}/include/attn
          --soname libattn.so.${PROJECT_VERSION_MAJOR} --version-node ATTN_1.0 --version-node ATTN_1.1
          --version-node ATTN_1.2 --version-node ATTN_1.3)
set_tests_properties(exports PROPERTIES LABELS "packaging")
