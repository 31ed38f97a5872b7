import os
import re

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load

required_conan_version = ">=2.0"


class ResiliteConan(ConanFile):
    name = "resilite"
    license = "MIT"
    url = "https://github.com/resilite/resilite"
    homepage = "https://github.com/resilite/resilite"
    description = "Header-only, policy-based C++20 library that makes SQLite databases survive production"
    topics = ("sqlite", "database", "reliability", "backup", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    # with_cli: also build the `resilite` command for operators (bin/resilite), e.g. as a tool
    # requirement: self.tool_requires("resilite/<version>", options={"with_cli": True}).
    options = {"with_cli": [True, False]}
    # Boost is used for its header-only parts (Hana, CRC): nothing of it is compiled.
    default_options = {"with_cli": False, "boost/*:header_only": True}
    exports_sources = "include/*", "LICENSE", "CMakeLists.txt", "cmake/*", "tools/*"
    no_copy_source = True

    def set_version(self):
        # The version's one place is include/resilite/version.hpp.
        text = load(self, os.path.join(self.recipe_folder, "include", "resilite", "version.hpp"))
        parts = [re.search(rf"#define RESILITE_VERSION_{p} (\d+)", text).group(1) for p in ("MAJOR", "MINOR", "PATCH")]
        self.version = ".".join(parts)

    def configure(self):
        if self.options.with_cli:
            # Headers and an executable: no longer one package for every configuration.
            self.package_type = "unknown"

    def layout(self):
        cmake_layout(self, src_folder=".")

    def requirements(self):
        self.requires("sqlite3/[>=3.37 <4]", transitive_headers=True)
        self.requires("boost/[>=1.71]", transitive_headers=True)
        self.requires("fmt/[>=9 <13]", transitive_headers=True)
        if self.options.with_cli:
            self.requires("cli11/[>=2.1 <3]", visible=False)  # parses the command's arguments only
            self.requires("nlohmann_json/[>=3.9 <4]", visible=False)  # the command's --json output only

    def build_requirements(self):
        if self.options.with_cli:
            self.tool_requires("cmake/[>=3.21 <4]")

    def package_id(self):
        if not self.info.options.with_cli:
            self.info.clear()  # headers only: one package for every configuration

    def generate(self):
        if self.options.with_cli:
            CMakeDeps(self).generate()
            tc = CMakeToolchain(self)
            tc.cache_variables["RESILITE_BUILD_TESTS"] = False
            tc.cache_variables["RESILITE_BUILD_EXAMPLES"] = False
            tc.cache_variables["RESILITE_BUILD_BENCHMARKS"] = False
            tc.cache_variables["RESILITE_BUILD_TOOLS"] = True
            tc.cache_variables["RESILITE_WERROR"] = False
            tc.generate()

    def validate(self):
        if self.settings.get_safe("compiler.cppstd"):
            check_min_cppstd(self, 20)
        # The code uses Linux interfaces: renameat2, flock (and fork in the testing toolkit).
        if self.settings.os != "Linux":
            raise ConanInvalidConfiguration(f"{self.ref} supports Linux only")

    def build(self):
        if self.options.with_cli:
            cmake = CMake(self)
            cmake.configure()
            cmake.build(target="resilite_cli")

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))
        if self.options.with_cli:
            # The command alone: CMake's package files are not shipped (Conan generates its own).
            copy(self, "resilite", os.path.join(self.build_folder, "tools"), os.path.join(self.package_folder, "bin"),
                 keep_path=False)

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "resilite")
        self.cpp_info.set_property("cmake_target_name", "resilite::resilite")
        self.cpp_info.set_property("pkg_config_name", "resilite")
        self.cpp_info.bindirs = ["bin"] if self.options.with_cli else []  # bin/ goes on PATH for tool_requires
        self.cpp_info.libdirs = []
        self.cpp_info.requires = ["sqlite3::sqlite3", "boost::headers", "fmt::fmt"]
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]  # the background thread (std::jthread)
