# The API reference: `cmake --build <build> --target docs` runs Doxygen (Debian: doxygen) over
# include/attn/*.h and attn.hpp with docs/Doxyfile.in, writing <build>/docs/html. The build fails on
# any Doxygen warning, an undocumented public entity included (see docs/Doxyfile.in); ctest runs it
# as the test `docs` (tests/docs.cmake). Included by the top-level CMakeLists.txt.
find_package(Doxygen QUIET)

set(ATTN_DOCS_OUTPUT_DIR "${PROJECT_BINARY_DIR}/docs")
if(DOXYGEN_FOUND)
  configure_file("${PROJECT_SOURCE_DIR}/docs/Doxyfile.in" "${ATTN_DOCS_OUTPUT_DIR}/Doxyfile" @ONLY)
  file(GLOB _attn_public_headers CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/include/attn/*.h"
       "${PROJECT_SOURCE_DIR}/include/attn/*.hpp")
  add_custom_target(docs
    COMMAND Doxygen::doxygen "${ATTN_DOCS_OUTPUT_DIR}/Doxyfile"
    WORKING_DIRECTORY "${ATTN_DOCS_OUTPUT_DIR}"
    DEPENDS ${_attn_public_headers} "${ATTN_DOCS_OUTPUT_DIR}/Doxyfile"
    COMMENT "Doxygen: API reference in ${ATTN_DOCS_OUTPUT_DIR}/html (fails on any warning)"
    VERBATIM)
else()
  add_custom_target(docs
    COMMAND "${CMAKE_COMMAND}" -E echo "docs: doxygen not found (Debian: apt-get install doxygen)"
    COMMAND "${CMAKE_COMMAND}" -E false
    VERBATIM)
endif()
