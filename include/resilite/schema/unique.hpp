#pragma once
// resilite::unique<"col">: no two rows share a value in this column.

#include <resilite/detail/fixed_string.hpp>

namespace resilite {

template <detail::fixed_string Column>
struct unique {
    static constexpr std::string_view column = Column.view();
};

}  // namespace resilite
