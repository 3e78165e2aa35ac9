#include "data/document_reader.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

namespace om {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_blank(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v') return false;
  return true;
}

// Lines from a file that may be gzip-compressed. gzgets reads at most a buffer's worth, so a line
// longer than the buffer arrives in pieces that are appended until the newline.
class LineReader {
 public:
  LineReader() = default;
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  ~LineReader() { Close(); }

  Status Open(const std::string& path) {
    Close();
    path_ = path;
    line_number_ = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr)
      return Status::IOError("cannot open input '" + path + "': " + (errno ? std::strerror(errno) : "zlib error"));
    gzbuffer(file_, 1 << 18);
    return Status::Ok();
  }

  // The next line without its "\n" / "\r\n": true, or false at the end of the file.
  StatusOr<bool> Next(std::string* line) {
    line->clear();
    char buf[1 << 16];
    bool got_any = false, complete = false;
    while (gzgets(file_, buf, sizeof(buf)) != nullptr) {
      got_any = true;
      const size_t n = std::strlen(buf);
      line->append(buf, n);
      if (n > 0 && buf[n - 1] == '\n') {
        complete = true;
        break;
      }
    }
    if (!complete) {
      // End of file or a read error; zlib reports a truncated .gz as Z_BUF_ERROR.
      int err = Z_OK;
      const char* msg = gzerror(file_, &err);
      if (err == Z_ERRNO)
        return Status::IOError("cannot read input '" + path_ + "' after line " + std::to_string(line_number_) +
                               ": " + std::strerror(errno));
      if (err != Z_OK)
        return Status::Corruption("input '" + path_ + "' is damaged after line " + std::to_string(line_number_) +
                                  ": " + msg + " (a truncated or corrupt .gz; fetch it again)");
      if (!got_any) return false;
    }
    ++line_number_;
    if (!line->empty() && line->back() == '\n') line->pop_back();
    if (!line->empty() && line->back() == '\r') line->pop_back();
    return true;
  }

  int64_t line_number() const { return line_number_; }
  const std::string& path() const { return path_; }

  void Close() {
    if (file_ != nullptr) gzclose(file_);
    file_ = nullptr;
  }

 private:
  gzFile file_ = nullptr;
  std::string path_;
  int64_t line_number_ = 0;
};

}  // namespace

StatusOr<InputFormat> parse_input_format(std::string_view s) {
  if (s == "auto") return InputFormat::kAuto;
  if (s == "jsonl") return InputFormat::kJsonl;
  if (s == "text") return InputFormat::kText;
  return Status::InvalidArgument("--input-format '" + std::string(s) + "' is not one of auto, jsonl, text");
}

StatusOr<TextSplit> parse_text_split(std::string_view s) {
  if (s == "file") return TextSplit::kFile;
  if (s == "blank-line") return TextSplit::kBlankLine;
  return Status::InvalidArgument("--text-split '" + std::string(s) + "' is not one of file, blank-line");
}

const char* input_format_name(InputFormat f) {
  switch (f) {
    case InputFormat::kAuto: return "auto";
    case InputFormat::kJsonl: return "jsonl";
    case InputFormat::kText: return "text";
  }
  return "?";
}

const char* text_split_name(TextSplit s) { return s == TextSplit::kFile ? "file" : "blank-line"; }

StatusOr<InputFormat> resolve_input_format(const std::string& path, InputFormat requested) {
  if (requested != InputFormat::kAuto) return requested;
  std::string_view name = path;
  if (ends_with(name, ".gz")) name.remove_suffix(3);
  if (ends_with(name, ".jsonl") || ends_with(name, ".json")) return InputFormat::kJsonl;
  if (ends_with(name, ".txt")) return InputFormat::kText;
  return Status::InvalidArgument("input '" + path + "': cannot tell its format from the name; use a .jsonl, "
                                 ".json or .txt name (optionally .gz) or pass --input-format jsonl|text");
}

struct DocumentStream::Impl {
  std::vector<std::string> paths;
  std::vector<InputFormat> formats;
  ReaderOptions options;
  size_t next_file = 0;  // index of the file to open when the current one ends
  bool file_open = false;
  LineReader reader;
  std::string line;
  int64_t records = 0;
  int64_t empty = 0;

