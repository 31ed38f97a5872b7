from conan import ConanFile
from conan.tools.cmake import CMake, cmake_layout
from conan.tools.files import copy
import os


class ResiliteConan(ConanFile):
    name = "resilite"
    version = "0.1.0"
    license = "MIT"
    description = "Header-only, policy-based C++20 library that makes SQLite databases survive production"
    topics = ("sqlite", "database", "reliability", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    exports_sources = "CMakeLists.txt", "cmake/*", "include/*", "LICENSE"
    no_copy_source = True
    generators = "CMakeDeps", "CMakeToolchain"

    def layout(self):
        cmake_layout(self)

    def requirements(self):
        self.requires("sqlite3/[>=3.37 <4]", transitive_headers=True)
        self.requires("boost/[>=1.71]", transitive_headers=True)
        self.requires("fmt/[>=9 <12]", transitive_headers=True)
        self.requires("nlohmann_json/[>=3.9 <4]", transitive_headers=True)

    def package_id(self):
        self.info.clear()

    def build(self):
        cmake = CMake(self)
        cmake.configure(variables={"RESILITE_BUILD_TESTS": "OFF",
                                   "RESILITE_BUILD_EXAMPLES": "OFF",
                                   "RESILITE_BUILD_BENCHMARKS": "OFF"})

    def package(self):
        cmake = CMake(self)
        cmake.install()
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "resilite")
        self.cpp_info.set_property("cmake_target_name", "resilite::resilite")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.requires = ["sqlite3::sqlite3", "boost::headers", "fmt::fmt", "nlohmann_json::nlohmann_json"]
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]  # the background thread (std::jthread)
