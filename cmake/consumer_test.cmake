# Builds and runs a small consumer program against resilite, either installed into a temporary
# prefix and found with find_package, or pulled in with add_subdirectory.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

if(MODE STREQUAL "cli")
  # What the Conan recipe (with_cli) and the vcpkg port (the cli feature) do: the command alone,
  # built without -Werror, installed into bin/, and run from there.
  set(prefix "${WORK_DIR}/prefix")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/resilite-build"
      -DRESILITE_BUILD_TESTS=OFF -DRESILITE_BUILD_EXAMPLES=OFF -DRESILITE_BUILD_BENCHMARKS=OFF -DRESILITE_BUILD_TOOLS=ON
      -DRESILITE_WERROR=OFF "-DCMAKE_INSTALL_PREFIX=${prefix}")
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/resilite-build" --target resilite_cli)
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/resilite-build")
  execute_process(COMMAND "${prefix}/bin/resilite" --version RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "^resilite [0-9]+\\.[0-9]+\\.[0-9]+")
    message(FATAL_ERROR "the installed command did not run: ${rc} ${out}")
  endif()
  message(STATUS "the command (installed) ran: ${out}")
  return()
endif()

if(MODE STREQUAL "find_package" OR MODE STREQUAL "pkg-config")
  set(prefix "${WORK_DIR}/prefix")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/resilite-build"
      -DRESILITE_BUILD_TESTS=OFF -DRESILITE_BUILD_EXAMPLES=OFF -DRESILITE_BUILD_BENCHMARKS=OFF -DRESILITE_BUILD_TOOLS=OFF
      "-DCMAKE_INSTALL_PREFIX=${prefix}")
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/resilite-build")
  # Headers only: every installed file is the same on every architecture, under include/ and share/.
  foreach(file share/cmake/resilite/resiliteConfig.cmake share/cmake/resilite/resiliteConfigVersion.cmake
               share/pkgconfig/resilite.pc share/doc/resilite/LICENSE include/resilite/resilite.hpp)
    if(NOT EXISTS "${prefix}/${file}")
      message(FATAL_ERROR "the install tree lacks ${file}")
    endif()
  endforeach()
  if(EXISTS "${prefix}/lib")
    message(FATAL_ERROR "the install tree has a lib/ directory, but the package is headers only")
  endif()
endif()
if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/consumer/find_package" -B "${WORK_DIR}/build"
      "-DCMAKE_PREFIX_PATH=${prefix}")
elseif(MODE STREQUAL "pkg-config")
  # A plain Makefile, no CMake: the compiler and flags come from pkg-config alone.
  set(ENV{PKG_CONFIG_PATH} "${prefix}/share/pkgconfig")
  file(MAKE_DIRECTORY "${WORK_DIR}/build")
  run(make -C "${WORK_DIR}/build" -f "${SOURCE_DIR}/tests/consumer/pkg-config/Makefile"
      "CXX=${CXX}" "SOURCE=${SOURCE_DIR}/tests/consumer/main.cpp")
  run("${WORK_DIR}/build/consumer" "${WORK_DIR}/consumer.db")
  message(STATUS "consumer (pkg-config) built and ran")
  return()
else()
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/consumer/add_subdirectory" -B "${WORK_DIR}/build"
      "-DRESILITE_SOURCE_DIR=${SOURCE_DIR}")
endif()
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/consumer" "${WORK_DIR}/consumer.db")
message(STATUS "consumer (${MODE}) built and ran")
