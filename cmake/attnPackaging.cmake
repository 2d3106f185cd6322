# Packaging of libattn: the pkg-config file attn.pc and the CMake package (attnConfig.cmake,
# attnConfigVersion.cmake, attnTargets.cmake) so that consumers use either
#   cc app.c $(pkg-config --cflags --libs attn)        or
#   find_package(attn 1 REQUIRED) + target_link_libraries(app PRIVATE attn::attn).
# Included by the top-level CMakeLists.txt after install(TARGETS attn EXPORT attnTargets ...).
include(CMakePackageConfigHelpers)

set(ATTN_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/attn")

# ---- CMake package -----------------------------------------------------------------------------
install(EXPORT attnTargets
  NAMESPACE attn::
  FILE attnTargets.cmake
  DESTINATION "${ATTN_CMAKE_INSTALL_DIR}")
# configure_package_config_file makes the package relocatable: paths are computed from the
# location of attnConfig.cmake, so `cmake --install --prefix <anywhere>` works.
configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/attnConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/attnConfig.cmake"
  INSTALL_DESTINATION "${ATTN_CMAKE_INSTALL_DIR}"
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
# The SONAME carries the major version only, so any 1.x satisfies a request for 1.y with y <= x.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/attnConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion)
install(FILES "${PROJECT_BINARY_DIR}/attnConfig.cmake" "${PROJECT_BINARY_DIR}/attnConfigVersion.cmake"
  DESTINATION "${ATTN_CMAKE_INSTALL_DIR}")

# ---- pkg-config --------------------------------------------------------------------------------
# attn.pc is written at install time rather than configure time: `cmake --install --prefix P`
# overrides the prefix after configuration, and the file must name the prefix really used
# (DESTDIR, by contrast, is a staging root and correctly stays out of the file).
set(ATTN_PC_TEMPLATE "${CMAKE_CURRENT_LIST_DIR}/attn.pc.in")
set(ATTN_PC_STAGED "${PROJECT_BINARY_DIR}/pkgconfig/attn.pc")
set(_attn_pc_install_code [[
set(ATTN_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
if(IS_ABSOLUTE "@CMAKE_INSTALL_LIBDIR@")
  set(ATTN_PC_LIBDIR "@CMAKE_INSTALL_LIBDIR@")
  set(_attn_pc_dest "@CMAKE_INSTALL_LIBDIR@/pkgconfig")
else()
  set(ATTN_PC_LIBDIR "\${exec_prefix}/@CMAKE_INSTALL_LIBDIR@")
  set(_attn_pc_dest "${CMAKE_INSTALL_PREFIX}/@CMAKE_INSTALL_LIBDIR@/pkgconfig")
endif()
if(IS_ABSOLUTE "@CMAKE_INSTALL_INCLUDEDIR@")
  set(ATTN_PC_INCLUDEDIR "@CMAKE_INSTALL_INCLUDEDIR@")
else()
  set(ATTN_PC_INCLUDEDIR "\${prefix}/@CMAKE_INSTALL_INCLUDEDIR@")
endif()
set(PROJECT_VERSION "@PROJECT_VERSION@")
configure_file("@ATTN_PC_TEMPLATE@" "@ATTN_PC_STAGED@" @ONLY)
file(INSTALL DESTINATION "${_attn_pc_dest}" TYPE FILE FILES "@ATTN_PC_STAGED@")
]])
string(CONFIGURE "${_attn_pc_install_code}" _attn_pc_install_code @ONLY)
install(CODE "${_attn_pc_install_code}")
