# Python FFI tests: every tests/python/test_*.py runs under ${ATTN_TEST_PYTHON} against the built
# library (ATTN_LIB) and compares it with PyTorch. Included from tests/CMakeLists.txt.

if(ATTN_TSAN)
  # PyTorch's own threads are not instrumented either, and TSan reports their work the way it
  # reports OpenBLAS's (see tsan.supp); the C tests cover the library's threads.
  message(STATUS "python tests: not registered in the ThreadSanitizer build")
  return()
endif()

set(ATTN_PYTHON_TEST_ENV
  "ATTN_LIB=$<TARGET_FILE:attn>"
  "ATTN_TEST_TMPDIR=${CMAKE_CURRENT_BINARY_DIR}"
  # The tests import attn_ffi from the source tree; keep __pycache__ out of it.
  "PYTHONDONTWRITEBYTECODE=1")

set(ATTN_PYTHON_SANITIZER_ENV "")
if(ATTN_SANITIZE)
  # An ASan-instrumented library loaded into an uninstrumented python needs the ASan runtime
  # first in the process; CPython and torch leak by design, so leak checking is off.
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
    OUTPUT_VARIABLE ATTN_ASAN_RUNTIME OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT IS_ABSOLUTE "${ATTN_ASAN_RUNTIME}" OR NOT EXISTS "${ATTN_ASAN_RUNTIME}")
    message(WARNING "python tests: ${CMAKE_C_COMPILER} does not know libasan.so "
      "(got '${ATTN_ASAN_RUNTIME}'); the Python FFI tests will fail under ATTN_SANITIZE")
  endif()
  set(ATTN_PYTHON_SANITIZER_ENV
    "LD_PRELOAD=${ATTN_ASAN_RUNTIME}"
    "ASAN_OPTIONS=detect_leaks=0"
    "UBSAN_OPTIONS=print_stacktrace=1")
  list(APPEND ATTN_PYTHON_TEST_ENV ${ATTN_PYTHON_SANITIZER_ENV})
endif()

# Checked once at configure time, under the same preload as the tests. A Python without torch or
# numpy does not drop the tests: they stay registered and fail, so a machine missing python3-torch
# cannot pass the suite by skipping them.
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env ${ATTN_PYTHON_SANITIZER_ENV}
          ${ATTN_TEST_PYTHON} -c "import numpy, torch; torch.zeros(1).sum()"
  RESULT_VARIABLE _attn_py_ok OUTPUT_QUIET ERROR_VARIABLE _attn_py_err)
if(NOT _attn_py_ok EQUAL 0)
  string(STRIP "${_attn_py_err}" _attn_py_err)
  string(REGEX REPLACE ".*\n" "" _attn_py_err "${_attn_py_err}") # the traceback's last line
  message(WARNING "python tests: '${ATTN_TEST_PYTHON}' cannot import numpy and torch "
    "(${_attn_py_err}); the Python FFI tests are registered and will fail. "
    "Install python3-torch and python3-numpy.")
endif()

file(GLOB ATTN_PYTHON_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/python/test_*.py)
foreach(script IN LISTS ATTN_PYTHON_TESTS)
  get_filename_component(stem ${script} NAME_WE)
  string(REGEX REPLACE "^test_" "python_" test_name ${stem})
  add_test(NAME ${test_name} COMMAND ${ATTN_TEST_PYTHON} ${script}
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(${test_name} PROPERTIES
    ENVIRONMENT "${ATTN_PYTHON_TEST_ENV}"
    LABELS python
    TIMEOUT 300)
  if(stem STREQUAL "test_explore")
    # The demo's CSV files against the library: the test runs attn-explore (benchmarks/, added after
    # tests/, hence the generator expression). Without the demo ATTN_EXPLORE is empty and the test
    # exits 77: skipped.
    set_property(TEST ${test_name} APPEND PROPERTY ENVIRONMENT
      "ATTN_EXPLORE=$<$<TARGET_EXISTS:attn-explore>:$<TARGET_FILE:attn-explore>>")
    set_tests_properties(${test_name} PROPERTIES SKIP_RETURN_CODE 77)
  endif()
endforeach()
