# The element-wise kernels of src/core/kernels.c (internal, so built against the core sources).
attn_add_internal_test(test_kernels test_kernels.c)
