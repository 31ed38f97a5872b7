#pragma once
// CRC-32 (the IEEE polynomial of zlib, PNG and Boost's crc_32_type: reflected 0xEDB88320, initial
// and final value 0xFFFFFFFF), eight bytes per step ("slicing by 8"). Records, backups and the
// write queue are checked with it; Boost's byte-at-a-time version ran at about 0.4 GB/s, which a
// heal verifying a large backup or a rebuild reading a large archive felt. Same values as before:
// files written by earlier versions still check.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace resilite::detail {

namespace crc32_detail {
inline constexpr std::uint32_t polynomial = 0xEDB88320u;

using tables = std::array<std::array<std::uint32_t, 256>, 8>;

// Computed once, at the first checksum: as a constant expression it cost every translation unit
// including it about a quarter of a second of compile time.
inline tables make_tables() noexcept {
    tables t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1u) != 0 ? (c >> 1) ^ polynomial : c >> 1;
        t[0][i] = c;
    }
    for (std::size_t s = 1; s < 8; ++s) {
        for (std::size_t i = 0; i < 256; ++i)
            t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
    }
    return t;
}

inline const tables& table() noexcept {
    static const tables t = make_tables();
    return t;
}
}  // namespace crc32_detail

class crc32 {
public:
    void process_bytes(const void* data, std::size_t n) noexcept {
        const auto* p = static_cast<const unsigned char*>(data);
        const auto& t = crc32_detail::table();
        std::uint32_t c = state_;
        while (n >= 8) {
            // Assembled byte by byte: no alignment or byte-order assumption.
            const std::uint32_t lo = (static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
                                      static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24) ^
                                     c;
            c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^ t[3][p[4]] ^
                t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
            p += 8;
            n -= 8;
        }
        while (n-- > 0)
            c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFFu];
        state_ = c;
    }
    void process(std::string_view text) noexcept { process_bytes(text.data(), text.size()); }
    [[nodiscard]] std::uint32_t checksum() const noexcept { return state_ ^ 0xFFFFFFFFu; }

private:
    std::uint32_t state_ = 0xFFFFFFFFu;
};

}  // namespace resilite::detail
