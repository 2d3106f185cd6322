# Install test: installs this build into a fresh temporary prefix and builds and runs a consumer
# through pkg-config and through find_package(attn) (driver: tests/install/run.sh).
# Runs after the build is complete, as ctest always does; `cmake --install` builds nothing itself.
add_test(NAME install
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/run.sh
          ${PROJECT_BINARY_DIR} ${CMAKE_C_COMPILER} ${CMAKE_COMMAND} "${ATTN_SANITIZERS}")
# Configures a CMake project (compiler detection) and compiles twice: give it room on a busy machine.
# `cmake --install` stages attn.pc in the build tree before copying it into the prefix, so two
# installs of one build tree (this test and readme_example) must not overlap.
set_tests_properties(install PROPERTIES TIMEOUT 300 LABELS "packaging" RESOURCE_LOCK attn_install_tree)