  // One record of the current file into *text (possibly empty): true, or false at its end.
  StatusOr<bool> NextRecord(std::string* text, std::string* source) {
    const std::string& path = reader.path();
    if (formats[next_file - 1] == InputFormat::kJsonl) {
      while (true) {
        OM_ASSIGN_OR_RETURN(bool more, reader.Next(&line));
        if (!more) return false;
        if (is_blank(line)) continue;
        *source = path + ":" + std::to_string(reader.line_number());
        // nlohmann reports a bad line by exception; it is caught here and never crosses the API.
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error& e) {
          return Status::InvalidArgument(*source + ": not a JSON line (" + e.what() +
                                         "); each line must be one JSON object");
        }
        auto it = j.is_object() ? j.find(options.json_key) : j.end();
        if (!j.is_object() || it == j.end() || !it->is_string())
          return Status::InvalidArgument(*source + ": no string field \"" + options.json_key +
                                         "\" in this JSON line; pass --json-key to read another field");
        *text = it->get<std::string>();
        return true;
      }
    }
    if (options.text_split == TextSplit::kFile) {
      // The whole file is one record; it is read line by line only to normalise "\r\n".
      if (reader.line_number() > 0) return false;
      *source = path + ":1";
      text->clear();
      bool first = true;
      while (true) {
        OM_ASSIGN_OR_RETURN(bool more, reader.Next(&line));
        if (!more) break;
        if (!first) text->push_back('\n');
        text->append(line);
        first = false;
      }
      return !first;  // a file with no lines has no record
    }
    // Blank-line blocks: skip blank lines, then gather lines up to the next blank one.
    text->clear();
    while (true) {
      OM_ASSIGN_OR_RETURN(bool more, reader.Next(&line));
      if (!more) return !text->empty();
      if (is_blank(line)) {
        if (text->empty()) continue;
        return true;
      }
      if (text->empty()) {
        *source = path + ":" + std::to_string(reader.line_number());
      } else {
        text->push_back('\n');
      }
      text->append(line);
    }
  }
};

DocumentStream::DocumentStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DocumentStream::DocumentStream(DocumentStream&&) noexcept = default;
DocumentStream& DocumentStream::operator=(DocumentStream&&) noexcept = default;
DocumentStream::~DocumentStream() = default;

StatusOr<DocumentStream> DocumentStream::Open(std::vector<std::string> paths, ReaderOptions options) {
  if (paths.empty()) return Status::InvalidArgument("no input files; pass --input FILE (repeatable)");
  if (options.json_key.empty()) return Status::InvalidArgument("--json-key is empty");
  auto m = std::make_unique<Impl>();
  for (const std::string& p : paths) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0)
      return Status::NotFound("--input '" + p + "': no such file (" + std::strerror(errno) + ")");
    if (!S_ISREG(st.st_mode)) return Status::InvalidArgument("--input '" + p + "' is not a regular file");
    OM_ASSIGN_OR_RETURN(InputFormat f, resolve_input_format(p, options.format));
    m->formats.push_back(f);
  }
  m->paths = std::move(paths);
  m->options = std::move(options);
  return DocumentStream(std::move(m));
}

StatusOr<bool> DocumentStream::Next(Document* doc) {
  Impl& m = *impl_;
  while (true) {
    if (!m.file_open) {
      if (m.next_file == m.paths.size()) return false;
      OM_RETURN_IF_ERROR(m.reader.Open(m.paths[m.next_file]));
      ++m.next_file;
      m.file_open = true;
    }
    OM_ASSIGN_OR_RETURN(bool got, m.NextRecord(&doc->text, &doc->source));
    if (!got) {
      m.reader.Close();
      m.file_open = false;
      continue;
    }
    doc->index = m.records++;
    if (is_blank(doc->text)) {
      ++m.empty;
      continue;
    }
    return true;
  }
}

int64_t DocumentStream::records_read() const { return impl_->records; }
int64_t DocumentStream::empty_skipped() const { return impl_->empty; }

}  // namespace om
