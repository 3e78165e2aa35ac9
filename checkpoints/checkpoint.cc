// Checkpoint save, publish, verify and load (checkpoints/checkpoint.h, checkpoints/FORMAT.md).
#include "checkpoints/checkpoint.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_EXCHANGE (glibc ≥ 2.28)
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "checkpoints/h5.h"
#include "core/log.h"
#include "kernels/block_rotate.h"

namespace om {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "ortho-megatron-checkpoint";

std::string shard_name(int t, int d) { return "shard_tp" + std::to_string(t) + "_dp" + std::to_string(d) + ".h5"; }


Status fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return Status::IOError("cannot open '" + path + "' to fsync it");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Status::IOError("fsync of '" + path + "' failed (disk full or I/O error?)");
  return Status::Ok();
}

Status write_synced(const std::string& path, const std::string& bytes) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
    out.flush();
    if (!out) return Status::IOError("cannot write '" + path + "' (disk full?)");
  }
  return fsync_path(path, false);
}

struct FileSum {
  uint64_t bytes = 0;
  uint32_t crc = 0;
};

StatusOr<FileSum> file_crc32(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Status::Corruption("checkpoint file '" + path + "' is missing");
  FileSum s;
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<unsigned char> buf(1 << 20);
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
    crc = crc32(crc, buf.data(), static_cast<uInt>(n));
    s.bytes += n;
  }
  const bool error = std::ferror(f) != 0;
  std::fclose(f);
  if (error) return Status::IOError("cannot read checkpoint file '" + path + "'");
  s.crc = static_cast<uint32_t>(crc);
  return s;
}

std::string hex32(uint32_t v) {
  char b[9];
  std::snprintf(b, sizeof(b), "%08x", v);
  return b;
}

// Every rank learns whether any rank failed. The failing rank returns its own Status; the others a
// Status saying another rank failed (its message is printed by that rank).
Status agree(Comm* world, const Status& local, const char* what) {
  if (world == nullptr || world->size() == 1) return local;
  double flag = local.ok() ? 0.0 : 1.0;
  world->all_reduce(make_view(&flag, DType::kF64, Shape{1}, Device::Cpu(), "checkpoint.status"), ReduceOp::kMax);
  if (!local.ok()) return local;
  if (flag > 0.0) return Status::IOError(std::string(what) + " failed on another rank (its message is printed there)");
  return Status::Ok();
}

nlohmann::json units_json(const DistributedOptimizer& opt) {
  nlohmann::json units = nlohmann::json::array();
  for (size_t u : opt.local_units()) {
    const OptimizerUnit& unit = opt.units()[u];
    std::vector<int64_t> shape(unit.logical_shape.dims, unit.logical_shape.dims + unit.logical_shape.ndim);
    units.push_back({{"logical", unit.logical}, {"shape", shape}, {"row0", unit.logical_row0},
                     {"col0", unit.logical_col0}, {"rows", unit.rows}, {"cols", unit.cols}});
  }
  return units;
}

// The optimizer state may live on a GPU: every unit goes through this host copy (one unit at a time,
// so the extra host memory is the largest unit, ≤ B rows).
std::vector<float>& host_copy(const ConstTensorView& v, std::vector<float>& buf) {
  buf.resize(static_cast<size_t>(v.numel()));
  copy_bytes(buf.data(), Device::Cpu(), v.data, v.device, v.nbytes());
  return buf;
}

Status write_shard(const std::string& path, const DistributedOptimizer& opt, const CheckpointLayout& layout,
                   int64_t step) {
  OM_ASSIGN_OR_RETURN(h5::File f, h5::File::Create(path));
  static const char* kGroups[3] = {"master", "exp_avg", "exp_avg_sq"};
  std::vector<float> buf;
  for (size_t u : opt.local_units()) {
    const OptimizerUnit& unit = opt.units()[u];
    const std::vector<int64_t> count = unit_region_count(unit.logical_shape.ndim, unit.rows, unit.cols);
    for (int which = 0; which < 3; ++which) {
      const std::string name =
          std::string("/") + kGroups[which] + "/" + checkpoint_unit_key(unit.logical, unit.logical_row0, unit.logical_col0);
      OM_RETURN_IF_ERROR(f.WriteF32(name, count, host_copy(opt.unit_state(which, u), buf).data()));
    }
  }
  OM_RETURN_IF_ERROR(f.SetStringAttribute("units", units_json(opt).dump()));
  OM_RETURN_IF_ERROR(f.SetIntAttribute("tp", layout.tp));
  OM_RETURN_IF_ERROR(f.SetIntAttribute("dp", layout.dp));
  OM_RETURN_IF_ERROR(f.SetIntAttribute("tp_rank", layout.tp_rank));
  OM_RETURN_IF_ERROR(f.SetIntAttribute("dp_rank", layout.dp_rank));
  OM_RETURN_IF_ERROR(f.SetIntAttribute("step", step));
  OM_RETURN_IF_ERROR(f.Close());
  return fsync_path(path, false);
}

