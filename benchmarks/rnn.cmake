# attn-bench (the benchmark driver and demo) with its "rnn" group, and the oneDNN helper it spawns.
# Included from benchmarks/CMakeLists.txt; paths are relative to this file.

set(ATTN_BENCH_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python with torch that attn-bench spawns for the PyTorch comparisons (skipped when absent)")

add_executable(attn-bench ${CMAKE_CURRENT_LIST_DIR}/attn_bench.c ${CMAKE_CURRENT_LIST_DIR}/bench_util.c)
target_include_directories(attn-bench PRIVATE ${CBLAS_INCLUDE})
# The benchmark is not library code: it may call OpenBLAS directly (reference sgemm rate, core name).
# yajl writes --json (the library's own JSON dependency). The source directory is where the
# commit measured is asked for.
target_link_libraries(attn-bench PRIVATE attn::attn ${OPENBLAS_LIB} PkgConfig::YAJL m)
target_compile_definitions(attn-bench PRIVATE _POSIX_C_SOURCE=200809L BENCH_WITH_BLAS BENCH_WITH_RECORD
  ATTN_BENCH_PYTHON="${ATTN_BENCH_PYTHON}"
  ATTN_BENCH_TORCH_RNN="${CMAKE_CURRENT_LIST_DIR}/torch_rnn.py"
  ATTN_BENCH_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

# Other benchmark areas add their groups to attn-bench (a row in the table of attn_bench.c, the
# code in their own file) with
#   set_property(GLOBAL APPEND PROPERTY ATTN_BENCH_SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench_xyz.c)
# which works whether their .cmake file is included before or after this one: the sources are
# attached once the whole benchmarks/ directory has been read.
function(attn_bench_attach_sources)
  get_property(sources GLOBAL PROPERTY ATTN_BENCH_SOURCES)
  if(sources)
    target_sources(attn-bench PRIVATE ${sources})
  endif()
endfunction()
cmake_language(DEFER CALL attn_bench_attach_sources)

# A smoke test of the demo: tiny shapes, every code path (helpers included); never judges time.
# Its --json file must be strict JSON (no NaN) with rows from every group (check_bench_json.py).
if(ATTN_BUILD_TESTS)
  set(ATTN_BENCH_QUICK_JSON ${CMAKE_CURRENT_BINARY_DIR}/attn_bench_quick.json)
  add_test(NAME attn_bench_quick COMMAND attn-bench --quick --runs 1 --json ${ATTN_BENCH_QUICK_JSON})
  add_test(NAME attn_bench_quick_json COMMAND ${ATTN_BENCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_bench_json.py
           ${ATTN_BENCH_QUICK_JSON} rnn attention memory perceiver workspace)
  set_tests_properties(attn_bench_quick PROPERTIES FIXTURES_SETUP attn_bench_quick_json)
  set_tests_properties(attn_bench_quick_json PROPERTIES FIXTURES_REQUIRED attn_bench_quick_json)
  # --threads: two passes and the scaling table, on the group that takes a second
  set(ATTN_BENCH_THREADS_JSON ${CMAKE_CURRENT_BINARY_DIR}/attn_bench_threads.json)
  add_test(NAME attn_bench_threads COMMAND attn-bench --quick --runs 1 --no-torch --no-dnnl --threads 1,2
           --json ${ATTN_BENCH_THREADS_JSON} workspace)
  add_test(NAME attn_bench_threads_json COMMAND ${ATTN_BENCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_bench_json.py
           ${ATTN_BENCH_THREADS_JSON} workspace)
  set_tests_properties(attn_bench_threads PROPERTIES FIXTURES_SETUP attn_bench_threads_json)
  set_tests_properties(attn_bench_threads_json PROPERTIES FIXTURES_REQUIRED attn_bench_threads_json)
endif()

# oneDNN's RNN primitives as the reference for the fastest CPU RNN code (Debian: libdnnl-dev).
find_path(DNNL_INCLUDE_DIR dnnl.h)
find_library(DNNL_LIBRARY dnnl)
if(DNNL_INCLUDE_DIR AND DNNL_LIBRARY)
  find_package(OpenMP COMPONENTS C)
  add_executable(attn-bench-dnnl-rnn ${CMAKE_CURRENT_LIST_DIR}/dnnl_rnn.c ${CMAKE_CURRENT_LIST_DIR}/bench_util.c)
  target_include_directories(attn-bench-dnnl-rnn PRIVATE ${DNNL_INCLUDE_DIR})
  target_compile_definitions(attn-bench-dnnl-rnn PRIVATE _POSIX_C_SOURCE=200809L)
  target_link_libraries(attn-bench-dnnl-rnn PRIVATE ${DNNL_LIBRARY})
  if(OpenMP_C_FOUND) # only to report oneDNN's OpenMP thread count
    target_link_libraries(attn-bench-dnnl-rnn PRIVATE OpenMP::OpenMP_C)
  endif()
  target_compile_definitions(attn-bench PRIVATE ATTN_BENCH_DNNL_RNN="$<TARGET_FILE:attn-bench-dnnl-rnn>")
  add_dependencies(attn-bench attn-bench-dnnl-rnn)
  message(STATUS "attn-bench: oneDNN comparison enabled (${DNNL_LIBRARY})")
else()
  message(STATUS "attn-bench: oneDNN (libdnnl-dev) not found; the oneDNN comparison is left out")
endif()
