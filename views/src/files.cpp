/// @file files.cpp
/// @brief All-or-nothing output: every file written to a temporary name, then renamed;
/// temporaries removed on failure and on SIGINT/SIGTERM.
#include "ppsim/views/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace ppsim {

// ---- the registry of temporary paths a signal removes ----
namespace {

namespace fs = std::filesystem;

constexpr int kSlots = 128;
constexpr std::size_t kPathBytes = 4096;

enum SlotState : int { kFree = 0, kFilling = 1, kActive = 2 };

struct Slot {
  std::atomic<int> state{kFree};
  TempKind kind{TempKind::file};
  char path[kPathBytes]{};
};

Slot g_slots[kSlots];
std::atomic<pid_t> g_child{0};

// Removes the files directly inside `dir` with system calls only (no opendir/malloc).
void remove_folder_files(const char* dir) {
  const int fd = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  alignas(struct dirent64) static char buf[8192];
  bool removed = true;
  for (int pass = 0; removed && pass < 16; ++pass) {  // unlinking while listing may skip names
    removed = false;
    ::lseek(fd, 0, SEEK_SET);
    for (ssize_t n; (n = ::getdents64(fd, buf, sizeof buf)) > 0;) {
      for (ssize_t off = 0; off < n;) {
        const auto* d = reinterpret_cast<const struct dirent64*>(buf + off);
        off += d->d_reclen;
        const char* name = d->d_name;
        if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
        if (::unlinkat(fd, name, 0) == 0) removed = true;
      }
    }
  }
  ::close(fd);
}

extern "C" void on_output_signal(int sig) {
  const pid_t child = g_child.load();
  if (child > 0) {
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
  }
  for (Slot& s : g_slots)
    if (s.state.load() == kActive && s.kind == TempKind::file) ::unlink(s.path);
  // Folders: innermost first; a pass that removes none ends it.
  for (bool removed = true; removed;) {
    removed = false;
    for (Slot& s : g_slots) {
      if (s.state.load() != kActive || s.kind == TempKind::file) continue;
      if (s.kind == TempKind::folder_with_files) remove_folder_files(s.path);
      if (::rmdir(s.path) == 0) {
        s.state.store(kFree);
        removed = true;
      }
    }
  }
  ::_exit(128 + sig);
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

int register_temp_path(const std::string& path, TempKind kind) {
  if (path.size() >= kPathBytes) throw OutputError(path + ": path too long");
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!g_slots[i].state.compare_exchange_strong(expected, kFilling)) continue;
    g_slots[i].kind = kind;
    std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
    g_slots[i].state.store(kActive);
    return i;
  }
  throw OutputError(path + ": too many temporary files at once (" + std::to_string(kSlots) + ")");
}

void unregister_temp_path(int slot) {
  if (slot >= 0 && slot < kSlots) g_slots[slot].state.store(kFree);
}

void register_child_process(pid_t pid) { g_child.store(pid); }

void install_output_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_output_signal;
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, SIGINT);
  sigaddset(&action.sa_mask, SIGTERM);
  // A signal the parent set to be ignored (SIGINT of a background job) stays ignored.
  for (const int sig : {SIGINT, SIGTERM}) {
    struct sigaction current {};
    if (::sigaction(sig, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) continue;
    ::sigaction(sig, &action, nullptr);
  }
}

// ---- OutputSet ----
namespace {

// Holds SIGINT and SIGTERM off in this thread while outputs are renamed into place.
class SignalsHeld {
 public:
  SignalsHeld() {
    sigset_t held;
    sigemptyset(&held);
    sigaddset(&held, SIGINT);
    sigaddset(&held, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &held, &saved_);
  }
  ~SignalsHeld() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  SignalsHeld(const SignalsHeld&) = delete;
  SignalsHeld& operator=(const SignalsHeld&) = delete;

 private:
  sigset_t saved_{};
};

const char* file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// The folder (symlinks resolved) and name an output path stands for.
std::string resolved_key(const std::string& path) {
  std::error_code ec;
  const fs::path p = fs::absolute(path, ec);
  const fs::path parent = fs::weakly_canonical(p.parent_path(), ec);
  return ((ec ? p.parent_path() : parent) / p.filename()).lexically_normal().string();
}

std::string temp_suffix() { return "." + std::to_string(::getpid()); }

}  // namespace

OutputSet::~OutputSet() {
  if (!committed_) discard();
}

