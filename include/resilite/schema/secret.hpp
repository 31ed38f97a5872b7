#pragma once
// resilite::secret<"col">: a column whose values must never leave the database (text archives
// leave it out).

#include <resilite/detail/fixed_string.hpp>

namespace resilite {

template <detail::fixed_string Column>
struct secret {
    static constexpr std::string_view column = Column.view();
};

}  // namespace resilite
