// The archive's reading side: rebuild, replay, inspect; damaged and hostile archives.

#include "archive_support.hpp"

#include <catch2/catch.hpp>

using namespace test::archive;
