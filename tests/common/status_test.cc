#include "imgq/common/status.h"

#include <gtest/gtest.h>

namespace imgq {
namespace {

Result<int> half(int v) {
  if (v % 2 != 0) return Status::InvalidArgument("odd: " + std::to_string(v));
  return v / 2;
}

Result<int> quarter(int v) {
  IMGQ_ASSIGN_OR_RETURN(int h, half(v));
  return half(h);
}

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "ok");
}

TEST(Status, ToStringNamesCodeAndMessage) {
  EXPECT_EQ(Status::InvalidArgument("bad ksize").ToString(), "invalid_argument: bad ksize");
  EXPECT_EQ(Status::NotFound("x").WithContext("job 7").message(), "job 7: x");
}

TEST(Status, RetryableCodesAreTheTransientOnes) {
  EXPECT_TRUE(is_retryable(StatusCode::kResourceExhausted));
  EXPECT_TRUE(is_retryable(StatusCode::kUnavailable));
  EXPECT_FALSE(is_retryable(StatusCode::kInvalidArgument));
  EXPECT_FALSE(is_retryable(StatusCode::kInvalidImage));
}

TEST(Result, CarriesValueOrStatus) {
  EXPECT_EQ(*quarter(8), 2);
  EXPECT_TRUE(quarter(8).status().ok());
  auto r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "odd: 3");
}

// The value of an error is a bug found at once, with the error said, not
// garbage read on (it was undefined behaviour).
TEST(ResultDeathTest, TheValueOfAnErrorEndsTheProcessNamingIt) {
  const Result<std::string> r(Status::NotFound("no job 0123"));
  EXPECT_DEATH((void)r->size(), "Result has no value: not_found: no job 0123");
  EXPECT_DEATH((void)*r, "Result has no value");
  EXPECT_DEATH((void)r.value(), "Result has no value");
}

TEST(Result, FromOkStatusIsAnError) {
  Result<int> r(Status::Ok());
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace imgq
