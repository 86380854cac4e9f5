// One include for Catch2 2.x (Debian) and Catch2 3.x.
#pragma once
#if __has_include(<catch2/catch_all.hpp>)
#  include <catch2/catch_all.hpp>
#else
#  include <catch2/catch.hpp>
#endif
