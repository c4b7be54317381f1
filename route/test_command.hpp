// `polymur test -f RULES`: shows what a rules file does with the metric names on stdin.
#pragma once

namespace polymur::route {

// argv[0] is "test".
int run_test(int argc, char** argv);

}  // namespace polymur::route
