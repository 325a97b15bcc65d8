#pragma once
/// @file files.h
/// @brief Outputs are one transaction: all files are written, or none.
#include <sys/types.h>

#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ppsim {

/// @brief Thrown when an output file cannot be written.
class OutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// @brief The outputs of one command, published together.
///
/// `add` checks every path before any work is done: two outputs that resolve to one file
/// (same folder after symlinks and the same name, or the same inode) are refused, and so
/// is an existing path that is not a regular file (a folder, a device node, a FIFO).
/// `write` streams one output into a temporary file beside it (`FILE.tmp.PID`, parent
/// folders created as needed). `commit` renames every temporary into place with SIGINT
/// and SIGTERM held off; should one rename fail, the outputs already renamed are put
/// back as they were. Until committed, the destructor removes the temporaries and the
/// folders it created. While they exist, the temporaries are registered for
/// install_output_signal_handlers().
class OutputSet {
 public:
  OutputSet() = default;
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;
  ~OutputSet();

  /// @brief Declares output `path`; `what` names it in messages (a flag, e.g. "--report").
  /// An empty path is ignored. Throws OutputError.
  void add(const std::string& path, const std::string& what);
  /// @brief Writes the declared output `path` through `body` into its temporary file.
  void write(const std::string& path, const std::function<void(std::ostream&)>& body);
  /// @brief The same with the whole content at hand.
  void write(const std::string& path, const std::string& content);
  /// @brief Publishes every written output; all or none. Throws OutputError.
  void commit();

 private:
  struct Entry {
    std::string path, what, temp, backup;
    int temp_slot{-1}, backup_slot{-1};
    bool written{false}, existed{false};
  };
  Entry& find(const std::string& path);
  void rollback(std::size_t renamed);
  void discard();
  std::vector<Entry> entries_;
  std::vector<std::pair<std::string, int>> created_dirs_;  // (folder, registry slot), outermost first
  bool committed_{false};
};

/// @brief Writes every (path, content) pair as one OutputSet (with no flag names).
void write_files_atomically(const std::vector<std::pair<std::string, std::string>>& files);

/// @brief Installs SIGINT and SIGTERM handlers that kill a registered child process,
/// remove every registered temporary file and folder (async-signal-safe calls only) and
/// exit 128 + the signal (130, 143). For programs (ppsim's main), not libraries.
void install_output_signal_handlers();

/// @brief What a registered temporary path is: a file, an empty folder, or a folder
/// whose files (one level deep) go with it.
enum class TempKind { file, folder, folder_with_files };

/// @brief Registers a temporary path for removal on a signal; returns its slot (-1 when
/// the fixed-size registry is full or the path too long: throws OutputError instead).
int register_temp_path(const std::string& path, TempKind kind);
/// @brief Forgets a registered slot (the path was renamed or removed).
void unregister_temp_path(int slot);
/// @brief A child process to kill (SIGKILL, then reaped) before temporaries are removed
/// on a signal; 0 forgets it.
void register_child_process(pid_t pid);

}  // namespace ppsim
