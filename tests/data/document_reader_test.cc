// DocumentStream: JSON lines (plain and gzip, lines far longer than the read buffer), plain text
// in both split modes, record numbering across files, and errors that name FILE:LINE.
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/document_reader.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

namespace fs = std::filesystem;

class DocumentReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("om_reader_" + std::to_string(::getpid()) + "_" + info->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string WriteGzip(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    gzclose(f);
    return path;
  }
  // All documents, or the error.
  StatusOr<std::vector<Document>> ReadAll(std::vector<std::string> paths, ReaderOptions options = {}) {
    OM_ASSIGN_OR_RETURN(DocumentStream stream, DocumentStream::Open(std::move(paths), options));
    std::vector<Document> docs;
    Document d;
    while (true) {
      OM_ASSIGN_OR_RETURN(bool more, stream.Next(&d));
      if (!more) break;
      docs.push_back(d);
    }
    return docs;
  }

  fs::path dir_;
};

const std::string kJsonl =
    "{\"text\": \"first \\u00e9 doc\", \"id\": 1}\n"
    "\n"
    "{\"text\": \"\", \"id\": 2}\r\n"
    "{\"id\": 3, \"text\": \"line one\\nline two\"}\n";

TEST_F(DocumentReaderTest, JsonLinesPlainAndGzipReadTheSame) {
  for (const std::string& path : {Write("a.jsonl", kJsonl), WriteGzip("a.jsonl.gz", kJsonl)}) {
    auto docs = ReadAll({path});
    ASSERT_TRUE(docs.ok()) << docs.status().ToString();
    ASSERT_EQ(docs->size(), 2u) << path;
    EXPECT_EQ((*docs)[0].text, "first \xC3\xA9 doc");
    EXPECT_EQ((*docs)[0].index, 0);
    EXPECT_EQ((*docs)[0].source, path + ":1");
    // The empty record keeps its number (1): the next document is record 2, on line 4.
    EXPECT_EQ((*docs)[1].text, "line one\nline two");
    EXPECT_EQ((*docs)[1].index, 2);
    EXPECT_EQ((*docs)[1].source, path + ":4");
  }
}

TEST_F(DocumentReaderTest, LinesLongerThanTheReadBufferArriveWhole) {
  // 300 KB and 70 KB texts: several gzgets buffers (64 KB) per line.
  std::string big(300000, 'a'), medium(70000, 'b');
  for (size_t i = 0; i < big.size(); i += 1000) big[i] = ' ';
  const std::string jsonl = "{\"text\": \"" + big + "\"}\n{\"text\": \"" + medium + "\"}";  // no final newline
  for (const std::string& path : {Write("big.jsonl", jsonl), WriteGzip("big.json.gz", jsonl)}) {
    auto docs = ReadAll({path});
    ASSERT_TRUE(docs.ok()) << docs.status().ToString();
    ASSERT_EQ(docs->size(), 2u);
    EXPECT_EQ((*docs)[0].text, big);
    EXPECT_EQ((*docs)[1].text, medium);
  }
}

TEST_F(DocumentReaderTest, RecordNumbersContinueAcrossFiles) {
  const std::string a = Write("a.jsonl", kJsonl);                  // records 0, 1 (empty), 2
  const std::string b = Write("b.txt", "one\ntwo\n\nthree\n");    // records 3, 4 in blank-line mode
  ReaderOptions options;
  options.text_split = TextSplit::kBlankLine;
  auto docs = ReadAll({a, b}, options);
  ASSERT_TRUE(docs.ok()) << docs.status().ToString();
  ASSERT_EQ(docs->size(), 4u);
  EXPECT_EQ((*docs)[2].text, "one\ntwo");
  EXPECT_EQ((*docs)[2].index, 3);
  EXPECT_EQ((*docs)[2].source, b + ":1");
  EXPECT_EQ((*docs)[3].text, "three");
  EXPECT_EQ((*docs)[3].index, 4);
  EXPECT_EQ((*docs)[3].source, b + ":4");
}

