# The thread contract, every family: 8 threads at once on one const handle (half with their own
# workspace, half with NULL), results bit for bit the serial ones; 8 threads loading and opening
# different safetensors files into handles of their own. The ATTN_TSAN build runs it under
# ThreadSanitizer (tests/CMakeLists.txt makes the first report fail it).
find_package(Threads REQUIRED)
attn_add_cmocka_test(test_concurrency test_concurrency.c)
target_link_libraries(test_concurrency PRIVATE Threads::Threads)
# A race can deadlock the allocator instead of failing a check; fail fast then.
set_tests_properties(test_concurrency PROPERTIES TIMEOUT 300)