// index.h5 from the shard files' unit lists; returns the merged list (replicated units once).
StatusOr<nlohmann::json> write_index(const std::string& tmp, const CheckpointLayout& layout, const nlohmann::json& run) {
  struct Tensor {
    std::vector<int64_t> shape;
    std::vector<h5::File::Mapping> maps[3];
  };
  std::map<std::string, Tensor> tensors;
  std::map<std::string, bool> seen;
  nlohmann::json all = nlohmann::json::array();
  static const char* kGroups[3] = {"master", "exp_avg", "exp_avg_sq"};
  for (int t = 0; t < layout.tp; ++t) {
    for (int d = 0; d < layout.dp; ++d) {
      const std::string name = shard_name(t, d);
      OM_ASSIGN_OR_RETURN(h5::File shard, h5::File::OpenRead(tmp + "/" + name));
      OM_ASSIGN_OR_RETURN(std::string text, shard.StringAttribute("units"));
      for (const nlohmann::json& u : nlohmann::json::parse(text)) {
        const std::string key = checkpoint_unit_key(u["logical"], u["row0"], u["col0"]);
        if (seen[key]) continue;  // a tp-replicated tensor (norm gain): every tp rank wrote the same bits
        seen[key] = true;
        Tensor& tensor = tensors[u["logical"]];
        tensor.shape = u["shape"].get<std::vector<int64_t>>();
        Shape s;
        for (int64_t v : tensor.shape) s.dims[s.ndim++] = v;
        for (int which = 0; which < 3; ++which) {
          tensor.maps[which].push_back({name, std::string("/") + kGroups[which] + "/" + key,
                                        unit_region_start(s.ndim, u["row0"], u["col0"]),
                                        unit_region_count(s.ndim, u["rows"], u["cols"])});
        }
        nlohmann::json entry = u;
        entry["file"] = name;
        all.push_back(entry);
      }
    }
  }
  const std::string path = tmp + "/index.h5";
  OM_ASSIGN_OR_RETURN(h5::File index, h5::File::Create(path));
  static const char* kVirtual[3] = {"/model/", "/optimizer/exp_avg/", "/optimizer/exp_avg_sq/"};
  for (const auto& [logical, tensor] : tensors) {
    for (int which = 0; which < 3; ++which)
      OM_RETURN_IF_ERROR(index.CreateVirtualF32(kVirtual[which] + logical, tensor.shape, tensor.maps[which]));
  }
  OM_RETURN_IF_ERROR(index.SetStringAttribute("units", all.dump()));
  OM_RETURN_IF_ERROR(index.SetStringAttribute("manifest", run.dump()));
  OM_RETURN_IF_ERROR(index.Close());
  OM_RETURN_IF_ERROR(fsync_path(path, false));
  return all;
}