void OutputSet::add(const std::string& path, const std::string& what) {
  if (path.empty()) return;
  if (fs::path(path).filename().empty() || path == "." || path == "..")
    throw OutputError(path + ": names a folder, not a file" + (what.empty() ? "" : " (" + what + ")"));
  Entry e;
  e.path = path;
  e.what = what.empty() ? "another output" : what;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode))
      throw OutputError(path + ": exists and is " + file_type_name(st.st_mode) + "; an output must be a new path "
                        "or a regular file");
    e.existed = true;
  } else if (errno != ENOENT) {
    throw OutputError(path + ": cannot write (" + errno_text(errno) + ")");
  }
  const std::string key = resolved_key(path);
  for (const Entry& other : entries_) {
    struct stat other_st {};
    const bool same_inode = e.existed && ::stat(other.path.c_str(), &other_st) == 0 &&
                            other_st.st_dev == st.st_dev && other_st.st_ino == st.st_ino;
    if (same_inode || resolved_key(other.path) == key)
      throw OutputError(path + ": given to two outputs (" + other.what + " and " + e.what + ")");
  }
  entries_.push_back(std::move(e));
}

OutputSet::Entry& OutputSet::find(const std::string& path) {
  for (Entry& e : entries_)
    if (e.path == path) return e;
  throw std::logic_error("OutputSet: output " + path + " was not declared");
}

void OutputSet::write(const std::string& path, const std::function<void(std::ostream&)>& body) {
  Entry& e = find(path);
  if (e.written) throw std::logic_error("OutputSet: output " + path + " written twice");
  // Missing parent folders, outermost first, are created and removed again unless committed.
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = fs::path(path).parent_path(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    const int slot = register_temp_path(it->string(), TempKind::folder);
    if (!fs::create_directory(*it, ec) && ec) {
      unregister_temp_path(slot);
      throw OutputError(path + ": cannot create folder " + it->string() + " (" + ec.message() + ")");
    }
    created_dirs_.emplace_back(it->string(), slot);
  }
  e.temp = path + ".tmp" + temp_suffix();
  e.temp_slot = register_temp_path(e.temp, TempKind::file);
  std::ofstream out(e.temp, std::ios::binary | std::ios::trunc);
  if (!out) throw OutputError(path + ": cannot write (" + errno_text(errno) + ")");
  body(out);
  out.close();
  if (!out) throw OutputError(path + ": write failed (" + errno_text(errno) + ")");
  e.written = true;
}

void OutputSet::write(const std::string& path, const std::string& content) {
  write(path, [&](std::ostream& out) { out.write(content.data(), static_cast<std::streamsize>(content.size())); });
}

void OutputSet::commit() {
  const SignalsHeld held;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    if (!e.written) continue;
    // A hard link keeps the file being replaced, so a later failure can put it back.
    const std::string backup = e.path + ".bak" + temp_suffix();
    if (::link(e.path.c_str(), backup.c_str()) == 0) e.backup = backup;
    if (::rename(e.temp.c_str(), e.path.c_str()) != 0) {
      const int err = errno;
      rollback(i);
      throw OutputError(e.path + ": cannot rename the temporary file into place (" + errno_text(err) + ")");
    }
    unregister_temp_path(e.temp_slot);
    e.temp_slot = -1;
  }
  for (Entry& e : entries_)
    if (!e.backup.empty()) ::unlink(e.backup.c_str());
  for (auto& [dir, slot] : created_dirs_) unregister_temp_path(slot);
  committed_ = true;
}

// Entries before `failed` were renamed into place: put back what they replaced.
void OutputSet::rollback(std::size_t failed) {
  for (std::size_t j = 0; j <= failed && j < entries_.size(); ++j) {
    Entry& e = entries_[j];
    if (!e.written) continue;
    if (j < failed) {
      if (!e.backup.empty()) ::rename(e.backup.c_str(), e.path.c_str());
      else if (!e.existed) ::unlink(e.path.c_str());
    } else if (!e.backup.empty()) {
      ::unlink(e.backup.c_str());
    }
    e.backup.clear();
  }
  discard();
}

void OutputSet::discard() {
  for (Entry& e : entries_) {
    if (e.temp_slot < 0) continue;
    ::unlink(e.temp.c_str());
    unregister_temp_path(e.temp_slot);
    e.temp_slot = -1;
  }
  for (auto it = created_dirs_.rbegin(); it != created_dirs_.rend(); ++it) {
    ::rmdir(it->first.c_str());
    unregister_temp_path(it->second);
  }
  created_dirs_.clear();
}

void write_files_atomically(const std::vector<std::pair<std::string, std::string>>& files) {
  OutputSet outputs;
  for (const auto& [path, content] : files) outputs.add(path, "");
  for (const auto& [path, content] : files) outputs.write(path, content);
  outputs.commit();
}

}  // namespace ppsim
