# cmake -DSOURCE_DIR=<flatface sources> -P plugin_includes.cmake
# Fails naming every quoted #include under plugins/ that is neither an installed SDK header
# (runtime/include/flatface/...) nor a file in the including file's own folder or below it: a
# plugin that reaches into runtime/src or a sibling's folder could not be copied out of the tree.
include(${CMAKE_CURRENT_LIST_DIR}/quoted_includes.cmake)
file(GLOB_RECURSE sources ${SOURCE_DIR}/plugins/*.cpp ${SOURCE_DIR}/plugins/*.hpp
  ${SOURCE_DIR}/plugins/*.h)
set(offending "")
foreach(src IN LISTS sources)
  get_filename_component(dir ${src} DIRECTORY)
  quoted_includes(${src} headers)
  foreach(header IN LISTS headers)
    if(header MATCHES "^flatface/" AND EXISTS ${SOURCE_DIR}/runtime/include/${header})
      continue()
    endif()
    if(NOT header MATCHES "(^|/)\\.\\.(/|$)" AND EXISTS ${dir}/${header})
      continue()
    endif()
    file(RELATIVE_PATH rel ${SOURCE_DIR} ${src})
    string(APPEND offending "\n  ${rel}: #include \"${header}\"")
  endforeach()
endforeach()
if(offending)
  message(FATAL_ERROR "plugins may include only SDK headers (flatface/...) and their own files:"
    "${offending}")
endif()
list(LENGTH sources count)
message(STATUS "${count} plugin sources include only the SDK and their own files")