// Rank 0's part of a save after every shard is on disk: index, manifest, rename, latest, pruning.
StatusOr<std::string> publish(const std::string& dir, const std::string& tmp, int keep, const CheckpointState& state,
                              const CheckpointLayout& layout, const DistributedOptimizer& opt) {
  nlohmann::json m;
  m["format"] = kFormat;
  m["format_version"] = kCheckpointFormatVersion;
  m["step"] = state.step;
  m["consumed_samples"] = state.consumed_samples;
  m["model"] = state.model;
  m["optimizer"] = state.optimizer;
  m["optimizer"]["step"] = opt.step();
  m["schedule"] = state.schedule;
  m["data"] = state.data;
  m["skipped_steps"] = state.skipped_steps;
  m["layout"] = {{"tp", layout.tp}, {"dp", layout.dp}};
  OM_RETURN_IF_ERROR(write_index(tmp, layout, m).status());
  nlohmann::json files = nlohmann::json::array();
  std::vector<std::string> names = {"index.h5"};
  for (int t = 0; t < layout.tp; ++t)
    for (int d = 0; d < layout.dp; ++d) names.push_back(shard_name(t, d));
  for (const std::string& name : names) {
    OM_ASSIGN_OR_RETURN(FileSum sum, file_crc32(tmp + "/" + name));
    files.push_back({{"name", name}, {"bytes", sum.bytes}, {"crc32", hex32(sum.crc)}});
  }
  m["files"] = files;
  OM_RETURN_IF_ERROR(write_synced(tmp + "/manifest.json", m.dump(2) + "\n"));
  OM_RETURN_IF_ERROR(fsync_path(tmp, true));

  const std::string name = checkpoint_dir_name(state.step), final_dir = dir + "/" + name;
  std::error_code ec;
  if (fs::exists(final_dir)) {
    // A re-save of the same step: swap the two directories in one atomic rename, so `step_N` is always
    // a complete checkpoint; the old copy is then in `tmp` and removed below.
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0)
      return Status::IOError("cannot replace '" + final_dir + "' (renameat2 RENAME_EXCHANGE failed)");
  } else {
    fs::rename(tmp, final_dir, ec);
    if (ec) return Status::IOError("cannot rename '" + tmp + "' to '" + final_dir + "': " + ec.message());
  }
  OM_RETURN_IF_ERROR(fsync_path(dir, true));
  OM_RETURN_IF_ERROR(write_synced(dir + "/latest.tmp", name + "\n"));
  fs::rename(dir + "/latest.tmp", dir + "/latest", ec);
  if (ec) return Status::IOError("cannot update '" + dir + "/latest': " + ec.message());
  OM_RETURN_IF_ERROR(fsync_path(dir, true));
  fs::remove_all(tmp, ec);  // the replaced copy, if any

  if (keep > 0) {  // the newest `keep` step directories stay (the one just published is the newest)
    std::vector<std::string> steps;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
      const std::string n = e.path().filename().string();
      if (e.is_directory() && n.rfind("step_", 0) == 0 && n != name) steps.push_back(n);
    }
    std::sort(steps.begin(), steps.end());
    const size_t drop = steps.size() > static_cast<size_t>(keep - 1) ? steps.size() - (keep - 1) : 0;
    // Renamed out of the step_* namespace first (atomic), then deleted: a kill mid-delete leaves a
    // hidden .deleting directory (swept by the next save), never a half-deleted step_* one.
    for (size_t i = 0; i < drop; ++i) {
      const std::string doomed = dir + "/." + steps[i] + ".deleting";
      fs::rename(dir + "/" + steps[i], doomed, ec);
      if (!ec) fs::remove_all(doomed, ec);
    }
  }
  return final_dir;
}

}  // namespace

std::string checkpoint_unit_key(const std::string& logical, int64_t row0, int64_t col0) {
  return logical + "/r" + std::to_string(row0) + "_c" + std::to_string(col0);
}
std::vector<int64_t> unit_region_start(int ndim, int64_t row0, int64_t col0) {
  return ndim == 2 ? std::vector<int64_t>{row0, col0} : std::vector<int64_t>{row0};
}
std::vector<int64_t> unit_region_count(int ndim, int64_t rows, int64_t cols) {
  return ndim == 2 ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{rows};
}

std::string checkpoint_dir_name(int64_t step) {
  char b[32];
  std::snprintf(b, sizeof(b), "step_%08lld", static_cast<long long>(step));
  return b;
}

