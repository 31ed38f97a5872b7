# vcpkg port for resilite (header-only). Replace REF/SHA512 with the release being packaged.
set(VCPKG_BUILD_TYPE release)  # header-only: one configuration is enough

vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO resilite/resilite
    REF "v${VERSION}"
    SHA512 0
    HEAD_REF main
)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        -DRESILITE_BUILD_TESTS=OFF
        -DRESILITE_BUILD_EXAMPLES=OFF
        -DRESILITE_BUILD_BENCHMARKS=OFF
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH lib/cmake/resilite)
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/lib" "${CURRENT_PACKAGES_DIR}/debug")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
