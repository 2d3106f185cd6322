# The Perceiver (attn_perceiver): float64 reference of its equations (in test_perceiver.c),
# invariants (permutation of the inputs, tied = untied with equal weights, masked data ignored), a
# lucidrains-style state_dict file with the tied layers repeated, costs, parameter names and laws,
# error paths and 8 threads on one handle. The PyTorch comparison is
# tests/python/test_perceiver_torch.py (registered by python.cmake).
find_package(Threads REQUIRED)
attn_add_cmocka_test(test_perceiver test_perceiver.c)
target_link_libraries(test_perceiver PRIVATE Threads::Threads)
if(ATTN_SANITIZE)
  # A create error case asks for parameters far beyond memory; the library must answer
  # ATTN_E_NOMEM, which needs malloc to return NULL instead of ASan stopping the process.
  set_property(TEST test_perceiver APPEND PROPERTY ENVIRONMENT "ASAN_OPTIONS=allocator_may_return_null=1")
endif()