StatusOr<std::string> save_checkpoint(const std::string& dir, int keep, const CheckpointState& state,
                                      const DistributedOptimizer& optimizer, const CheckpointLayout& layout,
                                      Comm* world) {
  const bool root = world == nullptr || world->rank() == 0;
  const std::string tmp = dir + "/." + checkpoint_dir_name(state.step) + ".tmp";
  Status local;
  if (root) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
      local = Status::IOError("--save '" + dir + "': cannot create the directory: " + ec.message());
    } else {
      // Leftovers of killed saves are never read; remove them before starting another.
      for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
        const std::string n = e.path().filename().string();
        if (n.rfind(".step_", 0) == 0 && (n.ends_with(".tmp") || n.ends_with(".deleting"))) fs::remove_all(e.path(), ec);
      }
      fs::create_directories(tmp, ec);
      if (ec) local = Status::IOError("--save '" + dir + "': cannot create '" + tmp + "': " + ec.message());
    }
  }
  OM_RETURN_IF_ERROR(agree(world, local, "checkpoint save (creating the directory)"));

  local = write_shard(tmp + "/" + shard_name(layout.tp_rank, layout.dp_rank), optimizer, layout, state.step);
  OM_RETURN_IF_ERROR(agree(world, local, "checkpoint save (writing a shard)"));

  StatusOr<std::string> published = std::string();
  if (root) {
    published = publish(dir, tmp, keep, state, layout, optimizer);
    if (!published.ok()) {
      std::error_code ec;
      fs::remove_all(tmp, ec);
    }
  }
  OM_RETURN_IF_ERROR(agree(world, published.status(), "checkpoint save (publishing)"));
  return (fs::path(dir) / checkpoint_dir_name(state.step)).string();
}

StatusOr<std::string> resolve_checkpoint(const std::string& path) {
  if (fs::exists(path + "/manifest.json")) return path;
  if (fs::exists(path + "/latest")) {
    std::ifstream in(path + "/latest");
    std::string name;
    std::getline(in, name);
    if (name.empty() || name.find('/') != std::string::npos)
      return Status::Corruption("'" + path + "/latest' does not name a checkpoint directory; point --load at a "
                                "step_* directory instead");
    const std::string step_dir = path + "/" + name;
    if (!fs::exists(step_dir + "/manifest.json"))
      return Status::Corruption("'" + path + "/latest' names '" + name + "', which has no manifest.json");
    return step_dir;
  }
  // No `latest` yet: a job killed between publishing its first step directory and writing `latest`.
  // Published step directories are complete (they appear by rename with their manifest), so the
  // newest one is the checkpoint.
  std::error_code ec;
  std::string newest;
  if (fs::is_directory(path, ec)) {
    for (const fs::directory_entry& e : fs::directory_iterator(path, ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("step_", 0) == 0 && fs::exists(e.path() / "manifest.json") && n > newest) newest = n;
    }
  }
  if (!newest.empty()) return path + "/" + newest;
  return Status::NotFound("'" + path + "' holds no checkpoint (neither a 'latest' file nor a manifest.json)");
}

StatusOr<nlohmann::json> read_manifest(const std::string& step_dir) {
  const std::string path = step_dir + "/manifest.json";
  std::ifstream in(path);
  if (!in) return Status::NotFound("checkpoint manifest '" + path + "' is missing");
  nlohmann::json m = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded() || !m.is_object()) return Status::Corruption("'" + path + "' is not valid JSON");
  if (m.value("format", "") != kFormat)
    return Status::Corruption("'" + path + "' is not an ortho-megatron checkpoint manifest");
  if (m.value("format_version", 0) != kCheckpointFormatVersion)
    return Status::FailedPrecondition("'" + path + "' has format version " + std::to_string(m.value("format_version", 0)) +
                                      "; this build reads version " + std::to_string(kCheckpointFormatVersion));
  for (const char* key : {"step", "consumed_samples", "model", "optimizer", "schedule", "data", "layout", "files"})
    if (!m.contains(key)) return Status::Corruption("'" + path + "' lacks \"" + key + "\"");
  return m;
}

Status verify_checkpoint(const std::string& step_dir, const nlohmann::json& manifest) {
  for (const nlohmann::json& f : manifest["files"]) {
    const std::string path = step_dir + "/" + f.value("name", "");
    OM_ASSIGN_OR_RETURN(FileSum sum, file_crc32(path));
    if (sum.bytes != f.value("bytes", uint64_t{0}))
      return Status::Corruption("checkpoint file '" + path + "' has " + std::to_string(sum.bytes) + " bytes, the manifest says " +
                                std::to_string(f.value("bytes", uint64_t{0})) + " (truncated?)");
    if (hex32(sum.crc) != f.value("crc32", ""))
      return Status::Corruption("checkpoint file '" + path + "' fails its CRC-32 check (" + hex32(sum.crc) +
                                ", the manifest says " + f.value("crc32", "") + "): the file is damaged");
  }
  return Status::Ok();
}

