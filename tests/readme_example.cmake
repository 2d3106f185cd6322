# README example test: builds and runs examples/lstm.c against this build installed into a fresh
# temporary prefix, exactly as README.md's "Using it from C" says, with a checkpoint saved by
# PyTorch, and compares the output with PyTorch's (driver: tests/readme_example.sh).
if(ATTN_TSAN)
  return() # its PyTorch reference cannot run in the ThreadSanitizer build (see python.cmake)
endif()
add_test(NAME readme_example
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/readme_example.sh
          ${PROJECT_BINARY_DIR} ${CMAKE_C_COMPILER} ${CMAKE_COMMAND} ${ATTN_TEST_PYTHON} "${ATTN_SANITIZERS}")
# Installs this build tree, as the install test does: see the lock there.
set_tests_properties(readme_example PROPERTIES TIMEOUT 300 LABELS "packaging;docs"
  RESOURCE_LOCK attn_install_tree)
