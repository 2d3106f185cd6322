# attn-ab (ab.c): two builds of libattn timed against each other in one process, alternating round
# by round with OpenBLAS's thread count. Included from benchmarks/CMakeLists.txt; not installed.
# It loads both builds with dlopen, so it links OpenBLAS but not libattn; the headers give the API.
add_executable(attn-ab ${CMAKE_CURRENT_LIST_DIR}/ab.c ${CMAKE_CURRENT_LIST_DIR}/bench_util.c)
target_include_directories(attn-ab PRIVATE ${PROJECT_SOURCE_DIR}/include ${CBLAS_INCLUDE})
target_compile_definitions(attn-ab PRIVATE _POSIX_C_SOURCE=200809L)
target_link_libraries(attn-ab PRIVATE ${OPENBLAS_LIB} ${CMAKE_DL_LIBS} m)