std::vector<std::string> manifest_mismatches(const nlohmann::json& saved, const nlohmann::json& run,
                                             const std::string& section) {
  std::vector<std::string> out;
  const nlohmann::json& a = saved.contains(section) ? saved[section] : nlohmann::json::object();
  const nlohmann::json& b = run;
  std::map<std::string, bool> keys;
  for (auto it = a.begin(); it != a.end(); ++it) keys[it.key()] = true;
  for (auto it = b.begin(); it != b.end(); ++it) keys[it.key()] = true;
  for (const auto& [k, unused] : keys) {
    const nlohmann::json x = a.contains(k) ? a[k] : nlohmann::json(), y = b.contains(k) ? b[k] : nlohmann::json();
    if (x != y) out.push_back(section + "." + k + ": checkpoint " + x.dump() + ", this run " + y.dump());
  }
  return out;
}

namespace {

// The optimizer settings that decide a unit's basis.
struct Basis {
  OptimizerKind kind = OptimizerKind::kAdamW;
  OptimizerConfig config;
  bool rotated() const { return kind == OptimizerKind::kOrthoAdam && config.transform != OrthoTransform::kIdentity; }
};

StatusOr<Basis> saved_basis(const nlohmann::json& opt) {
  Basis b;
  OM_ASSIGN_OR_RETURN(b.kind, parse_optimizer_kind(opt.value("kind", "adamw")));
  OM_ASSIGN_OR_RETURN(b.config.transform, parse_ortho_transform(opt.value("transform", "haar")));
  b.config.kind = b.kind;
  b.config.block = opt.value("block", kDefaultOrthoBlock);
  b.config.seed = opt.value("seed", uint64_t{0});
  return b;
}

// Rotates a double (R, K) array with a unit's rotations (squared element-wise when `square`).
void rotate(const OptimizerConfig& c, const OptimizerUnit& unit, std::vector<double>& x, RotateDirection dir,
            bool square) {
  UnitRotation r = unit_rotation(c, unit);
  auto sq = [&](std::vector<double>& q) {
    if (square)
      for (double& v : q) v *= v;
  };
  sq(r.q_r);
  RotationUnit ru;
  ru.x = make_view(x.data(), DType::kF64, Shape{unit.rows, unit.cols}, Device::Cpu(), "checkpoint.convert");
  ru.q_r = make_view(r.q_r.data(), DType::kF64, Shape{unit.rows, unit.rows}, Device::Cpu(), "q_r");
  for (size_t b = 0; b < r.widths.size(); ++b) {
    sq(r.q_c[b]);
    ru.q_c.push_back(make_view(r.q_c[b].data(), DType::kF64, Shape{r.widths[b], r.widths[b]}, Device::Cpu(), "q_c"));
  }
  block_rotate(ExecContext{Device::Cpu(), Stream{}}, std::span<const RotationUnit>(&ru, 1), dir);
}

bool same_rotations(const Basis& saved, const Basis& now, const OptimizerUnit& unit,
                    const std::vector<OptimizerUnit>& saved_units) {
  if (!saved.rotated() && !now.rotated()) return true;  // both in the parameter basis
  if (saved.rotated() != now.rotated() || saved.config.transform != now.config.transform ||
      saved.config.seed != now.config.seed)
    return false;
  // Same Q_r: a saved unit with the same rows (Q_r's key ignores columns). Same Q_c: every current column
  // block is a saved block of those rows — possibly of several saved units, as when the column shards of
  // a row-parallel weight (attn.o, mlp.down) saved at tp 2 are loaded at tp 1.
  std::vector<std::pair<int64_t, int64_t>> blocks;
  for (const OptimizerUnit& s : saved_units) {
    if (s.logical_row0 != unit.logical_row0 || s.rows != unit.rows) continue;
    int64_t c = s.logical_col0;
    for (int64_t w : column_blocks(s, saved.config.block)) {
      blocks.push_back({c, w});
      c += w;
    }
  }
  if (blocks.empty()) return false;
  int64_t c = unit.logical_col0;
  for (int64_t w : column_blocks(unit, now.config.block)) {
    if (std::find(blocks.begin(), blocks.end(), std::make_pair(c, w)) == blocks.end()) return false;
    c += w;
  }
  return true;
}

// m and v of `unit` in the current basis from the saved units of its logical tensor.
// A saved unit's m and v in the parameter basis (computed once per saved unit and load).
using ParameterBasisCache = std::map<std::string, std::pair<std::vector<double>, std::vector<double>>>;

Status convert_moments(const h5::File& index, const Basis& saved, const Basis& now, const OptimizerUnit& unit,
                       const std::vector<OptimizerUnit>& saved_units, ParameterBasisCache& cache, float* m_out,
                       float* v_out) {
  const int64_t R = unit.rows, K = unit.cols;
  std::vector<double> M(static_cast<size_t>(R * K), 0.0), V(M.size(), 0.0);
  int64_t covered = 0;
  for (const OptimizerUnit& s : saved_units) {
    const int64_t r0 = std::max(s.logical_row0, unit.logical_row0), r1 = std::min(s.logical_row0 + s.rows, unit.logical_row0 + R);
    const int64_t c0 = std::max(s.logical_col0, unit.logical_col0), c1 = std::min(s.logical_col0 + s.cols, unit.logical_col0 + K);
    if (r0 >= r1 || c0 >= c1) continue;
    const std::string key = checkpoint_unit_key(s.logical, s.logical_row0, s.logical_col0);
    auto cached = cache.find(key);
    if (cached == cache.end()) {
      std::vector<float> buf(static_cast<size_t>(s.rows * s.cols));
      std::vector<double> sm(buf.size()), sv(buf.size());
      const std::vector<int64_t> start = unit_region_start(s.logical_shape.ndim, s.logical_row0, s.logical_col0),
                                 count = unit_region_count(s.logical_shape.ndim, s.rows, s.cols);
      OM_RETURN_IF_ERROR(index.ReadF32("/optimizer/exp_avg/" + s.logical, start, count, buf.data()));
      std::copy(buf.begin(), buf.end(), sm.begin());
      OM_RETURN_IF_ERROR(index.ReadF32("/optimizer/exp_avg_sq/" + s.logical, start, count, buf.data()));
      std::copy(buf.begin(), buf.end(), sv.begin());
      if (saved.rotated()) {  // back to the parameter basis: M exactly, V by the diagonal approximation
        rotate(saved.config, s, sm, RotateDirection::kInverse, false);
        rotate(saved.config, s, sv, RotateDirection::kInverse, true);
      }
      cached = cache.emplace(key, std::make_pair(std::move(sm), std::move(sv))).first;
    }
    const std::vector<double>& sm = cached->second.first;
    const std::vector<double>& sv = cached->second.second;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) {
        const size_t dst = static_cast<size_t>((r - unit.logical_row0) * K + (c - unit.logical_col0));
        const size_t src = static_cast<size_t>((r - s.logical_row0) * s.cols + (c - s.logical_col0));
        M[dst] = sm[src];
        V[dst] = sv[src];
        ++covered;
      }
  }
  if (covered != R * K)
    return Status::Corruption("checkpoint index: the saved units of '" + unit.logical + "' do not cover rows " +
                              std::to_string(unit.logical_row0) + ".." + std::to_string(unit.logical_row0 + R));
  if (now.rotated()) {
    rotate(now.config, unit, M, RotateDirection::kForward, false);
    rotate(now.config, unit, V, RotateDirection::kForward, true);
  }
  for (size_t i = 0; i < M.size(); ++i) {
    m_out[i] = static_cast<float>(M[i]);
    v_out[i] = static_cast<float>(std::max(0.0, V[i]));
  }
  return Status::Ok();
}

