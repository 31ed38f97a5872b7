#pragma once
// resilite::offsite_settings: copies off the machine, through rclone (docs/backups.md, "Off the
// machine"). Every backup (with the manifest) goes to <remote>/backups/, every archive segment to
// <remote>/archive/ (the current one at each interval); a heal that finds no local backup or no
// local archive fetches them back first.

#include <fmt/format.h>

#include <chrono>
#include <optional>
#include <string>

namespace resilite {

struct offsite_settings {
    // An rclone remote and path: "s3:bucket/app", "backup-host:app", or a connection string
    // ":webdav,url='https://dav.example':app". Empty: nothing leaves the machine.
    std::string remote;
    std::chrono::seconds interval{60};  // the current archive segment is copied this often
    std::chrono::seconds timeout{600};  // each rclone run is killed after this (and says so)

    friend bool operator==(const offsite_settings&, const offsite_settings&) = default;

    [[nodiscard]] std::optional<std::string> problem() const {
        if (interval <= std::chrono::seconds{0}) return std::string{"offsite interval must be positive"};
        if (timeout <= std::chrono::seconds{0}) return std::string{"offsite timeout must be positive"};
        return std::nullopt;
    }
};

}  // namespace resilite
