# attn-explore (benchmarks/explore/), libattn's demo, installed with the library together with the
# trained example models it analyzes (models/, written by models/train.py).
include(GNUInstallDirs)
set(ATTN_MODELS_FILES
  ${PROJECT_SOURCE_DIR}/models/char_attention.safetensors
  ${PROJECT_SOURCE_DIR}/models/char_attention_inputs.safetensors
  ${PROJECT_SOURCE_DIR}/models/char_lstm.safetensors
  ${PROJECT_SOURCE_DIR}/models/heldout.txt)
set(ATTN_MODELS_INSTALL_DIR ${CMAKE_INSTALL_DATADIR}/libattn/models)

file(GLOB ATTN_EXPLORE_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/explore/*.c)
add_executable(attn-explore ${ATTN_EXPLORE_SOURCES})
target_include_directories(attn-explore PRIVATE ${CBLAS_INCLUDE})
# The demo is not library code: it may call OpenBLAS directly (its thread count, a language model's
# output layer).
target_link_libraries(attn-explore PRIVATE attn::attn ${OPENBLAS_LIB} m)
# Where the shipped models are looked for: the source tree (a build), then the installation.
target_compile_definitions(attn-explore PRIVATE _POSIX_C_SOURCE=200809L
  XP_MODELS_DIRS="${PROJECT_SOURCE_DIR}/models:${CMAKE_INSTALL_FULL_DATADIR}/libattn/models")
install(TARGETS attn-explore RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${ATTN_MODELS_FILES} DESTINATION ${ATTN_MODELS_INSTALL_DIR})
