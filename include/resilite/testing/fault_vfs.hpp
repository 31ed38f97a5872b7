#pragma once
// resilite::testing::fault_vfs: a VFS shim over the default one that fails chosen I/O calls,
// runs out of disk space, and simulates power loss. Shipped for users' own tests.
//
//   resilite::testing::fault_vfs vfs{"faulty"};          // registered under this name
//   vfs.fail(resilite::testing::io_op::sync, 3, SQLITE_IOERR_FSYNC);  // the 3rd xSync fails, once
//   vfs.crash_at_sync(5);                                  // power is cut during the 5th xSync
//   ... open connections with vfs.name() (sqlite3_open_v2 / resilite::sqlite::connection) ...
//   vfs.power_loss(rng);  // files as a rebooted machine would find them (connections closed first)
//   vfs.on_power_cut([&] { ... });  // e.g. copy files written outside SQLite as the cut left them
//
// Power loss: every write since the last xSync of its file is kept in a list. When the power
// is cut (the n-th xSync, or cut_power()), every later call fails with SQLITE_IOERR and
// power_loss() then rewrites each affected file: back to its last synced content, then each
// unsynced write, in order, either applied, dropped, or torn (random bytes over every sector it
// touches, the file's xSectorSize). Because a torn sector can take bytes written earlier with
// it, the VFS does not claim power-safe overwrite: SQLite then pads each WAL commit to a
// sector boundary, as it must on such disks. The -shm files are removed (shared memory does not survive a
// reboot). Directory entries are treated as durable (a created file does not vanish).

#include <sqlite3.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace resilite::testing {

enum class io_op { read, write, sync, truncate, open };

// What happens to one unsynced write when the power is cut.
enum class write_fate { applied, dropped, torn };

class fault_vfs {
public:
    explicit fault_vfs(std::string name) : name_(std::move(name)) {
        base_ = sqlite3_vfs_find(nullptr);
        if (base_ == nullptr) throw std::runtime_error("no default SQLite VFS");
        vfs_ = *base_;
        vfs_.iVersion = 1;  // open/delete/access/fullpathname... ; no xCurrentTimeInt64 shim needed
        vfs_.szOsFile = static_cast<int>(sizeof(file)) + base_->szOsFile;
        vfs_.zName = name_.c_str();
        vfs_.pAppData = this;
        vfs_.pNext = nullptr;
        vfs_.xOpen = &fault_vfs::x_open;
        vfs_.xDelete = &fault_vfs::x_delete;
        if (sqlite3_vfs_register(&vfs_, 0) != SQLITE_OK)
            throw std::runtime_error("cannot register the fault VFS");
    }
    fault_vfs(const fault_vfs&) = delete;
    fault_vfs& operator=(const fault_vfs&) = delete;
    // Close every connection using this VFS first.
    ~fault_vfs() { sqlite3_vfs_unregister(&vfs_); }

    [[nodiscard]] const char* name() const noexcept { return name_.c_str(); }

    // The n-th call (1-based, counted from now) of `op` fails with `code`; with `persistent`,
    // every later one too.
    void fail(io_op op, int nth, int code, bool persistent = false) {
        std::lock_guard lock(mutex_);
        auto& r = rules_[static_cast<int>(op)];
        r = {counts_[static_cast<int>(op)] + nth, code, persistent};
    }
    void clear_failures() {
        std::lock_guard lock(mutex_);
        for (auto& r : rules_)
            r = {};
    }
    // Calls of `op` seen so far.
    [[nodiscard]] int count(io_op op) const {
        std::lock_guard lock(mutex_);
        return counts_[static_cast<int>(op)];
    }

    // Disk full: writes that would grow the files past `bytes` more fail with SQLITE_FULL.
    void set_space(std::int64_t bytes) {
        std::lock_guard lock(mutex_);
        space_ = bytes;
    }
    void unlimited_space() {
        std::lock_guard lock(mutex_);
        space_ = -1;
    }

    // Power loss at the n-th xSync from now (the sync does not happen).
    void crash_at_sync(int nth) {
        std::lock_guard lock(mutex_);
        crash_at_sync_ = counts_[static_cast<int>(io_op::sync)] + nth;
    }
    void cut_power() {
        {
            std::lock_guard lock(mutex_);
            crashed_ = true;
        }
        power_was_cut();
    }
    // Called once each time the power is cut (at the crash_at_sync, or by cut_power()), on the
    // thread that cut it, before anything else runs there. Files the application writes without
    // SQLite (a text archive, a marker file) are not tracked by this VFS, and the process goes on
    // writing them after a simulated cut, which no process could after a real one: a test copies
    // them here, as the cut left them, and puts the copies back after power_loss(). `f` must not
    // use this VFS.
    void on_power_cut(std::function<void()> f) {
        std::lock_guard lock(mutex_);
        on_power_cut_ = std::move(f);
    }
    [[nodiscard]] bool crashed() const {
        std::lock_guard lock(mutex_);
        return crashed_;
    }

