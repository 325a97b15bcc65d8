// The Gantt colours under colour-vision deficiency: every pair of op classes a figure
// draws together (kinds F, B, W x chunks 0, 1, one pipe) stays apart after simulating
// deuteranopia, protanopia and tritanopia, and the chunk shades of a kind stay apart in
// grey-scale.
//
// Simulation: Machado, Oliveira and Fernandes, "A Physiologically-based Model for
// Simulation of Color Vision Deficiency", IEEE TVCG 15(6), 2009, the severity-1.0
// matrices of their table, applied to linear sRGB. Difference: CIEDE2000 (Sharma, Wu and
// Dalal, "The CIEDE2000 color-difference formula: implementation notes, supplementary
// test data, and mathematical observations", Color Res. Appl. 30(1), 2005) in CIELAB
// with the D65 white point.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "ppsim/views/vega.h"

using namespace ppsim;

namespace {

using Matrix = std::array<std::array<double, 3>, 3>;
using Vec3 = std::array<double, 3>;

struct Vision {
  const char* name;
  Matrix m;
};

const std::array<Vision, 4> kVisions = {{
    {"normal", {{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}}},
    {"deuteranopia",
     {{{0.367322, 0.860646, -0.227968}, {0.280085, 0.672501, 0.047413}, {-0.011820, 0.042940, 0.968881}}}},
    {"protanopia",
     {{{0.152286, 1.052583, -0.204868}, {0.114503, 0.786281, 0.099216}, {-0.003882, -0.048116, 1.051998}}}},
    {"tritanopia",
     {{{1.255528, -0.076749, -0.178779}, {-0.078411, 0.930809, 0.147602}, {0.004733, 0.691367, 0.303900}}}},
}};

double to_linear(int c) {
  const double v = c / 255.0;
  return v <= 0.04045 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4);
}

Vec3 linear_rgb(const std::string& hex) {
  unsigned r = 0, g = 0, b = 0;
  REQUIRE(std::sscanf(hex.c_str(), "#%02x%02x%02x", &r, &g, &b) == 3);
  return {to_linear(static_cast<int>(r)), to_linear(static_cast<int>(g)), to_linear(static_cast<int>(b))};
}

Vec3 simulate(const Vision& v, const Vec3& rgb) {
  Vec3 out{};
  for (int i = 0; i < 3; ++i) {
    double s = 0;
    for (int j = 0; j < 3; ++j) s += v.m[i][j] * rgb[j];
    out[i] = std::clamp(s, 0.0, 1.0);
  }
  return out;
}

Vec3 lab(const Vec3& rgb) {
  const double x = 0.4124564 * rgb[0] + 0.3575761 * rgb[1] + 0.1804375 * rgb[2];
  const double y = 0.2126729 * rgb[0] + 0.7151522 * rgb[1] + 0.0721750 * rgb[2];
  const double z = 0.0193339 * rgb[0] + 0.1191920 * rgb[1] + 0.9503041 * rgb[2];
  auto f = [](double t) {
    constexpr double d = 6.0 / 29.0;
    return t > d * d * d ? std::cbrt(t) : t / (3 * d * d) + 4.0 / 29.0;
  };
  const double fx = f(x / 0.95047), fy = f(y), fz = f(z / 1.08883);
  return {116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)};
}

double radians(double deg) { return deg * M_PI / 180.0; }
double degrees(double rad) { return rad * 180.0 / M_PI; }

double hue(double b, double a) {
  if (a == 0 && b == 0) return 0;
  const double h = degrees(std::atan2(b, a));
  return h < 0 ? h + 360 : h;
}

// CIEDE2000 with kL = kC = kH = 1, as Sharma et al. (2005) give it.
double ciede2000(const Vec3& x, const Vec3& y) {
  const double c_bar = (std::hypot(x[1], x[2]) + std::hypot(y[1], y[2])) / 2;
  const double g = 0.5 * (1 - std::sqrt(std::pow(c_bar, 7) / (std::pow(c_bar, 7) + std::pow(25.0, 7))));
  const double a1 = (1 + g) * x[1], a2 = (1 + g) * y[1];
  const double c1 = std::hypot(a1, x[2]), c2 = std::hypot(a2, y[2]);
  const double h1 = hue(x[2], a1), h2 = hue(y[2], a2);
  double dh = 0;
  if (c1 * c2 != 0) dh = h2 - h1 > 180 ? h2 - h1 - 360 : h2 - h1 < -180 ? h2 - h1 + 360 : h2 - h1;
  const double d_l = y[0] - x[0], d_c = c2 - c1;
  const double d_h = 2 * std::sqrt(c1 * c2) * std::sin(radians(dh / 2));
  const double l_bar = (x[0] + y[0]) / 2, cp_bar = (c1 + c2) / 2;
  double h_bar = h1 + h2;
  if (c1 * c2 != 0)
    h_bar = std::fabs(h1 - h2) <= 180 ? (h1 + h2) / 2 : h1 + h2 < 360 ? (h1 + h2 + 360) / 2 : (h1 + h2 - 360) / 2;
  const double t = 1 - 0.17 * std::cos(radians(h_bar - 30)) + 0.24 * std::cos(radians(2 * h_bar)) +
                   0.32 * std::cos(radians(3 * h_bar + 6)) - 0.20 * std::cos(radians(4 * h_bar - 63));
  const double d_theta = 30 * std::exp(-std::pow((h_bar - 275) / 25, 2));
  const double r_c = 2 * std::sqrt(std::pow(cp_bar, 7) / (std::pow(cp_bar, 7) + std::pow(25.0, 7)));
  const double s_l = 1 + 0.015 * std::pow(l_bar - 50, 2) / std::sqrt(20 + std::pow(l_bar - 50, 2));
  const double s_c = 1 + 0.045 * cp_bar, s_h = 1 + 0.015 * cp_bar * t;
  const double r_t = -std::sin(radians(2 * d_theta)) * r_c;
  return std::sqrt(std::pow(d_l / s_l, 2) + std::pow(d_c / s_c, 2) + std::pow(d_h / s_h, 2) +
                   r_t * (d_c / s_c) * (d_h / s_h));
}

