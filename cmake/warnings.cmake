# Flags for resilite's own targets (tests, examples, benchmarks); never applied to consumers.
add_library(resilite_warnings INTERFACE)
target_compile_options(resilite_warnings INTERFACE -Wall -Wextra -Wpedantic -Werror)

set(RESILITE_SANITIZE "" CACHE STRING "Sanitizers for resilite's own targets, e.g. address,undefined")
add_library(resilite_sanitize INTERFACE)
if(RESILITE_SANITIZE)
  target_compile_options(resilite_sanitize INTERFACE
      -fsanitize=${RESILITE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(resilite_sanitize INTERFACE -fsanitize=${RESILITE_SANITIZE})
endif()
