// README, Encoder: statements.
#include <string>
// @includes

void snippet() {
// @snippet
}
