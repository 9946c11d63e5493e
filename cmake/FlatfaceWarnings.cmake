# Warnings for our own targets (not for third-party headers, which come in as system includes).
function(flatface_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
endfunction()