struct OpClass {
  OpKind kind;
  int chunk;
};

std::vector<OpClass> classes_drawn_together(int chunks) {
  std::vector<OpClass> out;
  for (OpKind k : {OpKind::Forward, OpKind::Backward, OpKind::Weight})
    for (int c = 0; c < chunks; ++c) out.push_back({k, c});
  return out;
}

// The smallest CIEDE2000 between two classes of one pipe under one vision.
double min_difference(const Vision& v, int pipe, int chunks) {
  const auto classes = classes_drawn_together(chunks);
  double worst = 1e9;
  for (std::size_t i = 0; i < classes.size(); ++i)
    for (std::size_t j = i + 1; j < classes.size(); ++j) {
      const Vec3 a = lab(simulate(v, linear_rgb(op_fill(classes[i].kind, classes[i].chunk, pipe))));
      const Vec3 b = lab(simulate(v, linear_rgb(op_fill(classes[j].kind, classes[j].chunk, pipe))));
      worst = std::min(worst, ciede2000(a, b));
    }
  return worst;
}

}  // namespace

TEST_CASE("CIEDE2000 matches Sharma et al.'s test data", "[vega][colour]") {
  // Pairs 1, 7 and 17 of Table 1 of Sharma, Wu and Dalal (2005).
  CHECK(ciede2000({50.0, 2.6772, -79.7751}, {50.0, 0.0, -82.7485}) == Approx(2.0425).margin(1e-4));
  CHECK(ciede2000({50.0, 0.0, 0.0}, {50.0, -1.0, 2.0}) == Approx(2.3669).margin(1e-4));
  CHECK(ciede2000({50.0, 2.5, 0.0}, {73.0, 25.0, -18.0}) == Approx(27.1492).margin(1e-4));
  // sRGB white is L* 100 with no chroma.
  const Vec3 white = lab(linear_rgb("#ffffff"));
  CHECK(white[0] == Approx(100.0).margin(1e-3));
  CHECK(std::fabs(white[1]) < 0.01);
}

TEST_CASE("op colours stay apart under simulated colour-vision deficiency", "[vega][colour]") {
  // The table in docs/formats.md ("Colours") lists these minima.
  constexpr double kMinDifference = 20.0;
  for (const Vision& v : kVisions)
    for (int pipe = 0; pipe < 2; ++pipe) {
      const double worst = min_difference(v, pipe, 2);
      INFO(v.name << ", pipe " << pipe << ": min CIEDE2000 " << worst);
      std::printf("colour: %-13s pipe %d  min CIEDE2000 over F/B/W x chunks 0-1: %.1f\n", v.name, pipe, worst);
      CHECK(worst >= kMinDifference);
    }
}

TEST_CASE("chunk shades of a kind stay apart in grey-scale", "[vega][colour]") {
  for (int pipe = 0; pipe < 2; ++pipe)
    for (OpKind k : {OpKind::Forward, OpKind::Backward, OpKind::Weight}) {
      std::array<double, 4> l{};
      for (int c = 0; c < 4; ++c) l[c] = lab(linear_rgb(op_fill(k, c, pipe)))[0];
      INFO("pipe " << pipe << " kind " << op_kind_name(k));
      CHECK(l[0] - l[1] >= 35.0);  // chunk 1 a clear step darker than chunk 0
      for (int a = 0; a < 4; ++a)
        for (int b = a + 1; b < 4; ++b) CHECK(std::fabs(l[a] - l[b]) >= 11.0);
    }
}

TEST_CASE("blocked time stays apart from every op class and from idle white", "[vega][colour]") {
  // kBlockedFill (views/src/vega.cpp): drawn on the compute row between ops, so it must
  // not pass for any op's fill (either pipe, chunks 0 and 1) nor for idle (white).
  constexpr double kMinDifference = 17.0;
  std::vector<std::string> others = {"#ffffff"};
  for (int pipe = 0; pipe < 2; ++pipe)
    for (const OpClass& c : classes_drawn_together(2)) others.push_back(op_fill(c.kind, c.chunk, pipe));
  for (const Vision& v : kVisions) {
    double worst = 1e9;
    for (const std::string& o : others)
      worst = std::min(worst, ciede2000(lab(simulate(v, linear_rgb(blocked_fill()))), lab(simulate(v, linear_rgb(o)))));
    INFO(v.name << ": min CIEDE2000 " << worst);
    CHECK(worst >= kMinDifference);
  }
}
