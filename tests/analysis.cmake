# Rank analysis (attn_singular_values, attn_rank_analyze, attn_lowrank_error): known spectra
# (diagonal, orthogonal Q1 diag Q2^T built in the test, exact rank-k products, identity, equal rows,
# zero matrix, vectors), the Eckart-Young optimum against a truncated SVD computed test-side with
# LAPACKE, Linformer and Nystrom attention matrices never beating it, error paths, out of memory
# and two threads. The numpy comparison is tests/python/test_analysis_numpy.py (python.cmake).
find_package(Threads REQUIRED)
attn_add_cmocka_test(test_analysis test_analysis.c)
target_include_directories(test_analysis PRIVATE ${LAPACKE_INCLUDE})
target_link_libraries(test_analysis PRIVATE Threads::Threads ${LAPACKE_LIB})
