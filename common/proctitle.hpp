// Shows each process's role in ps, as nginx does ("polymur: listener 0").
#pragma once

namespace polymur {

// Call once from main before anything reads the environment through `environ` copies.
void proctitle_init(int argc, char** argv);
void proctitle_set(const char* title);

}  // namespace polymur
