# attn-bench (the benchmark driver and demo) with its "rnn" group, and the oneDNN helper it spawns.
# Included from benchmarks/CMakeLists.txt; paths are relative to this file.

set(ATTN_BENCH_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python with torch that attn-bench spawns for the PyTorch comparisons (skipped when absent)")

add_executable(attn-bench ${CMAKE_CURRENT_LIST_DIR}/attn_bench.c ${CMAKE_CURRENT_LIST_DIR}/bench_util.c)
target_include_directories(attn-bench PRIVATE ${CBLAS_INCLUDE})
# The benchmark is not library code: it may call OpenBLAS directly (reference sgemm rate, core name).
target_link_libraries(attn-bench PRIVATE attn::attn ${OPENBLAS_LIB} m)
target_compile_definitions(attn-bench PRIVATE _POSIX_C_SOURCE=200809L BENCH_WITH_BLAS
  ATTN_BENCH_PYTHON="${ATTN_BENCH_PYTHON}"
  ATTN_BENCH_TORCH_RNN="${CMAKE_CURRENT_LIST_DIR}/torch_rnn.py")

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
if(ATTN_BUILD_TESTS)
  add_test(NAME attn_bench_quick COMMAND attn-bench --quick --runs 1)
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
