# attn-bench's "attention" group (bench_attention.c) and the PyTorch script it spawns (torch_mha.py).
# Included from benchmarks/CMakeLists.txt; rnn.cmake defines attn-bench and attaches the sources.
set_property(GLOBAL APPEND PROPERTY ATTN_BENCH_SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench_attention.c)
# A source property rather than a target one: this file may be read before attn-bench exists.
set_property(SOURCE ${CMAKE_CURRENT_LIST_DIR}/bench_attention.c APPEND PROPERTY COMPILE_DEFINITIONS
  ATTN_BENCH_TORCH_MHA="${CMAKE_CURRENT_LIST_DIR}/torch_mha.py")