    // After the power was cut and the connections closed: leaves every file as a rebooted
    // machine would see it, deciding each unsynced write's fate with `fate`. Returns how many
    // writes were applied, dropped and torn. The VFS works normally again afterwards.
    template <class Fate>
    std::array<int, 3> power_loss(Fate&& fate, std::mt19937_64& rng) {
        std::lock_guard lock(mutex_);
        std::array<int, 3> tally{};
        for (auto& [path, history] : pending_) {
            std::FILE* f = std::fopen(path.c_str(), "r+b");
            if (f == nullptr) continue;
            // Back to the last synced image: undo in reverse order.
            for (auto it = history.rbegin(); it != history.rend(); ++it) {
                write_at(f, it->offset, it->old_bytes);
                if (it->old_size >= 0) truncate_to(f, path, it->old_size);
            }
            // Replay each unsynced write according to its fate.
            for (const auto& w : history) {
                if (w.is_truncate) {
                    truncate_to(f, path, w.offset);  // a truncate is metadata: kept, like a dir entry
                    continue;
                }
                const auto what = fate(rng);
                ++tally[static_cast<int>(what)];
                if (what == write_fate::applied) {
                    write_at(f, w.offset, w.new_bytes);
                } else if (what == write_fate::torn) {
                    const std::int64_t first = w.offset / w.sector * w.sector;
                    const std::int64_t end = w.offset + static_cast<std::int64_t>(w.new_bytes.size());
                    const std::int64_t last = (end + w.sector - 1) / w.sector * w.sector;
                    std::vector<unsigned char> junk(static_cast<std::size_t>(last - first));
                    for (auto& b : junk)
                        b = static_cast<unsigned char>(rng());
                    write_at(f, first, junk);
                }
            }
            std::fclose(f);
        }
        pending_.clear();
        for (const auto& shm : shm_files_)
            std::filesystem::remove(shm);
        shm_files_.clear();
        crashed_ = false;
        crash_at_sync_ = -1;
        return tally;
    }

    // The usual choice: each unsynced write applied, dropped or torn with equal chance.
    std::array<int, 3> power_loss(std::mt19937_64& rng) {
        return power_loss([](std::mt19937_64& r) { return static_cast<write_fate>(r() % 3); }, rng);
    }

private:
    struct rule {
        int at = 0;  // 0: none
        int code = SQLITE_OK;
        bool persistent = false;
    };
    struct pending_write {
        std::int64_t offset = 0;
        std::vector<unsigned char> old_bytes;  // what the region held before (up to old EOF)
        std::int64_t old_size = -1;            // file size before, when the write extended it
        std::vector<unsigned char> new_bytes;
        bool is_truncate = false;
        std::int64_t sector = 512;
    };
    struct file {
        sqlite3_file base;
        fault_vfs* vfs;
        sqlite3_file* real;
        std::string path;
        bool track;  // main database, journal or WAL: subject to power loss
    };

    // ---- helpers (mutex held by callers) ----------------------------------------------------

    static void write_at(std::FILE* f, std::int64_t offset, const std::vector<unsigned char>& bytes) {
        if (bytes.empty()) return;
        std::fseek(f, static_cast<long>(offset), SEEK_SET);
        std::fwrite(bytes.data(), 1, bytes.size(), f);
        std::fflush(f);
    }
    static void truncate_to(std::FILE* f, const std::string& path, std::int64_t size) {
        std::fflush(f);
        std::error_code ec;
        std::filesystem::resize_file(path, static_cast<std::uintmax_t>(size), ec);
    }

    // The failure code for this call of `op`, or SQLITE_OK.
    int check(io_op op) {
        const int i = static_cast<int>(op);
        const int n = ++counts_[i];
        if (crashed_) return SQLITE_IOERR;
        const auto& r = rules_[i];
        if (r.at > 0 && (n == r.at || (r.persistent && n > r.at))) return r.code;
        return SQLITE_OK;
    }

    void power_was_cut() noexcept {
        std::function<void()> f;
        {
            std::lock_guard lock(mutex_);
            f = on_power_cut_;
        }
        try {
            if (f) f();
        } catch (...) {  // the test sees what it failed to copy
        }
    }

    static fault_vfs& self(sqlite3_vfs* v) { return *static_cast<fault_vfs*>(v->pAppData); }
    static file& as(sqlite3_file* f) { return *reinterpret_cast<file*>(f); }

    // ---- VFS methods --------------------------------------------------------------------------

