#pragma once
// resilite::blob: the type BLOB columns read into. Binding also accepts
// std::span<const std::byte> and std::vector<std::uint8_t>.

#include <cstddef>
#include <vector>

namespace resilite {

using blob = std::vector<std::byte>;

}  // namespace resilite
