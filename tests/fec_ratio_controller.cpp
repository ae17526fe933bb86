#include <peerlink/proto/fec_ratio_controller.hpp>

#include "catch.hpp"

#include <cmath>
#include <limits>
#include <vector>

using peerlink::fec_ratio;
using peerlink::fec_ratio_controller;
using peerlink::fec_ratio_options;
using peerlink::fec_ratio_step;

namespace {
// No smoothing, no hold: the table alone decides (hysteresis still applies down).
fec_ratio_controller raw(double hysteresis = 0.25, unsigned hold = 1) {
    std::error_code ec;
    fec_ratio_controller c(fec_ratio_controller::default_table, {1.0, hysteresis, hold}, ec);
    REQUIRE(!ec);
    return c;
}
} // namespace

TEST_CASE("fec_ratio_controller: the default table going up", "[fec]") {
    struct row {
        double loss;
        fec_ratio ratio;
    };
    const row rows[] = {
        {0.0, {10, 1}}, {0.0099, {10, 1}}, {0.01, {8, 2}}, {0.0499, {8, 2}},
        {0.05, {6, 3}}, {0.0999, {6, 3}},  {0.10, {4, 4}}, {0.1999, {4, 4}},
        {0.20, {3, 5}}, {0.9, {3, 5}},     {1.0, {3, 5}},
    };
    for (const auto& r : rows) {
        auto c = raw(); // a fresh controller starts at 10:1 and only goes up here
        c.on_sample(r.loss);
        INFO("loss " << r.loss);
        CHECK(c.ratio() == r.ratio);
    }
    fec_ratio_controller d;
    CHECK(d.ratio() == fec_ratio{10, 1});
    CHECK(d.level() == 0);
}

TEST_CASE("fec_ratio_controller: a loss hovering at a bound does not flap", "[fec]") {
    fec_ratio_controller c; // default smoothing and hysteresis
    int changes = 0;
    // 4.9%, 5.1%, ...: the first sample lands in 8:2, the average then crosses 5%
    // once (it peaks at 5.02%), and after that nothing moves.
    for (int i = 0; i < 20; ++i)
        changes += c.on_sample(i % 2 ? 0.051 : 0.049) ? 1 : 0;
    CHECK(changes == 2);
    changes = 0;
    for (int i = 0; i < 400; ++i)
        changes += c.on_sample(i % 2 ? 0.051 : 0.049) ? 1 : 0;
    CHECK(c.ratio() == fec_ratio{6, 3});
    CHECK(changes == 0);
    // Noisier: 3% to 7% around the 5% bound.
    changes = 0;
    for (int i = 0; i < 400; ++i)
        changes += c.on_sample(0.05 + 0.02 * std::sin(i * 1.7)) ? 1 : 0;
    CHECK(changes <= 1);
    CHECK(c.ratio() == fec_ratio{6, 3});
    // Around 1% as well.
    fec_ratio_controller d;
    changes = 0;
    for (int i = 0; i < 400; ++i)
        changes += d.on_sample(i % 3 ? 0.0095 : 0.0115) ? 1 : 0;
    CHECK(changes <= 1);
}

TEST_CASE("fec_ratio_controller: stepping down needs margin and time", "[fec]") {
    auto c = raw(0.25, 3);
    REQUIRE(c.on_sample(0.06));
    REQUIRE(c.ratio() == fec_ratio{6, 3});
    // 4% is under the 5% bound but not under 3.75%: stays.
    for (int i = 0; i < 10; ++i)
        CHECK(!c.on_sample(0.04));
    CHECK(c.ratio() == fec_ratio{6, 3});
    // 3.7%: down after the third sample in a row, not before.
    CHECK(!c.on_sample(0.037));
    CHECK(!c.on_sample(0.037));
    CHECK(!c.on_sample(0.06)); // interrupted: the count starts again
    CHECK(!c.on_sample(0.037));
    CHECK(!c.on_sample(0.037));
    CHECK(c.on_sample(0.037));
    CHECK(c.ratio() == fec_ratio{8, 2});
    // From the top straight to the bottom when the loss vanishes.
    REQUIRE(c.on_sample(0.5));
    CHECK(c.ratio() == fec_ratio{3, 5});
    CHECK(!c.on_sample(0));
    CHECK(!c.on_sample(0));
    CHECK(c.on_sample(0));
    CHECK(c.ratio() == fec_ratio{10, 1});
}

