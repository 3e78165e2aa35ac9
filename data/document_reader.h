// Document readers: the text that goes into tokenizer training and into datasets.
//   JSON lines  (.jsonl, .json): one object per line; the document is its string field `json_key`
//               ("text", as in C4). Blank lines are skipped; a line that is not an object with that
//               string field is an error naming file:line.
//   plain text  (.txt, anything else with --input-format text): one document per file
//               (TextSplit::kFile) or per block of lines separated by blank lines (kBlankLine).
// Either may be gzip-compressed (".gz" appended); zlib also reads uncompressed files, so the
// suffix only matters for choosing the format. Lines of any length are handled.
// Documents are numbered 0, 1, 2, ... over all inputs in the order given; the number counts every
// record, empty ones included (they are skipped, not renumbered), so it is a stable key for the
// held-out split (data/heldout.h). Thread safety: a DocumentStream is used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace om {

enum class InputFormat : uint8_t { kAuto, kJsonl, kText };
enum class TextSplit : uint8_t { kFile, kBlankLine };

struct ReaderOptions {
  InputFormat format = InputFormat::kAuto;  // kAuto: by file name (.jsonl/.json[.gz] or .txt[.gz])
  std::string json_key = "text";            // JSON lines: the field holding the document
  TextSplit text_split = TextSplit::kFile;  // plain text: what makes a document
};

struct Document {
  int64_t index = 0;   // record number over all inputs (the held-out split key)
  std::string text;    // never empty
  std::string source;  // "FILE:LINE" of the record's first line, for messages
};

// Parses "auto" | "jsonl" | "text" and "file" | "blank-line" (flag values of ortho_data).
StatusOr<InputFormat> parse_input_format(std::string_view s);
StatusOr<TextSplit> parse_text_split(std::string_view s);
const char* input_format_name(InputFormat f);
const char* text_split_name(TextSplit s);

// The format a file is read with: `requested`, or for kAuto the one its name implies. A name with
// neither suffix is an InvalidArgument that suggests --input-format.
StatusOr<InputFormat> resolve_input_format(const std::string& path, InputFormat requested);

class DocumentStream {
 public:
  // Checks up front that every input exists and has a known format, so a typo in the third file
  // fails before the first two are processed.
  static StatusOr<DocumentStream> Open(std::vector<std::string> paths, ReaderOptions options);
  DocumentStream(DocumentStream&&) noexcept;
  DocumentStream& operator=(DocumentStream&&) noexcept;
  ~DocumentStream();

  // The next non-empty document into *doc: true, or false after the last input. Errors (unreadable
  // file, bad JSON line) name FILE:LINE.
  StatusOr<bool> Next(Document* doc);
  int64_t records_read() const;    // documents numbered so far, empty ones included
  int64_t empty_skipped() const;   // records with empty text

 private:
  struct Impl;
  explicit DocumentStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace om
