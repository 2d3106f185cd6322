# Install test: installs this build into a fresh temporary prefix and builds and runs consumers
# from it: a C program through pkg-config and through find_package(attn), and a C++17 program on
# the wrappers attn/attn.hpp through find_package(attn) and through pkg-config (driver:
# tests/install/run.sh). Runs after the build is complete, as ctest always does; `cmake --install`
# builds nothing itself.
# The C++ compiler is only looked up (the library and its C tests need none); without one, the
# C++ consumers are reported as skipped.
include(CheckLanguage)
check_language(CXX)
set(_attn_install_cxx "")
if(CMAKE_CXX_COMPILER)
  set(_attn_install_cxx "${CMAKE_CXX_COMPILER}")
endif()
add_test(NAME install
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/run.sh
          ${PROJECT_BINARY_DIR} ${CMAKE_C_COMPILER} ${CMAKE_COMMAND} "${ATTN_SANITIZERS}" "${_attn_install_cxx}")
# Configures two CMake projects (compiler detection) and compiles four times: give it room on a
# busy machine.
# `cmake --install` stages attn.pc in the build tree before copying it into the prefix, so two
# installs of one build tree (this test and readme_example) must not overlap.
set_tests_properties(install PROPERTIES TIMEOUT 300 LABELS "packaging" RESOURCE_LOCK attn_install_tree)
