#include "imgq/schemas/op_call.h"

#include <gtest/gtest.h>

namespace imgq::schemas {
namespace {

OpCall parse_ok(const std::string& spec) {
  auto r = parse_op(spec);
  EXPECT_TRUE(r.ok()) << spec << ": " << r.status().ToString();
  return r.ok() ? *r : OpCall(*find_op("identity"));
}

std::string parse_error(const std::string& spec) {
  auto r = parse_op(spec);
  EXPECT_FALSE(r.ok()) << spec << " was accepted as " << (r.ok() ? r->ToString() : "");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(ParseOp, FillsDefaults) {
  OpCall g = parse_ok("gaussian_blur");
  EXPECT_EQ(g.id(), OpId::kGaussianBlur);
  EXPECT_EQ(g.get_int("ksize"), 5);
  EXPECT_EQ(g.get_double("sigma"), 0.0);

  OpCall c = parse_ok("canny");
  EXPECT_EQ(c.get_double("low"), 100);
  EXPECT_EQ(c.get_double("high"), 200);
  EXPECT_EQ(c.get_int("aperture"), 3);
  EXPECT_FALSE(c.get_bool("l2"));

  OpCall r = parse_ok("resize");
  EXPECT_EQ(r.get_double("scale"), 0.5);
  EXPECT_EQ(r.get_enum("interpolation"), "area");
  EXPECT_FALSE(r.has("width"));

  EXPECT_FALSE(parse_ok("threshold").has("max"));  // depends on the image's depth
  EXPECT_EQ(parse_ok("rotate").get_int("angle"), 90);
  EXPECT_EQ(parse_ok("flip").get_enum("axis"), "h");
}

TEST(ParseOp, TakesParametersOfEveryType) {
  OpCall c = parse_ok("canny:low=50,high=150.5,aperture=5,l2=true");
  EXPECT_EQ(c.get_double("low"), 50);
  EXPECT_EQ(c.get_double("high"), 150.5);
  EXPECT_EQ(c.get_int("aperture"), 5);
  EXPECT_TRUE(c.get_bool("l2"));
  OpCall r = parse_ok(" resize : width = 64 , height=32, interpolation=cubic ");
  EXPECT_EQ(r.get_int("width"), 64);
  EXPECT_EQ(r.get_int("height"), 32);
  EXPECT_FALSE(r.has("scale"));
  EXPECT_EQ(r.get_enum("interpolation"), "cubic");
  EXPECT_EQ(parse_ok("brightness_contrast:alpha=-1.5,beta=+20").get_double("beta"), 20);
}

TEST(ParseOp, AliasesOfTheOriginalProject) {
  EXPECT_EQ(parse_ok("edge_detection"), parse_ok("canny"));
  EXPECT_EQ(parse_ok("color_inversion"), parse_ok("invert"));
  EXPECT_EQ(parse_ok("blur"), parse_ok("gaussian_blur:ksize=25"));
  EXPECT_EQ(parse_ok("erosion"), parse_ok("erode:ksize=25"));
  EXPECT_EQ(parse_ok("dilation"), parse_ok("dilate:ksize=25"));
  EXPECT_EQ(parse_ok("blur:ksize=3").get_int("ksize"), 3);  // the user's value wins
}

TEST(ParseOp, CanonicalTextRoundTrips) {
  for (const std::string spec : {"gaussian_blur:ksize=7,sigma=1.25", "canny:l2=1", "resize:scale=0.3",
                                 "resize:width=10,height=20", "flip:axis=both", "threshold:value=3.5,max=9"}) {
    OpCall a = parse_ok(spec);
    OpCall b = parse_ok(a.ToString());
    EXPECT_EQ(a, b) << spec << " -> " << a.ToString();
    EXPECT_EQ(a.ToString(), b.ToString());
  }
  EXPECT_EQ(parse_ok("canny").ToString(), "canny:aperture=3,high=200,l2=false,low=100");
}

TEST(ParseOp, UnknownOpSuggestsTheClosest) {
  const std::string m = parse_error("gausian_blur");
  EXPECT_NE(m.find("unknown op \"gausian_blur\""), std::string::npos) << m;
  EXPECT_NE(m.find("did you mean \"gaussian_blur\""), std::string::npos) << m;
  EXPECT_NE(parse_error("").find("empty op name"), std::string::npos);
}

TEST(ParseOp, BadParametersNameOpParameterAndWhatIsAllowed) {
  struct Case {
    std::string spec;
    std::vector<std::string> expected;  // fragments of the message
  };
  const std::vector<Case> cases = {
      {"gaussian_blur:ksize=4", {"gaussian_blur", "ksize", "odd integer", "\"4\""}},
      {"gaussian_blur:ksize=-3", {"ksize", "from 1 to 255", "\"-3\""}},
      {"median_blur:ksize=0", {"median_blur", "ksize"}},
      {"box_blur:ksize=257", {"box_blur", "ksize", "255"}},
      {"gaussian_blur:size=5", {"unknown parameter \"size\"", "ksize, sigma"}},
      {"invert:x=1", {"invert takes no parameters"}},
      {"gaussian_blur:ksize=abc", {"ksize", "\"abc\""}},
      {"gaussian_blur:ksize=5.0", {"ksize", "integer"}},
      {"gaussian_blur:sigma=nan", {"sigma", "number"}},
      {"gaussian_blur:sigma=inf", {"sigma"}},
      {"gaussian_blur:ksize", {"has no value"}},
      {"gaussian_blur:ksize=5,", {"empty parameter"}},
      {"gaussian_blur:ksize=5,ksize=7", {"given twice"}},
      {"rotate:angle=45", {"rotate", "angle", "one of 90, 180, 270"}},
      {"flip:axis=x", {"axis", "one of h, v, both"}},
      {"canny:l2=maybe", {"l2", "true or false"}},
      {"canny:aperture=9", {"aperture", "3, 5, 7"}},
      {"canny:low=300,high=200", {"low must not exceed high"}},
      {"sobel:ksize=9", {"sobel", "ksize"}},
      {"erode:iterations=0", {"iterations", "from 1 to 100"}},
      {"resize:width=10", {"width and height must be given together"}},
      {"resize:scale=0.5,width=10,height=10", {"either scale or width and height"}},
      {"resize:scale=0", {"scale"}},
      {"resize:interpolation=lanczos", {"interpolation", "area, linear, cubic, nearest"}},
      {"threshold:value=-1", {"threshold", "value"}},
  };
  for (const Case& c : cases) {
    const std::string m = parse_error(c.spec);
    for (const std::string& fragment : c.expected) {
      EXPECT_NE(m.find(fragment), std::string::npos) << c.spec << " -> " << m << " (wanted " << fragment << ")";
    }
  }
}

TEST(ParsePipeline, KeepsOrderAndNamesTheFailingOp) {
  auto p = parse_pipeline({"grayscale", "gaussian_blur:ksize=5", "canny:low=50,high=150"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0].id(), OpId::kGrayscale);
  EXPECT_EQ((*p)[2].get_double("low"), 50);
  EXPECT_EQ(parse_pipeline(pipeline_to_specs(*p)).value(), *p);

  auto bad = parse_pipeline({"grayscale", "median_blur:ksize=2"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("op 2 \"median_blur:ksize=2\": median_blur", 0), 0u)
      << bad.status().message();
  EXPECT_TRUE(parse_pipeline({}).value().empty());
}

TEST(Catalog, EveryOpIsListedWithItsParameters) {
  const std::string table = format_op_table();
  for (const OpDef& def : all_ops()) {
    EXPECT_NE(table.find(std::string(def.name)), std::string::npos) << def.name;
    for (const ParamDef& p : def.params) {
      // Every default parses as its own parameter's value.
      if (!p.default_value.empty()) {
        EXPECT_TRUE(parse_op(std::string(def.name) + ":" + std::string(p.key) + "=" +
                             std::string(p.default_value)).ok() ||
                    def.id == OpId::kResize)
            << def.name << "." << p.key;
      }
    }
  }
  for (const AliasDef& a : all_aliases()) {
    EXPECT_TRUE(parse_op(a.alias).ok()) << a.alias;
    EXPECT_NE(table.find(std::string(a.alias)), std::string::npos);
  }
}

}  // namespace
}  // namespace imgq::schemas
