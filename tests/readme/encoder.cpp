// docs/encoder.md: statements.
#include <string>
// @includes

void snippet() {
// @snippet
}
