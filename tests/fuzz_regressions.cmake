# The fuzz targets of fuzz/ replayed over their seed corpus and their saved crashers
# (fuzz/regressions/<target>/), without libFuzzer: fuzz/replay_main.c calls the target's
# LLVMFuzzerTestOneInput once per file. They run with this build's compiler and sanitizers (the
# ASan+UBSan and TSan stages included), so every input that once crashed stays a test.
# fuzz_make_seeds rebuilds the seed corpus: fuzz_make_seeds fuzz/corpus (see fuzz/README.md).
set(_attn_fuzz_dir ${PROJECT_SOURCE_DIR}/fuzz)
foreach(target params_load forward)
  add_executable(fuzz_replay_${target} ${_attn_fuzz_dir}/fuzz_${target}.c ${_attn_fuzz_dir}/replay_main.c)
  target_link_libraries(fuzz_replay_${target} PRIVATE attn::attn m)
  add_test(NAME fuzz_replay_${target}
           COMMAND fuzz_replay_${target} ${_attn_fuzz_dir}/corpus/${target} ${_attn_fuzz_dir}/regressions/${target})
  # The temporary file of fuzz_params_load goes to the build tree, not /tmp.
  set_tests_properties(fuzz_replay_${target} PROPERTIES ENVIRONMENT "TMPDIR=${CMAKE_CURRENT_BINARY_DIR}")
  if(ATTN_SANITIZE)
    # Absurd sizes must be answered with ATTN_E_NOMEM or ATTN_E_SHAPE, which needs malloc to
    # return NULL instead of ASan stopping the process.
    set_property(TEST fuzz_replay_${target} APPEND PROPERTY ENVIRONMENT "ASAN_OPTIONS=allocator_may_return_null=1")
  endif()
endforeach()
add_executable(fuzz_make_seeds ${_attn_fuzz_dir}/make_seeds.c)
target_link_libraries(fuzz_make_seeds PRIVATE attn::attn m)
