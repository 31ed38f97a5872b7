# vcpkg port for resilite (header-only), usable as it is as an overlay port from this repository:
#   vcpkg install resilite --overlay-ports=<this repository>/ports
# It builds the source tree it sits in. A port submitted to the vcpkg registry instead fetches a
# release: see ports/README.md for the one call that changes.
set(VCPKG_BUILD_TYPE release)  # header-only: one configuration is enough

get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

# The "cli" feature also builds the `resilite` command (installed under tools/resilite).
vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS FEATURES cli RESILITE_BUILD_TOOLS)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        -DRESILITE_BUILD_TESTS=OFF
        -DRESILITE_BUILD_EXAMPLES=OFF
        -DRESILITE_BUILD_BENCHMARKS=OFF
        -DRESILITE_WERROR=OFF
)
vcpkg_cmake_install()
if("cli" IN_LIST FEATURES)
    vcpkg_copy_tools(TOOL_NAMES resilite AUTO_CLEAN)
endif()
# The package files are under share/ (the package is the same on every architecture).
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/resilite)
vcpkg_fixup_pkgconfig()
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/lib" "${CURRENT_PACKAGES_DIR}/debug"
                    "${CURRENT_PACKAGES_DIR}/share/doc")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
