#include "shmlog/snapshot_service.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "os.h"
#include "shmlog/error.h"

namespace shmlog {

std::string_view to_string(snapshot_event::kind k) noexcept {
  switch (k) {
    case snapshot_event::kind::started:
      return "started";
    case snapshot_event::kind::published:
      return "published";
    case snapshot_event::kind::failed:
      return "failed";
  }
  return "unknown";
}

snapshot_service::snapshot_service(writer& w, const state_machine& state, snapshot_options options)
    : writer_(w), state_(state), options_(std::move(options)) {
  if (options_.dir.empty())
    throw error(errc::invalid_argument, "log '" + w.name() + "': no snapshot directory given");
  if (options_.check_every == 0)
    throw error(errc::invalid_argument, "snapshot check_every must be at least 1");
  if (options_.keep == 0)
    throw error(errc::invalid_argument, "snapshots to keep must be at least 1");
  // Readers of other processes, with other working directories, open the announced path.
  options_.dir = std::filesystem::absolute(options_.dir).lexically_normal();
  check_snapshot_dir(options_.dir, true);
  const std::string longest =
      (options_.dir / snapshot_file_name(w.name(), no_offset, no_offset)).string();
  if (longest.size() >= snapshot_path_size)
    throw error(errc::invalid_argument, "snapshot directory '" + options_.dir.string() +
                                            "' is too long: snapshot paths must " + "stay under " +
                                            std::to_string(snapshot_path_size) + " bytes");
  remove_stale_snapshot_files(options_.dir, w.name());
  if (options_.file_mode == 0) options_.file_mode = inspect(w.name()).mode & 0666;
  // Requests made before this producer started count as pending unless the last snapshot
  // published (by an earlier producer) answered them.
  served_ = w.announced_snapshot().requests_served;
  countdown_ = 1;  // look at once, at the first poll
}

snapshot_service::~snapshot_service() {
  if (child_ > 0) reap(true);
}

void snapshot_service::poll() {
  if (--countdown_ != 0) return;
  countdown_ = options_.check_every;
  if (child_ > 0) {
    reap(false);
    return;
  }
  // The one load on the producer's path: relaxed, of a line readers write only when asking.
  const std::uint64_t requests = writer_.snapshot_requests();
  if (requests == served_) return;
  if (retry_backoff_.count() != 0 && std::chrono::steady_clock::now() < retry_at_) return;
  start(requests);
}

snapshot_meta snapshot_service::snapshot_now() {
  if (child_ > 0) reap(true);
  const std::uint64_t requests = writer_.snapshot_requests();
  const snapshot_meta info =
      write_snapshot(options_.dir, writer_.name(), next_generation(), writer_.history().replid,
                     writer_.master_offset(), state_, options_.file_mode);
  publish(info, requests);
  return info;
}

std::uint64_t snapshot_service::next_generation() const {
  return writer_.announced_snapshot().generation + 1;
}

void snapshot_service::start(std::uint64_t requests) {
  // Between appends: every record before master_offset() is in the state, none after.
  const std::uint64_t offset = writer_.master_offset();
  const history_id replid = writer_.history().replid;
  const std::uint64_t generation = next_generation();
  if (options_.on_event) {
    snapshot_event e{.what = snapshot_event::kind::started};
    e.snapshot.offset = offset;
    e.snapshot.replid = replid;
    e.snapshot.generation = generation;
    e.message = "saving the state at offset " + std::to_string(offset) + " for " +
                std::to_string(requests - served_) + " pending request" +
                (requests - served_ == 1 ? "" : "s") +
                (options_.mode == snapshot_mode::fork ? " (in a child)" : "");
    options_.on_event(e);
  }
  if (options_.mode == snapshot_mode::inline_save) {
    try {
      publish(write_snapshot(options_.dir, writer_.name(), generation, replid, offset, state_,
                             options_.file_mode),
              requests);
    } catch (const std::exception& e) {
      failed(e.what());
    }
    return;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    failed(detail::errno_message("fork", errno));
    return;
  }
  if (pid == 0) {
    // The child: its own copy of the state at exactly `offset`. It holds no writer lock (the
    // library drops a role's descriptor in every fork()ed child, so the role dies with the
    // writer, not with this child), and must not run the parent's destructors.
    int status = 0;
    try {
      write_snapshot(options_.dir, writer_.name(), generation, replid, offset, state_,
                     options_.file_mode);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "shmlog snapshot child: %s\n", e.what());
      status = 1;
    }
    ::_exit(status);
  }
  child_ = pid;
  child_requests_ = requests;
  child_offset_ = offset;
  child_generation_ = generation;
  child_replid_ = replid;
}

void snapshot_service::reap(bool block) {
  int status = 0;
  pid_t done;
  do {
    done = ::waitpid(child_, &status, block ? 0 : WNOHANG);
  } while (done < 0 && errno == EINTR);
  if (done == 0) return;  // still saving
  child_ = 0;
  const std::filesystem::path path =
      options_.dir / snapshot_file_name(writer_.name(), child_offset_, child_generation_);
  if (done < 0 && errno == ECHILD) {
    // SIGCHLD is ignored (common in daemons): the kernel reaped the child and its status is
    // lost. The child renames its file into place only after writing and syncing all of it, so
    // a file under the final name that verifies whole is its finished work.
    try {
      publish(verify_snapshot(path, child_replid_), child_requests_);
    } catch (const std::exception& e) {
      failed(std::string("the snapshot child ended without leaving a usable file: ") + e.what());
    }
    return;
  }
  if (done < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    failed("the snapshot child " + std::string(done < 0              ? "was lost"
                                               : WIFSIGNALED(status) ? "was killed"
                                                                     : "failed"));
    return;
  }
  try {
    publish(read_snapshot_header(path), child_requests_);
  } catch (const std::exception& e) {
    failed(std::string("the snapshot child's file is unusable: ") + e.what());
  }
}

void snapshot_service::failed(const std::string& why) {
  using namespace std::chrono_literals;
  retry_backoff_ = std::min<std::chrono::milliseconds>(
      retry_backoff_.count() == 0 ? 100ms : retry_backoff_ * 2, 5s);
  retry_at_ = std::chrono::steady_clock::now() + retry_backoff_;
  if (options_.on_event)
    options_.on_event(snapshot_event{.what = snapshot_event::kind::failed,
                                     .retry_in = retry_backoff_,
                                     .message = "snapshot failed: " + why + "; retrying in " +
                                                std::to_string(retry_backoff_.count()) + " ms"});
}

void snapshot_service::publish(const snapshot_meta& info, std::uint64_t requests) {
  snapshot_meta a = info;
  a.generation = next_generation();
  a.requests_served = requests;
  writer_.announce_snapshot(a);
  served_ = requests;
  ++published_;
  retry_backoff_ = std::chrono::milliseconds(0);
  prune_snapshots(options_.dir, writer_.name(), options_.keep);
  if (options_.on_event)
    options_.on_event(
        snapshot_event{.what = snapshot_event::kind::published,
                       .snapshot = a,
                       .message = "snapshot " + std::to_string(a.generation) + " at offset " +
                                  std::to_string(info.offset) + ": " + info.path.string() + " (" +
                                  std::to_string(a.file_bytes()) + " bytes, saved in " +
                                  std::to_string(info.save_ns / 1'000'000) + " ms)"});
}

}  // namespace shmlog
