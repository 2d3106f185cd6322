# attn-bench's "memory" group (bench_memory.c): the NTM against the memory size, and the recurrent
# capacity table. Included from benchmarks/CMakeLists.txt; rnn.cmake defines attn-bench.
set_property(GLOBAL APPEND PROPERTY ATTN_BENCH_SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench_memory.c)