TEST_CASE("fec_ratio_controller: smoothing", "[fec]") {
    fec_ratio_controller c;
    c.on_sample(0.0);
    CHECK(c.loss() == 0.0);
    // One bad interval alone does not jump to 3:5: 0.3 x 30% = 9%.
    c.on_sample(0.30);
    CHECK(c.loss() == Approx(0.09));
    CHECK(c.ratio() == fec_ratio{6, 3});
    // The first sample sets the average.
    fec_ratio_controller d;
    d.on_sample(0.15);
    CHECK(d.loss() == Approx(0.15));
    CHECK(d.ratio() == fec_ratio{4, 4});
}

TEST_CASE("fec_ratio_controller: counts, odd samples, reset", "[fec]") {
    auto c = raw();
    CHECK(!c.on_counts(5, 0));
    CHECK(c.on_counts(3, 100));
    CHECK(c.ratio() == fec_ratio{8, 2});
    CHECK(!c.on_sample(std::numeric_limits<double>::quiet_NaN()));
    CHECK(c.ratio() == fec_ratio{8, 2});
    CHECK(c.on_sample(7.0)); // clamped to 100%
    CHECK(c.loss() == 1.0);
    CHECK(c.on_counts(200, 100) == false); // clamped, already at the top
    c.reset();
    CHECK(c.ratio() == fec_ratio{10, 1});
    CHECK(c.loss() == 0);
}

TEST_CASE("fec_ratio_controller: custom tables and validation", "[fec]") {
    const std::vector<fec_ratio_step> table = {{0.02, {20, 2}}, {1.0, {5, 5}}};
    std::error_code ec;
    fec_ratio_controller c(table, {1.0, 0.5, 1}, ec);
    REQUIRE(!ec);
    CHECK(c.ratio() == fec_ratio{20, 2});
    CHECK(c.on_sample(0.03));
    CHECK(c.ratio() == fec_ratio{5, 5});
    CHECK(!c.on_sample(0.015)); // needs < 1%
    CHECK(c.on_sample(0.009));

    using V = std::vector<fec_ratio_step>;
    const fec_ratio_options ok;
    CHECK(fec_ratio_controller::validate(V{}, ok) == peerlink::error::invalid_config);
    CHECK(fec_ratio_controller::validate(V{{0.1, {4, 4}}, {0.05, {3, 5}}, {1, {2, 6}}}, ok));
    CHECK(fec_ratio_controller::validate(V{{0.1, {0, 4}}, {1, {3, 5}}}, ok));
    CHECK(fec_ratio_controller::validate(V{{0.1, {200, 56}}, {1, {3, 5}}}, ok));
    CHECK(!fec_ratio_controller::validate(V{{0.5, {1, 1}}}, ok));
    CHECK(fec_ratio_controller::validate(V(17, {1.0, {1, 1}}), ok));
    CHECK(fec_ratio_controller::validate(fec_ratio_controller::default_table, {0.0, 0.25, 3}));
    CHECK(fec_ratio_controller::validate(fec_ratio_controller::default_table, {0.3, 1.0, 3}));
    CHECK(fec_ratio_controller::validate(fec_ratio_controller::default_table, {0.3, 0.25, 0}));
    CHECK(fec_ratio_controller::validate(fec_ratio_controller::default_table,
                                         {std::nan(""), 0.25, 3}));
    fec_ratio_controller bad(V{{0.1, {0, 4}}}, ok, ec);
    CHECK(ec == peerlink::error::invalid_config);
    CHECK(bad.ratio() == fec_ratio{10, 1}); // fell back to the defaults
}
