// One line per event, subject first, straight to stderr with a single write(2) so lines from
// different processes never interleave. Under systemd (JOURNAL_STREAM names our stderr) each line
// carries a syslog priority prefix instead of a timestamp.
#pragma once

#include <cstdarg>

namespace polymur::log {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// `role` names the process in every line ("supervisor", "listener 0", "output 10.0.0.1:2003").
void set_role(const char* role);
void write(Level level, const char* format, ...) __attribute__((format(printf, 2, 3)));
void vwrite(Level level, const char* format, va_list args);

// Sends libevent's own warnings through this log.
void capture_libevent();

}  // namespace polymur::log

#define LOG_ERROR(...) ::polymur::log::write(::polymur::log::Level::error, __VA_ARGS__)
#define LOG_WARN(...) ::polymur::log::write(::polymur::log::Level::warning, __VA_ARGS__)
#define LOG_NOTICE(...) ::polymur::log::write(::polymur::log::Level::notice, __VA_ARGS__)
#define LOG_INFO(...) ::polymur::log::write(::polymur::log::Level::info, __VA_ARGS__)
