// `polymur lookup`: answers "where does this metric live?" from the command line.
#pragma once

namespace polymur::route {

// argv[0] is "lookup"; reads names or plaintext lines on stdin, prints name<TAB>dest[|dest...].
int run_lookup(int argc, char** argv);

}  // namespace polymur::route
