# The Python package bindings/python (import name attn): its pytest suite, bindings/python/tests/,
# runs under ${ATTN_TEST_PYTHON} against the built library (ATTN_LIBRARY) as the test
# bindings_python. Included from tests/CMakeLists.txt; the same rules as python.cmake (which is
# included after this file, so its variables are not set yet): not registered in the
# ThreadSanitizer build, the ASan runtime preloaded in the ATTN_SANITIZE build, and a Python
# without numpy, torch or pytest fails the test instead of skipping it.

if(ATTN_TSAN)
  message(STATUS "bindings_python: not registered in the ThreadSanitizer build (see python.cmake)")
  return()
endif()

set(_attn_bp_env
  "ATTN_LIBRARY=$<TARGET_FILE:attn>"
  "ATTN_TEST_TMPDIR=${CMAKE_CURRENT_BINARY_DIR}"
  # The package and its tests are imported from the source tree; keep __pycache__ out of it.
  "PYTHONDONTWRITEBYTECODE=1")
set(_attn_bp_sanitizer_env "")
if(ATTN_SANITIZE)
  # An ASan-instrumented library in an uninstrumented python needs the runtime first in the
  # process; CPython, numpy and torch leak by design, so leak checking is off.
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
    OUTPUT_VARIABLE _attn_bp_asan OUTPUT_STRIP_TRAILING_WHITESPACE)
  set(_attn_bp_sanitizer_env
    "LD_PRELOAD=${_attn_bp_asan}"
    "ASAN_OPTIONS=detect_leaks=0"
    "UBSAN_OPTIONS=print_stacktrace=1")
  list(APPEND _attn_bp_env ${_attn_bp_sanitizer_env})
endif()

execute_process(
  COMMAND ${CMAKE_COMMAND} -E env ${_attn_bp_sanitizer_env}
          ${ATTN_TEST_PYTHON} -c "import numpy, torch, pytest; torch.zeros(1).sum()"
  RESULT_VARIABLE _attn_bp_ok OUTPUT_QUIET ERROR_VARIABLE _attn_bp_err)
if(NOT _attn_bp_ok EQUAL 0)
  string(STRIP "${_attn_bp_err}" _attn_bp_err)
  string(REGEX REPLACE ".*\n" "" _attn_bp_err "${_attn_bp_err}")
  message(WARNING "bindings_python: '${ATTN_TEST_PYTHON}' cannot import numpy, torch and pytest "
    "(${_attn_bp_err}); the test is registered and will fail. Install python3-torch, "
    "python3-numpy and python3-pytest.")
endif()

# -p no:cacheprovider: no .pytest_cache in the source tree; --basetemp: pytest's temporary files
# (the venv of the install test among them) under the build tree, removed at the next run.
add_test(NAME bindings_python
  COMMAND ${ATTN_TEST_PYTHON} -m pytest -q -p no:cacheprovider
          --basetemp=${CMAKE_CURRENT_BINARY_DIR}/bindings_python_tmp
          ${PROJECT_SOURCE_DIR}/bindings/python/tests
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(bindings_python PROPERTIES
  ENVIRONMENT "${_attn_bp_env}"
  LABELS "python;bindings"
  TIMEOUT 300)
