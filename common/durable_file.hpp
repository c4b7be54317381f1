// Replacing a small file so that a crash or a full disk leaves either the old content or the new,
// never a truncated mix: the way a database writes its control file.
#pragma once

#include <string>
#include <string_view>

namespace polymur {

// Writes `content` to `path`.tmp (every write checked), fsyncs it, renames it over `path` and
// fsyncs the directory. On failure the old file is untouched, the temporary file is removed and
// `error` says which step failed and why.
bool replace_file_durably(const std::string& path, std::string_view content, std::string& error);

// fsyncs the directory holding `path`, so a rename or a new file in it survives a power loss.
bool sync_directory_of(const std::string& path);

}  // namespace polymur
