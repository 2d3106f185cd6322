# The recurrent family: float64 reference (ref_rnn.c, reusable by other tests), invariants, costs,
# error paths and a two-thread smoke test.
find_package(Threads REQUIRED)
attn_add_cmocka_test(test_rnn test_rnn.c ref_rnn.c)
target_link_libraries(test_rnn PRIVATE Threads::Threads)
# A race in the library can deadlock the allocator instead of failing a check; fail fast then.
set_tests_properties(test_rnn PROPERTIES TIMEOUT 300)
