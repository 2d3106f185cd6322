# The parameter registry and safetensors I/O (src/core/params.c, safetensors.c).
attn_add_cmocka_test(test_params test_params.c)

# The registry's internal API (declaration errors, aliases, init laws, alignment) is not exported,
# so the same file is also built with ATTN_TEST_INTERNAL against the core sources compiled in.
get_target_property(_attn_core_sources attn SOURCES)
list(FILTER _attn_core_sources INCLUDE REGEX "src/core/[^/]*\\.c$")
get_target_property(_attn_definitions attn COMPILE_DEFINITIONS)
get_target_property(_attn_includes attn INCLUDE_DIRECTORIES)
get_target_property(_attn_libraries attn LINK_LIBRARIES)
add_executable(test_params_internal test_params.c ${_attn_core_sources})
target_compile_definitions(test_params_internal PRIVATE ${_attn_definitions} ATTN_TEST_INTERNAL)
target_include_directories(test_params_internal PRIVATE ${_attn_includes})
target_link_libraries(test_params_internal PRIVATE ${_attn_libraries} cmocka::cmocka m)
add_test(NAME test_params_internal COMMAND test_params_internal)
set_tests_properties(test_params_internal PROPERTIES ENVIRONMENT "ATTN_TEST_TMPDIR=${CMAKE_CURRENT_BINARY_DIR}")
