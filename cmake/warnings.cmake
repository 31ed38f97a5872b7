# Flags for resilite's own targets (tests, examples, benchmarks); never applied to consumers.
add_library(resilite_warnings INTERFACE)
# A package manager building the command with another compiler turns -Werror off: a warning a
# newer compiler adds must not stop an install.
option(RESILITE_WERROR "Treat warnings as errors in resilite's own targets" ON)
target_compile_options(resilite_warnings INTERFACE -Wall -Wextra -Wpedantic $<$<BOOL:${RESILITE_WERROR}>:-Werror>)

set(RESILITE_SANITIZE "" CACHE STRING "Sanitizers for resilite's own targets, e.g. address,undefined")
add_library(resilite_sanitize INTERFACE)
if(RESILITE_SANITIZE)
  target_compile_options(resilite_sanitize INTERFACE
      -fsanitize=${RESILITE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(resilite_sanitize INTERFACE -fsanitize=${RESILITE_SANITIZE})
endif()