    static int x_open(sqlite3_vfs* v, const char* name, sqlite3_file* out, int flags,
                      int* out_flags) noexcept {
        auto& vfs = self(v);
        auto& f = as(out);
        f.base.pMethods = nullptr;
        try {
            {
                std::lock_guard lock(vfs.mutex_);
                if (const int rc = vfs.check(io_op::open); rc != SQLITE_OK) return rc;
            }
            f.real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(out) + sizeof(file));
            const int rc = vfs.base_->xOpen(vfs.base_, name, f.real, flags, out_flags);
            if (rc != SQLITE_OK) return rc;
            new (&f.path) std::string(name != nullptr ? name : "");
            f.vfs = &vfs;
            f.track = name != nullptr &&
                      (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL)) != 0;
            std::lock_guard lock(vfs.mutex_);
            if (!vfs.methods_ready_) vfs.init_methods(*f.real->pMethods);
            f.base.pMethods = &vfs.methods_;
            return SQLITE_OK;
        } catch (...) {
            return SQLITE_CANTOPEN;
        }
    }

    // One table of methods for every file (the unix VFS gives all files the same ones).
    void init_methods(const sqlite3_io_methods& real) {
        methods_ = real;
        methods_.iVersion = std::min(real.iVersion, 2);  // no mmap: every write goes through xWrite
        methods_.xClose = &x_close;
        methods_.xRead = &x_read;
        methods_.xWrite = &x_write;
        methods_.xTruncate = &x_truncate;
        methods_.xSync = &x_sync;
        methods_.xFileSize = &x_file_size;
        methods_.xLock = &x_lock;
        methods_.xUnlock = &x_unlock;
        methods_.xCheckReservedLock = &x_check_reserved;
        methods_.xFileControl = &x_file_control;
        methods_.xSectorSize = &x_sector_size;
        methods_.xDeviceCharacteristics = &x_device;
        methods_.xShmMap = &x_shm_map;
        methods_.xShmLock = &x_shm_lock;
        methods_.xShmBarrier = &x_shm_barrier;
        methods_.xShmUnmap = &x_shm_unmap;
        methods_ready_ = true;
    }

    static int x_delete(sqlite3_vfs* v, const char* name, int sync_dir) noexcept {
        auto& vfs = self(v);
        {
            std::lock_guard lock(vfs.mutex_);
            if (vfs.crashed_) return SQLITE_IOERR_DELETE;
            vfs.pending_.erase(name);
        }
        return vfs.base_->xDelete(vfs.base_, name, sync_dir);
    }

    static int x_close(sqlite3_file* p) noexcept {
        auto& f = as(p);
        const int rc = f.real->pMethods != nullptr ? f.real->pMethods->xClose(f.real) : SQLITE_OK;
        f.path.~basic_string();
        return rc;
    }

    static int x_read(sqlite3_file* p, void* buf, int n, sqlite3_int64 off) noexcept {
        auto& f = as(p);
        {
            std::lock_guard lock(f.vfs->mutex_);
            if (const int rc = f.vfs->check(io_op::read); rc != SQLITE_OK) return rc;
        }
        return f.real->pMethods->xRead(f.real, buf, n, off);
    }

    static int x_write(sqlite3_file* p, const void* buf, int n, sqlite3_int64 off) noexcept {
        auto& f = as(p);
        auto& vfs = *f.vfs;
        try {
            std::lock_guard lock(vfs.mutex_);
            if (const int rc = vfs.check(io_op::write); rc != SQLITE_OK) return rc;
            sqlite3_int64 size = 0;
            if (f.real->pMethods->xFileSize(f.real, &size) != SQLITE_OK) return SQLITE_IOERR_WRITE;
            const sqlite3_int64 growth = off + n > size ? off + n - size : 0;
            if (vfs.space_ >= 0 && growth > 0) {
                if (growth > vfs.space_) return SQLITE_FULL;
                vfs.space_ -= growth;
            }
            if (f.track) {
                pending_write w;
                w.offset = off;
                const auto kept = std::max<sqlite3_int64>(0, std::min<sqlite3_int64>(n, size - off));
                w.old_bytes.resize(static_cast<std::size_t>(kept));
                if (kept > 0 && f.real->pMethods->xRead(f.real, w.old_bytes.data(), static_cast<int>(kept),
                                                        off) != SQLITE_OK) {
                    return SQLITE_IOERR_WRITE;
                }
                if (growth > 0) w.old_size = size;
                w.sector = std::max(512, f.real->pMethods->xSectorSize(f.real));
                const auto* bytes = static_cast<const unsigned char*>(buf);
                w.new_bytes.assign(bytes, bytes + n);
                vfs.pending_[f.path].push_back(std::move(w));
            }
            return f.real->pMethods->xWrite(f.real, buf, n, off);
        } catch (...) {
            return SQLITE_IOERR_NOMEM;
        }
    }

    static int x_truncate(sqlite3_file* p, sqlite3_int64 size) noexcept {
        auto& f = as(p);
        auto& vfs = *f.vfs;
        try {
            std::lock_guard lock(vfs.mutex_);
            if (const int rc = vfs.check(io_op::truncate); rc != SQLITE_OK) return rc;
            if (f.track) {
                sqlite3_int64 old = 0;
                f.real->pMethods->xFileSize(f.real, &old);
                if (size < old) {
                    pending_write w;
                    w.offset = size;
                    w.is_truncate = true;
                    w.old_bytes.resize(static_cast<std::size_t>(old - size));
                    if (f.real->pMethods->xRead(f.real, w.old_bytes.data(), static_cast<int>(old - size),
                                                size) != SQLITE_OK) {
                        return SQLITE_IOERR_TRUNCATE;
                    }
                    vfs.pending_[f.path].push_back(std::move(w));
                }
            }
            return f.real->pMethods->xTruncate(f.real, size);
        } catch (...) {
            return SQLITE_IOERR_NOMEM;
        }
    }

    static int x_sync(sqlite3_file* p, int flags) noexcept {
        auto& f = as(p);
        auto& vfs = *f.vfs;
        bool cut = false;
        {
            std::lock_guard lock(vfs.mutex_);
            if (const int rc = vfs.check(io_op::sync); rc != SQLITE_OK) return rc;
            cut = vfs.crash_at_sync_ > 0 && vfs.counts_[static_cast<int>(io_op::sync)] == vfs.crash_at_sync_;
            vfs.crashed_ = vfs.crashed_ || cut;
        }
        if (cut) {
            vfs.power_was_cut();
            return SQLITE_IOERR_FSYNC;
        }
        const int rc = f.real->pMethods->xSync(f.real, flags);
        if (rc == SQLITE_OK) {
            std::lock_guard lock(vfs.mutex_);
            vfs.pending_.erase(f.path);  // durable now
        }
        return rc;
    }

    // The rest forward (locks fail after a crash so nothing more happens).
    static int x_file_size(sqlite3_file* p, sqlite3_int64* size) noexcept {
        return as(p).real->pMethods->xFileSize(as(p).real, size);
    }
    static int x_lock(sqlite3_file* p, int level) noexcept {
        if (as(p).vfs->crashed()) return SQLITE_IOERR_LOCK;
        return as(p).real->pMethods->xLock(as(p).real, level);
    }
    static int x_unlock(sqlite3_file* p, int level) noexcept {
        return as(p).real->pMethods->xUnlock(as(p).real, level);
    }
    static int x_check_reserved(sqlite3_file* p, int* out) noexcept {
        return as(p).real->pMethods->xCheckReservedLock(as(p).real, out);
    }
    static int x_file_control(sqlite3_file* p, int op, void* arg) noexcept {
        return as(p).real->pMethods->xFileControl(as(p).real, op, arg);
    }
    static int x_sector_size(sqlite3_file* p) noexcept {
        return as(p).real->pMethods->xSectorSize(as(p).real);
    }
    // Not power-safe: a torn write may damage the rest of its sectors (see power_loss()).
    static int x_device(sqlite3_file* p) noexcept {
        return as(p).real->pMethods->xDeviceCharacteristics(as(p).real) & ~SQLITE_IOCAP_POWERSAFE_OVERWRITE;
    }
    static int x_shm_map(sqlite3_file* p, int page, int size, int extend, void volatile** out) noexcept {
        auto& f = as(p);
        try {
            std::lock_guard lock(f.vfs->mutex_);
            if (f.vfs->crashed_) return SQLITE_IOERR_SHMMAP;
            f.vfs->shm_files_.insert(f.path + "-shm");
        } catch (...) {
            return SQLITE_IOERR_NOMEM;
        }
        return f.real->pMethods->xShmMap(f.real, page, size, extend, out);
    }
    static int x_shm_lock(sqlite3_file* p, int offset, int n, int flags) noexcept {
        return as(p).real->pMethods->xShmLock(as(p).real, offset, n, flags);
    }
    static void x_shm_barrier(sqlite3_file* p) noexcept { as(p).real->pMethods->xShmBarrier(as(p).real); }
    static int x_shm_unmap(sqlite3_file* p, int del) noexcept {
        return as(p).real->pMethods->xShmUnmap(as(p).real, del);
    }

    std::string name_;
    sqlite3_vfs* base_ = nullptr;
    sqlite3_vfs vfs_{};
    sqlite3_io_methods methods_{};
    bool methods_ready_ = false;
    mutable std::mutex mutex_;
    std::array<int, 5> counts_{};
    std::array<rule, 5> rules_{};
    std::int64_t space_ = -1;
    int crash_at_sync_ = -1;
    bool crashed_ = false;
    std::function<void()> on_power_cut_;
    std::map<std::string, std::vector<pending_write>> pending_;
    std::set<std::string> shm_files_;
};

}  // namespace resilite::testing
