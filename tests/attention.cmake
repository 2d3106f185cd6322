# The attention family: float64 reference (ref_attention.c, reusable by other tests; it reads
# tensors with ref_rnn.c's ref_params_get_f64 and takes SVD pseudo-inverses with LAPACKE), invariants,
# costs, error paths and a two-thread smoke test.
find_package(Threads REQUIRED)
attn_add_cmocka_test(test_attention test_attention.c ref_attention.c ref_rnn.c)
target_include_directories(test_attention PRIVATE ${LAPACKE_INCLUDE})
target_link_libraries(test_attention PRIVATE Threads::Threads ${LAPACKE_LIB})
if(ATTN_SANITIZE)
  # The create error cases ask for parameters far beyond memory; the library must answer
  # ATTN_E_NOMEM, which needs malloc to return NULL instead of ASan stopping the process (the
  # TSan build sets the same for every test).
  set_property(TEST test_attention APPEND PROPERTY ENVIRONMENT "ASAN_OPTIONS=allocator_may_return_null=1")
endif()
