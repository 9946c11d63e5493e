# quoted_includes(<file> <variable>): the headers a source file includes with quotes
# (#include "x/y.hpp"), in order; for the include checks (plugin_includes.cmake,
# runtime_layers.cmake).
function(quoted_includes src out)
  file(STRINGS ${src} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  set(headers "")
  foreach(line IN LISTS lines)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\".*$" "\\1" header "${line}")
    list(APPEND headers "${header}")
  endforeach()
  set(${out} "${headers}" PARENT_SCOPE)
endfunction()
