# The parameter registry and safetensors I/O (src/core/params.c, safetensors.c).
attn_add_cmocka_test(test_params test_params.c)

# The registry's internal API (declaration errors, aliases, init laws, alignment) is not exported,
# so the same file is also built against the core sources.
attn_add_internal_test(test_params_internal test_params.c)
# It injects allocation failures (test_allocation_failures): malloc and its kin are wrapped.
target_link_options(test_params_internal PRIVATE
  "LINKER:--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc")