TEST_F(DocumentReaderTest, PlainTextIsOneDocumentPerFileByDefault) {
  const std::string a = Write("a.txt", "Para one.\r\n\r\nPara two.\n");
  const std::string b = WriteGzip("b.txt.gz", "Other file.");
  const std::string empty = Write("empty.txt", "");
  auto docs = ReadAll({a, empty, b});
  ASSERT_TRUE(docs.ok()) << docs.status().ToString();
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[0].text, "Para one.\n\nPara two.");
  EXPECT_EQ((*docs)[1].text, "Other file.");
  EXPECT_EQ((*docs)[1].index, 1);  // a file with no lines holds no record
}

TEST_F(DocumentReaderTest, JsonErrorsNameFileAndLine) {
  const std::string bad = Write("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
  auto docs = ReadAll({bad});
  ASSERT_FALSE(docs.ok());
  EXPECT_EQ(docs.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(docs.status().message().find(bad + ":2"), std::string::npos) << docs.status().ToString();

  const std::string no_field = Write("nofield.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"x\"}\n");
  auto nf = ReadAll({no_field});
  ASSERT_FALSE(nf.ok());
  EXPECT_NE(nf.status().message().find(no_field + ":2"), std::string::npos) << nf.status().ToString();
  EXPECT_NE(nf.status().message().find("--json-key"), std::string::npos);
  ReaderOptions body;
  body.json_key = "body";
  EXPECT_FALSE(ReadAll({no_field}, body).ok());  // now line 1 lacks "body"

  const std::string not_object = Write("array.jsonl", "[1, 2]\n");
  EXPECT_EQ(ReadAll({not_object}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(DocumentReaderTest, TruncatedGzipIsCorruption) {
  std::string jsonl;
  for (int i = 0; i < 2000; ++i) jsonl += "{\"text\": \"document number " + std::to_string(i) + "\"}\n";
  const std::string path = WriteGzip("t.jsonl.gz", jsonl);
  fs::resize_file(path, fs::file_size(path) / 2);
  auto docs = ReadAll({path});
  ASSERT_FALSE(docs.ok());
  EXPECT_EQ(docs.status().code(), StatusCode::kCorruption) << docs.status().ToString();
  EXPECT_NE(docs.status().message().find(path), std::string::npos);
}

TEST_F(DocumentReaderTest, InputsAreCheckedBeforeReading) {
  const std::string good = Write("good.jsonl", kJsonl);
  auto missing = DocumentStream::Open({good, (dir_ / "missing.jsonl").string()}, {});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing.jsonl"), std::string::npos);
  const std::string unknown = Write("data.csv", "x");
  auto format = DocumentStream::Open({unknown}, {});
  EXPECT_EQ(format.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(format.status().message().find("--input-format"), std::string::npos);
  ReaderOptions as_text;
  as_text.format = InputFormat::kText;
  EXPECT_TRUE(DocumentStream::Open({unknown}, as_text).ok());
  EXPECT_EQ(DocumentStream::Open({}, {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(ReaderFlags, ParseAndResolve) {
  EXPECT_EQ(parse_input_format("jsonl").value(), InputFormat::kJsonl);
  EXPECT_FALSE(parse_input_format("csv").ok());
  EXPECT_EQ(parse_text_split("blank-line").value(), TextSplit::kBlankLine);
  EXPECT_FALSE(parse_text_split("para").ok());
  EXPECT_EQ(resolve_input_format("c4-train.00000-of-01024.json.gz", InputFormat::kAuto).value(), InputFormat::kJsonl);
  EXPECT_EQ(resolve_input_format("book.txt.gz", InputFormat::kAuto).value(), InputFormat::kText);
  EXPECT_EQ(resolve_input_format("book", InputFormat::kJsonl).value(), InputFormat::kJsonl);
}

}  // namespace
}  // namespace om
