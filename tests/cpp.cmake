# C++ wrappers (include/attn/attn.hpp): test_cpp compares every wrapper with the C call it stands
# for, and checks the exceptions, the element-count checks, move-only ownership and the thread
# rule. The library itself stays C; C++ is enabled here only, and only when a C++ compiler exists.
include(CheckLanguage)
check_language(CXX)
if(NOT CMAKE_CXX_COMPILER)
  message(STATUS "test_cpp: no C++ compiler found; the C++ wrapper test is not built")
  return()
endif()
enable_language(CXX)

attn_add_cmocka_test(test_cpp test_cpp.cpp)
set_target_properties(test_cpp PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
# Strict warnings, as a demanding consumer of attn.hpp would build it (the test code itself opts
# out of the two conversion warnings; see test_cpp.cpp).
target_compile_options(test_cpp PRIVATE -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast
  -Wnon-virtual-dtor -Woverloaded-virtual)
find_package(Threads REQUIRED)
target_link_libraries(test_cpp PRIVATE Threads::Threads)
set_property(TEST test_cpp APPEND PROPERTY LABELS cpp)
