#pragma once
// resilite::checkpoint_mode: SQLite's WAL checkpoint modes. resilite runs PASSIVE periodically
// and TRUNCATE at close, never RESTART on its own (it would wait on readers).

namespace resilite {

enum class checkpoint_mode { passive, full, restart, truncate };

}  // namespace resilite
