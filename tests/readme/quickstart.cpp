// README, Quick start: a whole program (tests/consumer also builds and runs it).
#include <cstdio>
#include <string>
// @snippet
