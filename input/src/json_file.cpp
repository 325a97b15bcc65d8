#include "ppsim/input/json_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ppsim {

namespace {

std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

void check_stat(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) throw InputFileError(path, "is " + kind_of(st.st_mode) + ", not a regular file");
  if (static_cast<std::uint64_t>(st.st_size) > kMaxInputFileBytes)
    throw InputFileError(path, "is " + std::to_string(st.st_size) + " bytes, over the input limit of " +
                                   std::to_string(kMaxInputFileBytes) + " bytes");
}

/// Closes the descriptor on every path out of read_input_file.
struct Descriptor {
  int fd;
  ~Descriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

void check_input_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw InputFileError(path, "cannot open file (" + std::string(std::strerror(errno)) + ")");
  check_stat(path, st);
}

std::string read_input_file(const std::string& path) {
  check_input_file(path);
  // O_NONBLOCK: should the path become a FIFO after the stat, open does not wait for a writer.
  const Descriptor in{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
  if (in.fd < 0) throw InputFileError(path, "cannot open file (" + std::string(std::strerror(errno)) + ")");
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) throw InputFileError(path, "cannot open file (" + std::string(std::strerror(errno)) + ")");
  check_stat(path, st);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(in.fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw InputFileError(path, "cannot read file (" + std::string(std::strerror(errno)) + ")");
    }
    // The file may grow after the stat: the limit holds for what is read.
    if (text.size() + static_cast<std::size_t>(n) > kMaxInputFileBytes)
      throw InputFileError(path, "is over the input limit of " + std::to_string(kMaxInputFileBytes) + " bytes");
    text.append(buf, static_cast<std::size_t>(n));
  }
  return text;
}

nlohmann::json parse_json_input(const std::string& text, const std::string& file) {
  using nlohmann::json;
  // The callback sees each container as it opens (depth counts the containers around it)
  // and each key and value as it is read: a limit fails before the document is built.
  const json::parser_callback_t bounded = [&file](int depth, json::parse_event_t event, json& parsed) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      throw InputFileError(file, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    if ((event == json::parse_event_t::key || event == json::parse_event_t::value) && parsed.is_string() &&
        parsed.get_ref<const std::string&>().size() > kMaxJsonStringBytes)
      throw InputFileError(file, "a JSON string is longer than " + std::to_string(kMaxJsonStringBytes) + " bytes");
    return true;
  };
  try {
    return json::parse(text, bounded);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    if (auto pos = what.find("parse error"); pos != std::string::npos) what = what.substr(pos);
    throw InputFileError(file, "malformed JSON: " + what);
  } catch (const json::out_of_range& e) {
    // nlohmann refuses numbers that overflow a double (1e999): non-finite input.
    std::string what = e.what();
    if (auto pos = what.find("number overflow"); pos != std::string::npos) what = what.substr(pos);
    throw InputFileError(file, "numbers must be finite: " + what);
  }
}

nlohmann::json read_json_input(const std::string& path) { return parse_json_input(read_input_file(path), path); }

}  // namespace ppsim
