# The memory-network RNN (attn_memrnn): float64 reference of its equations (in test_memory.c),
# SPARSE-vs-DENSE invariants, costs, parameter names and laws, error paths and a two-thread smoke
# test. The PyTorch comparison is tests/python/test_memory_torch.py (registered by python.cmake).
find_package(Threads REQUIRED)
attn_add_cmocka_test(test_memory test_memory.c)
target_link_libraries(test_memory PRIVATE Threads::Threads)
if(ATTN_SANITIZE)
  # A create error case asks for parameters far beyond memory; the library must answer
  # ATTN_E_NOMEM, which needs malloc to return NULL instead of ASan stopping the process.
  set_property(TEST test_memory APPEND PROPERTY ENVIRONMENT "ASAN_OPTIONS=allocator_may_return_null=1")
endif()
