// Status / StatusOr messages and propagation; OM_CHECK message format.
#include "core/check.h"
#include "core/status.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

Status open_dataset(const std::string& path) {
  if (path.empty()) return Status::InvalidArgument("--data-path is empty; pass the prefix of a .bin/.idx pair");
  return Status::NotFound("--data-path '" + path + ".idx': no such file; run ortho_data preprocess first");
}

StatusOr<int> parse_positive(int x) {
  if (x <= 0) return Status::InvalidArgument("--tp must be positive, got " + std::to_string(x));
  return x;
}

Status use_both(int x) {
  OM_ASSIGN_OR_RETURN(int v, parse_positive(x));
  OM_RETURN_IF_ERROR(open_dataset(v > 1 ? "data/c4" : ""));
  return Status::Ok();
}

TEST(Status, OkAndErrorMessages) {
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_EQ(Status::Ok().ToString(), "OK");
  Status s = open_dataset("data/c4");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NotFound: --data-path 'data/c4.idx': no such file; run ortho_data preprocess first");
  EXPECT_EQ(s.WithContext("loading data").ToString(),
            "NotFound: loading data: --data-path 'data/c4.idx': no such file; run ortho_data preprocess first");
  EXPECT_TRUE(Status::Ok().WithContext("x").ok());
  EXPECT_EQ(Status::Corruption("c").code(), StatusCode::kCorruption);
  EXPECT_STREQ(status_code_name(StatusCode::kFailedPrecondition), "FailedPrecondition");
}

TEST(Status, StatusOrPropagates) {
  EXPECT_EQ(parse_positive(3).value(), 3);
  EXPECT_EQ(use_both(0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(use_both(1).code(), StatusCode::kInvalidArgument);  // empty path
  EXPECT_EQ(use_both(2).code(), StatusCode::kNotFound);
}

TEST(StatusDeathTest, ValueOfErrorIsFatalAndNamesTheError) {
  EXPECT_DEATH((void)parse_positive(-1).value(), "--tp must be positive, got -1");
}

TEST(CheckDeathTest, MessageCarriesRankHostAndExpression) {
  set_process_rank(3);
  EXPECT_DEATH(OM_CHECK(1 + 1 == 3, "arithmetic is %s", "broken"),
               "\\[rank 3 \\(host [^)]+\\)\\] FATAL .*check failed: 1 \\+ 1 == 3: arithmetic is broken");
  set_process_rank(-1);
}

}  // namespace
}  // namespace om