StatusOr<LoadReport> load_units(const std::string& step_dir, const nlohmann::json& manifest, DistributedOptimizer& opt,
                                bool load_optim) {
  // HDF5 reads a missing source file of a virtual dataset as zeros, silently: every listed file must exist
  // (their checksums are verify_checkpoint's job).
  for (const nlohmann::json& f : manifest["files"]) {
    const std::string path = step_dir + "/" + f.value("name", "");
    if (!fs::exists(path)) return Status::Corruption("checkpoint file '" + path + "' is missing");
  }
  OM_ASSIGN_OR_RETURN(h5::File index, h5::File::OpenRead(step_dir + "/index.h5"));
  OM_ASSIGN_OR_RETURN(std::string units_text, index.StringAttribute("units"));
  std::map<std::string, std::vector<OptimizerUnit>> saved_units;
  for (const nlohmann::json& u : nlohmann::json::parse(units_text)) {
    OptimizerUnit s;
    s.logical = u["logical"];
    for (int64_t v : u["shape"].get<std::vector<int64_t>>()) s.logical_shape.dims[s.logical_shape.ndim++] = v;
    s.logical_row0 = u["row0"];
    s.logical_col0 = u["col0"];
    s.rows = u["rows"];
    s.cols = u["cols"];
    saved_units[s.logical].push_back(s);
  }
  OM_ASSIGN_OR_RETURN(Basis saved, saved_basis(manifest["optimizer"]));
  Basis now;
  now.kind = opt.config().kind;
  now.config = opt.config();

  LoadReport report;
  ParameterBasisCache cache;
  std::vector<float> master, m, v;  // host staging: the optimizer state may live on a GPU
  auto upload = [&](std::vector<float>& host, int which, size_t u) {
    const TensorView dst = opt.unit_state(which, u);
    copy_bytes(dst.data, dst.device, host.data(), Device::Cpu(), dst.nbytes());
  };
  for (size_t u : opt.local_units()) {
    const OptimizerUnit& unit = opt.units()[u];
    const std::vector<int64_t> start = unit_region_start(unit.logical_shape.ndim, unit.logical_row0, unit.logical_col0),
                               count = unit_region_count(unit.logical_shape.ndim, unit.rows, unit.cols);
    if (!index.Exists("/model/" + unit.logical))
      return Status::FailedPrecondition("checkpoint '" + step_dir + "' has no tensor '" + unit.logical +
                                        "': it was saved from another model");
    OM_ASSIGN_OR_RETURN(std::vector<int64_t> shape, index.Shape("/model/" + unit.logical));
    const std::vector<int64_t> want(unit.logical_shape.dims, unit.logical_shape.dims + unit.logical_shape.ndim);
    if (shape != want)
      return Status::FailedPrecondition("checkpoint '" + step_dir + "': tensor '" + unit.logical +
                                        "' has another shape than this model's: saved from another model");
    const size_t n = static_cast<size_t>(unit.numel());
    master.resize(n);
    OM_RETURN_IF_ERROR(index.ReadF32("/model/" + unit.logical, start, count, master.data()));
    upload(master, 0, u);
    ++report.units;
    if (!load_optim) continue;
    m.resize(n);
    v.resize(n);
    if (same_rotations(saved, now, unit, saved_units[unit.logical])) {
      OM_RETURN_IF_ERROR(index.ReadF32("/optimizer/exp_avg/" + unit.logical, start, count, m.data()));
      OM_RETURN_IF_ERROR(index.ReadF32("/optimizer/exp_avg_sq/" + unit.logical, start, count, v.data()));
    } else {
      OM_RETURN_IF_ERROR(
          convert_moments(index, saved, now, unit, saved_units[unit.logical], cache, m.data(), v.data()));
      ++report.converted_units;
    }
    upload(m, 1, u);
    upload(v, 2, u);
  }
  if (load_optim) opt.set_step(manifest["optimizer"].value("step", int64_t{0}));
  return report;
}

}  // namespace

StatusOr<LoadReport> load_checkpoint(const std::string& step_dir, const nlohmann::json& manifest,
                                     DistributedOptimizer& optimizer, bool load_optim, Comm* world) {
  StatusOr<LoadReport> report = load_units(step_dir, manifest, optimizer, load_optim);
  OM_RETURN_IF_ERROR(agree(world, report.status(), "checkpoint load"));
  optimizer.PublishMaster();
  return report;
}

}  // namespace om
