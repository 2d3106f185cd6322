# libattn-gemm-trace.so (gemm_trace.c): a preloadable cblas_sgemm timer for finding where a
# forward's time goes. Included from benchmarks/CMakeLists.txt; not installed.
add_library(attn-gemm-trace MODULE ${CMAKE_CURRENT_LIST_DIR}/gemm_trace.c)
target_link_libraries(attn-gemm-trace PRIVATE ${CMAKE_DL_LIBS} Threads::Threads)
target_include_directories(attn-gemm-trace PRIVATE ${CBLAS_INCLUDE})
