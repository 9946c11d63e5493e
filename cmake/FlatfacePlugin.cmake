# flatface_add_plugin(NAME SOURCES src... [LIBRARIES lib...] [OUTPUT_DIRECTORY dir]) builds a
# plugin library NAME.so that the host loads. In the flatface build tree it links the runtime
# target and lands in the host's plugin folder (unless OUTPUT_DIRECTORY says otherwise, as for
# the test plugins); out of tree it links flatface::flatface and lands in the current binary dir.
function(flatface_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  add_library(${name} MODULE ${ARG_SOURCES})
  if(TARGET flatface)
    target_link_libraries(${name} PRIVATE flatface)
    set(out ${FLATFACE_PLUGIN_OUTPUT_DIR})
    if(NOT ARG_OUTPUT_DIRECTORY)
      set_property(GLOBAL APPEND PROPERTY FLATFACE_PLUGINS ${name})
    endif()
  else()
    target_link_libraries(${name} PRIVATE flatface::flatface)
    set(out ${CMAKE_CURRENT_BINARY_DIR})
  endif()
  if(ARG_OUTPUT_DIRECTORY)
    set(out ${ARG_OUTPUT_DIRECTORY})
  endif()
  target_link_libraries(${name} PRIVATE ${ARG_LIBRARIES})
  set_target_properties(${name} PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY ${out})
  if(COMMAND flatface_warnings)
    flatface_warnings(${name})
  endif()
endfunction()

# In-tree plugins are installed next to the host.
function(flatface_install_plugin name)
  install(TARGETS ${name} LIBRARY DESTINATION ${FLATFACE_INSTALL_PLUGIN_DIR})
  set_target_properties(${name} PROPERTIES INSTALL_RPATH "$ORIGIN/../..")
endfunction()
