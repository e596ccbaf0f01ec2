// Monitoring outputs of the `shmlog` tool built on shmlog::inspect(): the Prometheus text format
// (info --prometheus, list --prometheus) and the live view (info --watch). docs/cli.md and
// docs/operations.md describe them for users.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cli.h"
#include "shmlog/segment.h"

namespace shmlog::cli {

// CLOCK_REALTIME now, and the age of the newest snapshot announced (0 if its time is ahead).
std::uint64_t realtime_now_ns();
std::uint64_t snapshot_age_ns(const snapshot_meta& s);

// "sleeping" for reader_state::sleeping, as info and --watch print a reader's state.
std::string_view reader_state_name(reader_state s);

// The Prometheus text exposition format (version 0.0.4) for these logs: each metric family's
// HELP and TYPE once, then its samples for every log (label log="NAME") and, for per-reader
// families, every live reader (labels slot, pid, label, gating).
std::string prometheus_text(const std::vector<log_info>& logs);

// info NAME --watch: samples the log every `interval_s` seconds and prints rates between
// samples until a stop signal, or `count` samples (0: no limit). On a terminal the screen is
// redrawn in place; otherwise each sample is plain lines. Returns the exit status.
int watch_log(const std::string& name, double interval_s, std::uint64_t count);

}  // namespace shmlog::cli
