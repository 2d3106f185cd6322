# attn-bench's "perceiver" group (bench_perceiver.c) and the PyTorch script it spawns
# (torch_perceiver.py). Included from benchmarks/CMakeLists.txt; rnn.cmake defines attn-bench.
set_property(GLOBAL APPEND PROPERTY ATTN_BENCH_SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench_perceiver.c)
set_property(SOURCE ${CMAKE_CURRENT_LIST_DIR}/bench_perceiver.c APPEND PROPERTY COMPILE_DEFINITIONS
  ATTN_BENCH_TORCH_PERCEIVER="${CMAKE_CURRENT_LIST_DIR}/torch_perceiver.py")
