# Bad values and huge sizes, every family: NaN/Inf weights rejected, NaN/Inf inputs propagated as
# documented (ATTN_E_NUMERICAL where LAPACK cannot take them), extreme scores giving finite
# outputs, the memory RNN's addressing finite on zero memory; creates, forwards, costs, attn_params
# calls and analysis at 2^40 elements failing cleanly before any large allocation (the test binary
# interposes malloc to prove it in plain builds).
attn_add_cmocka_test(test_numerics test_numerics.c)
if(ATTN_SANITIZE)
  # A size check that failed to stop a 2^40-element request must surface as ATTN_E_NOMEM (which the
  # test then reports), not as ASan stopping the process.
  set_property(TEST test_numerics APPEND PROPERTY ENVIRONMENT "ASAN_OPTIONS=allocator_may_return_null=1")
endif()
