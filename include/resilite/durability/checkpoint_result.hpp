#pragma once
// resilite::checkpoint_result: what a WAL checkpoint achieved.

namespace resilite {

struct checkpoint_result {
    int wal_frames = 0;           // frames in the WAL when the checkpoint ran
    int checkpointed_frames = 0;  // frames copied into the database file
    bool complete = false;        // false when readers or writers kept it from finishing
};

}  // namespace resilite
