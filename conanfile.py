import os
import re

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, load
from conan.tools.layout import basic_layout

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
    # Boost is used for its header-only parts (Hana, CRC): nothing of it is compiled.
    default_options = {"boost/*:header_only": True}
    exports_sources = "include/*", "LICENSE"
    no_copy_source = True

    def set_version(self):
        # The version's one place is include/resilite/version.hpp.
        text = load(self, os.path.join(self.recipe_folder, "include", "resilite", "version.hpp"))
        parts = [re.search(rf"#define RESILITE_VERSION_{p} (\d+)", text).group(1) for p in ("MAJOR", "MINOR", "PATCH")]
        self.version = ".".join(parts)

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        self.requires("sqlite3/[>=3.37 <4]", transitive_headers=True)
        self.requires("boost/[>=1.71]", transitive_headers=True)
        self.requires("fmt/[>=9 <13]", transitive_headers=True)
        self.requires("nlohmann_json/[>=3.9 <4]", transitive_headers=True)

    def package_id(self):
        self.info.clear()

    def validate(self):
        if self.settings.get_safe("compiler.cppstd"):
            check_min_cppstd(self, 20)
        # The code uses Linux interfaces: renameat2, flock (and fork in the testing toolkit).
        if self.settings.os != "Linux":
            raise ConanInvalidConfiguration(f"{self.ref} supports Linux only")

    def build(self):
        pass  # headers only

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "resilite")
        self.cpp_info.set_property("cmake_target_name", "resilite::resilite")
        self.cpp_info.set_property("pkg_config_name", "resilite")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.requires = ["sqlite3::sqlite3", "boost::headers", "fmt::fmt", "nlohmann_json::nlohmann_json"]
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]  # the background thread (std::jthread)
