# attn-bench's "workspace" group (bench_workspace.c): forward with ws = NULL against a reused
# workspace, every family. Included from benchmarks/CMakeLists.txt; rnn.cmake defines attn-bench.
set_property(GLOBAL APPEND PROPERTY ATTN_BENCH_SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench_workspace.c)
