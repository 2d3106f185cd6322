# Allocation failures of every public call (create, load, open, save, forward, analysis): the
# n-th allocation of the library is made to fail for n = 1, 2, ... The library keeps no global state
# to arm such failures, so the test links its own copy of every source of `attn`, compiled once
# more with the library's definitions, options and dependencies into a static library, and wraps
# the allocator at link time (ld --wrap): the library's calls of malloc and its kin then reach the
# test's __wrap_* functions. yajl allocates through the core's yajl_alloc_funcs, so it is covered.
get_target_property(_attn_all_sources attn SOURCES)
attn_static_copy(attn_all_for_alloc_tests ${_attn_all_sources})

# Every allocator function that the sources call is wrapped, found here rather than listed, since
# an unwrapped one would be failure points the test silently misses: a source that starts calling
# strdup makes the link fail on the missing __wrap_strdup until alloc_wrap.h defines it.
# (Checked at configure time, which CI always runs.)
set(_allocators malloc calloc realloc aligned_alloc strdup strndup posix_memalign memalign valloc pvalloc
    reallocarray)
set(_wrapped "")
foreach(_source IN LISTS _attn_all_sources)
  file(READ ${_source} _text)
  foreach(_fn IN LISTS _allocators)
    if(_text MATCHES "[^A-Za-z0-9_]${_fn}[ \t]*\\(")
      list(APPEND _wrapped ${_fn})
    endif()
  endforeach()
endforeach()
list(REMOVE_DUPLICATES _wrapped)
list(JOIN _wrapped ",--wrap=" _wraps)

add_executable(test_alloc_failure test_alloc_failure.c)
target_link_libraries(test_alloc_failure PRIVATE attn_all_for_alloc_tests cmocka::cmocka m)
target_include_directories(test_alloc_failure PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_options(test_alloc_failure PRIVATE "LINKER:--wrap=${_wraps}")
attn_add_c_test(test_alloc_failure)
set_tests_properties(test_alloc_failure PROPERTIES TIMEOUT 600)
