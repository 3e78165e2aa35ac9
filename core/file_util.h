// Small file helpers shared by the writers of datasets, tokenizers and (later) checkpoints.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace om {

// Writes `bytes` to PATH.tmp, then renames it over `path`: readers see the old file or the whole
// new one, never a half-written one. IOError names the file (and says "disk full?" on a short write).
Status write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace om
