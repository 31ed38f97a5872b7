#pragma once
// resilite::sqlite::file_set: a database file and the side files SQLite keeps beside it (-wal,
// -shm, -journal): their names, and removing or moving them together. A database is never
// handled without them: a -wal left behind holds committed transactions of *that* file, and
// replayed into another one it corrupts it.

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace resilite::sqlite {

class file_set {
public:
    static constexpr std::array<std::string_view, 3> side_suffixes{"-wal", "-shm", "-journal"};

    explicit file_set(std::filesystem::path database) : db_(std::move(database)) {}

    [[nodiscard]] const std::filesystem::path& database() const noexcept { return db_; }
    [[nodiscard]] std::filesystem::path wal() const { return side("-wal"); }
    [[nodiscard]] std::filesystem::path shm() const { return side("-shm"); }
    [[nodiscard]] std::filesystem::path journal() const { return side("-journal"); }

    // Size of the -wal file now (0 when there is none).
    [[nodiscard]] std::uint64_t wal_size() const noexcept {
        std::error_code ec;
        const auto n = std::filesystem::file_size(wal(), ec);
        return ec ? 0 : static_cast<std::uint64_t>(n);
    }

    // The side files, whether they exist or not.
    [[nodiscard]] std::vector<std::filesystem::path> side_files() const {
        std::vector<std::filesystem::path> out;
        for (const auto suffix : side_suffixes)
            out.push_back(side(suffix));
        return out;
    }

    // Removes the side files only (a database put in place must not meet another one's log).
    void remove_side_files() const noexcept {
        for (const auto suffix : side_suffixes) {
            std::error_code ec;
            std::filesystem::remove(side(suffix), ec);
        }
    }

    // Removes the database and its side files.
    void remove_all() const noexcept {
        std::error_code ec;
        std::filesystem::remove(db_, ec);
        remove_side_files();
    }

    // Moves the files that exist into `dir`, keeping their names. Throws filesystem_error.
    void move_into(const std::filesystem::path& dir) const {
        const auto name = db_.filename().string();
        for (const std::string_view suffix : {std::string_view{}, side_suffixes[0], side_suffixes[1], side_suffixes[2]}) {
            const auto f = side(suffix);
            std::error_code ec;
            if (std::filesystem::exists(f, ec)) std::filesystem::rename(f, dir / (name + std::string{suffix}));
        }
    }

private:
    [[nodiscard]] std::filesystem::path side(std::string_view suffix) const {
        return std::filesystem::path{db_.string() + std::string{suffix}};
    }

    std::filesystem::path db_;
};

}  // namespace resilite::sqlite
