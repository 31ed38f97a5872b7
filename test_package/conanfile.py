import os

from conan import ConanFile
from conan.tools.build import can_run
from conan.tools.cmake import CMake, cmake_layout


class ResiliteTestConan(ConanFile):
    settings = "os", "arch", "compiler", "build_type"
    generators = "CMakeDeps", "CMakeToolchain"

    def requirements(self):
        self.requires(self.tested_reference_str)

    def layout(self):
        cmake_layout(self)

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def test(self):
        if can_run(self):
            db = os.path.join(self.cpp.build.bindir, "test_package.db")
            self.run(f"{os.path.join(self.cpp.build.bindir, 'test_package')} {db}", env="conanrun")
            # Built with -o resilite/*:with_cli=True: the command runs, from the package's bin/.
            resilite = self.dependencies[self.tested_reference_str]
            if resilite.options.get_safe("with_cli"):
                command = os.path.join(resilite.cpp_info.bindirs[0], "resilite")
                self.run(f"{command} --version && {command} check {db}", env="conanrun")
