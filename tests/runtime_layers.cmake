# cmake -DSOURCE_DIR=<flatface sources> -P runtime_layers.cmake
# The runtime's folders and what each may include: the architecture as a list of facts (README,
# "Architecture"). Fails naming every quoted #include under runtime/src/ that reaches a folder its
# row does not list (arrows point down: the CLI uses the runtime, the runtime never reaches back),
# and every folder that has no row. The SDK (flatface/...) and a folder's own files are always
# allowed; the build's generated headers (build_paths.hpp) too.
include(${CMAKE_CURRENT_LIST_DIR}/quoted_includes.cmake)
cmake_policy(SET CMP0057 NEW)
set(layers
  "formats:"
  "results:"
  "distributed:"
  "kernels:"
  "experiment:"
  "plugin_host:experiment formats"
  "data:experiment plugin_host formats"
  "evaluation:data formats"
  "training:experiment plugin_host data evaluation results distributed formats kernels"
  "flatness:experiment plugin_host data evaluation results training formats kernels"
  "bench:experiment plugin_host data evaluation results training flatness"
  "grid:experiment plugin_host data results training flatness distributed")
set(known "")
foreach(row IN LISTS layers)
  string(REGEX REPLACE ":.*" "" folder "${row}")
  string(REGEX REPLACE "^[^:]*:" "" uses "${row}")
  separate_arguments(uses)
  list(APPEND known ${folder})
  set(allowed_${folder} ${folder} ${uses})
endforeach()
file(GLOB children RELATIVE ${SOURCE_DIR}/runtime/src ${SOURCE_DIR}/runtime/src/*)
set(offending "")
foreach(child IN LISTS children)
  if(NOT IS_DIRECTORY ${SOURCE_DIR}/runtime/src/${child})
    continue()
  endif()
  if(NOT child IN_LIST known)
    string(APPEND offending "\n  runtime/src/${child}/: a folder with no row in runtime_layers.cmake")
    continue()
  endif()
  file(GLOB_RECURSE sources ${SOURCE_DIR}/runtime/src/${child}/*.cpp ${SOURCE_DIR}/runtime/src/${child}/*.hpp)
  foreach(src IN LISTS sources)
    quoted_includes(${src} headers)
    foreach(header IN LISTS headers)
      if(header MATCHES "^flatface/" OR header STREQUAL "build_paths.hpp")
        continue()
      endif()
      string(REGEX REPLACE "/.*" "" target "${header}")
      if(header MATCHES "/" AND target IN_LIST allowed_${child})
        continue()
      endif()
      file(RELATIVE_PATH rel ${SOURCE_DIR} ${src})
      string(APPEND offending "\n  ${rel}: #include \"${header}\"")
    endforeach()
  endforeach()
endforeach()
file(GLOB loose ${SOURCE_DIR}/runtime/src/*.cpp ${SOURCE_DIR}/runtime/src/*.hpp)
foreach(src IN LISTS loose)
  file(RELATIVE_PATH rel ${SOURCE_DIR} ${src})
  string(APPEND offending "\n  ${rel}: a file outside the folders")
endforeach()
if(offending)
  message(FATAL_ERROR "runtime/src/ breaks its layers (tests/runtime_layers.cmake):${offending}")
endif()
list(LENGTH known count)
message(STATUS "runtime/src: ${count} folders, every include follows the layers")
