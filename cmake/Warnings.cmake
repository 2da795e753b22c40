# Warnings for every qwenbox target: -Wall -Wextra and a few that catch real bugs.
add_library(qb_warnings INTERFACE)
target_compile_options(qb_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wshadow=local -Wnon-virtual-dtor -Wcast-align
  -Wunused -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${QWENBOX_WERROR}>>:-Werror>)
