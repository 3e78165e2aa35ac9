// ortho_ckpt: look at and check sharded HDF5 checkpoints (checkpoints/FORMAT.md) without training.
//   ortho_ckpt inspect PATH   step, position, layout and run sections of the manifest; one line per
//                             logical tensor of index.h5 (shape, units); the files with their sizes
//   ortho_ckpt verify PATH    every file's size and CRC-32 (verify_checkpoint, one line per file), then
//                             index.h5: every virtual tensor is exactly covered by its units (no gap, no
//                             overlap, nothing outside the shape) and each mapping names an existing
//                             shard dataset of the unit's shape
// PATH is a run directory (its `latest` is followed) or a step_* directory. Read-only: nothing is
// written. Exit status: 0 ok, 1 a failure (missing or damaged checkpoint; the message names the file),
// 2 bad usage.
#include <boost/program_options.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoints/checkpoint.h"
#include "checkpoints/h5.h"

namespace po = boost::program_options;

namespace {

constexpr int kExitOk = 0, kExitFailure = 1, kExitBadUsage = 2;

const char* kUsage =
    "usage: ortho_ckpt <subcommand> PATH   (PATH: a run directory with `latest`, or a step_* directory)\n"
    "  inspect  print the checkpoint's step, position, layout, run settings, tensors and files\n"
    "  verify   check every file's size and CRC-32 and that index.h5 covers every tensor; exit 1 if not\n";

// One optimizer unit as listed in index.h5's "units" attribute (FORMAT.md "index.h5").
struct Unit {
  std::string logical, file;
  std::vector<int64_t> shape;
  int64_t row0 = 0, col0 = 0, rows = 0, cols = 0;
  // The unit's region in the logical tensor: (rows, cols) at (row0, col0), or (rows) at (row0) for 1-D.
  std::vector<int64_t> start() const { return om::unit_region_start(static_cast<int>(shape.size()), row0, col0); }
  std::vector<int64_t> count() const { return om::unit_region_count(static_cast<int>(shape.size()), rows, cols); }
  std::string key() const { return om::checkpoint_unit_key(logical, row0, col0); }
};

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// The units attribute of index.h5, grouped by logical tensor (std::map: name order).
om::StatusOr<std::map<std::string, std::vector<Unit>>> read_units(const om::h5::File& index) {
  OM_ASSIGN_OR_RETURN(std::string text, index.StringAttribute("units"));
  const nlohmann::json all = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (all.is_discarded() || !all.is_array())
    return om::Status::Corruption("'" + index.path() + "': attribute 'units' is not a JSON array");
  std::map<std::string, std::vector<Unit>> units;
  for (const nlohmann::json& u : all) {
    Unit x;
    try {
      x.logical = u.at("logical").get<std::string>();
      x.file = u.value("file", "");
      x.shape = u.at("shape").get<std::vector<int64_t>>();
      x.row0 = u.at("row0").get<int64_t>();
      x.col0 = u.at("col0").get<int64_t>();
      x.rows = u.at("rows").get<int64_t>();
      x.cols = u.at("cols").get<int64_t>();
    } catch (const nlohmann::json::exception& e) {
      return om::Status::Corruption("'" + index.path() + "': a unit of attribute 'units' is malformed: " + e.what());
    }
    units[x.logical].push_back(x);
  }
  return units;
}

om::StatusOr<std::string> open_checkpoint(const std::string& path, nlohmann::json* manifest) {
  OM_ASSIGN_OR_RETURN(std::string step_dir, om::resolve_checkpoint(path));
  OM_ASSIGN_OR_RETURN(*manifest, om::read_manifest(step_dir));
  return step_dir;
}

int fail(const std::string& command, const om::Status& s) {
  std::fprintf(stderr, "ortho_ckpt %s: %s\n", command.c_str(), s.ToString().c_str());
  return kExitFailure;
}

int inspect(const std::string& path) {
  nlohmann::json m;
  om::StatusOr<std::string> step_dir = open_checkpoint(path, &m);
  if (!step_dir.ok()) return fail("inspect", step_dir.status());
  const nlohmann::json& lay = m["layout"];
  std::printf("checkpoint        %s\n", step_dir->c_str());
  std::printf("step              %lld\n", static_cast<long long>(m["step"].get<int64_t>()));
  std::printf("consumed samples  %lld\n", static_cast<long long>(m["consumed_samples"].get<int64_t>()));
  std::printf("layout            tp %d x dp %d\n", lay.value("tp", 1), lay.value("dp", 1));
  for (const char* section : {"model", "optimizer", "schedule", "data"})
    std::printf("%-17s %s\n", section, m[section].dump().c_str());

  om::StatusOr<om::h5::File> index = om::h5::File::OpenRead(*step_dir + "/index.h5");
  if (!index.ok()) return fail("inspect", index.status());
  om::StatusOr<std::map<std::string, std::vector<Unit>>> units = read_units(*index);
  if (!units.ok()) return fail("inspect", units.status());
  std::printf("tensors (%zu)\n", units->size());
  for (const auto& [logical, list] : *units) {
    // The shape index.h5 presents (the virtual dataset), not only what the units claim.
    om::StatusOr<std::vector<int64_t>> shape = index->Shape("/model/" + logical);
    std::printf("  %-32s %-14s %zu unit%s\n", logical.c_str(),
                shape.ok() ? shape_string(*shape).c_str() : "(missing)", list.size(), list.size() == 1 ? "" : "s");
  }
  std::printf("files\n");
  for (const nlohmann::json& f : m["files"])
    std::printf("  %-24s %12llu bytes  crc32 %s\n", f.value("name", "").c_str(),
                static_cast<unsigned long long>(f.value("bytes", uint64_t{0})), f.value("crc32", "").c_str());
  return kExitOk;
}

// Empty when `units` tile a tensor of `shape` exactly; otherwise what is wrong. Areas summing to
// numel with no unit outside the shape and no two overlapping is an exact tiling.
std::string coverage_error(const std::vector<int64_t>& shape, const std::vector<Unit>& units) {
  const int64_t R = shape.empty() ? 0 : shape[0], C = shape.size() == 2 ? shape[1] : 1;
  int64_t area = 0;
  for (size_t i = 0; i < units.size(); ++i) {
    const Unit& a = units[i];
    if (a.shape != shape) return "unit " + a.key() + " records shape " + shape_string(a.shape);
    if (a.rows <= 0 || a.cols <= 0 || a.row0 < 0 || a.col0 < 0 || a.row0 + a.rows > R || a.col0 + a.cols > C)
      return "unit " + a.key() + " (" + std::to_string(a.rows) + " x " + std::to_string(a.cols) +
             ") lies outside the tensor";
    for (size_t j = 0; j < i; ++j) {
      const Unit& b = units[j];
      if (a.row0 < b.row0 + b.rows && b.row0 < a.row0 + a.rows && a.col0 < b.col0 + b.cols && b.col0 < a.col0 + a.cols)
        return "units " + b.key() + " and " + a.key() + " overlap";
    }
    area += a.rows * a.cols;
  }
  if (area != numel(shape))
    return "units cover " + std::to_string(area) + " of " + std::to_string(numel(shape)) + " elements";
  return "";
}

// Checks one virtual tensor of index.h5 (`root` is "/model/", "/optimizer/exp_avg/", ...) against the
// units: exact coverage, and one mapping per unit naming the unit's shard dataset with its region.
om::Status check_tensor(const om::h5::File& index, const std::string& step_dir, const std::string& root,
                        const std::string& logical, const std::vector<Unit>& units,
                        std::map<std::string, om::h5::File>& shards) {
  const std::string name = root + logical, where = "'" + index.path() + "': '" + name + "': ";
  OM_ASSIGN_OR_RETURN(std::vector<int64_t> shape, index.Shape(name));
  if (const std::string e = coverage_error(shape, units); !e.empty()) return om::Status::Corruption(where + e);
  OM_ASSIGN_OR_RETURN(std::vector<om::h5::File::Mapping> maps, index.VirtualMappings(name));
  if (maps.size() != units.size())
    return om::Status::Corruption(where + std::to_string(maps.size()) + " mappings for " +
                                  std::to_string(units.size()) + " units");
  // The shard group of this root: /model/ maps /master/, /optimizer/exp_avg/ maps /exp_avg/.
  const std::string group = root == "/model/" ? "/master/" : root.substr(std::string("/optimizer").size());
  for (const Unit& u : units) {
    const std::string dataset = group + u.key();
    bool found = false;
    for (const om::h5::File::Mapping& mp : maps)
      found = found || (mp.file == u.file && mp.dataset == dataset && mp.start == u.start() && mp.count == u.count());
    if (!found)
      return om::Status::Corruption(where + "no mapping puts '" + u.file + ":" + dataset + "' at its unit's region");
    auto it = shards.find(u.file);
    if (it == shards.end()) {
      OM_ASSIGN_OR_RETURN(om::h5::File shard, om::h5::File::OpenRead(step_dir + "/" + u.file));
      it = shards.emplace(u.file, std::move(shard)).first;
    }
    OM_ASSIGN_OR_RETURN(std::vector<int64_t> source_shape, it->second.Shape(dataset));
    if (source_shape != u.count())
      return om::Status::Corruption("'" + it->second.path() + "': dataset '" + dataset + "' has shape " +
                                    shape_string(source_shape) + ", its unit " + shape_string(u.count()));
  }
  return om::Status::Ok();
}

om::Status check_index(const std::string& step_dir, int64_t* tensors, int64_t* units_total) {
  OM_ASSIGN_OR_RETURN(om::h5::File index, om::h5::File::OpenRead(step_dir + "/index.h5"));
  OM_ASSIGN_OR_RETURN(auto units, read_units(index));
  OM_ASSIGN_OR_RETURN(std::vector<std::string> model, index.Members("/model"));
  for (const auto& [logical, list] : units) {
    if (std::find(model.begin(), model.end(), logical) == model.end())
      return om::Status::Corruption("'" + index.path() + "': unit tensor '" + logical + "' has no /model dataset");
  }
  std::map<std::string, om::h5::File> shards;
  for (const std::string& logical : model) {
    auto it = units.find(logical);
    if (it == units.end())
      return om::Status::Corruption("'" + index.path() + "': '/model/" + logical + "' has no units");
    for (const char* root : {"/model/", "/optimizer/exp_avg/", "/optimizer/exp_avg_sq/"})
      OM_RETURN_IF_ERROR(check_tensor(index, step_dir, root, logical, it->second, shards));
    *units_total += static_cast<int64_t>(it->second.size());
  }
  *tensors = static_cast<int64_t>(model.size());
  return om::Status::Ok();
}

int verify(const std::string& path) {
  nlohmann::json m;
  om::StatusOr<std::string> step_dir = open_checkpoint(path, &m);
  if (!step_dir.ok()) return fail("verify", step_dir.status());
  std::printf("checkpoint %s (step %lld)\n", step_dir->c_str(), static_cast<long long>(m["step"].get<int64_t>()));
  // verify_checkpoint stops at the first bad file; one file at a time reports every one.
  bool files_ok = true;
  for (const nlohmann::json& f : m["files"]) {
    nlohmann::json one = m;
    one["files"] = nlohmann::json::array({f});
    const om::Status s = om::verify_checkpoint(*step_dir, one);
    if (s.ok()) {
      std::printf("OK    %-24s %12llu bytes  crc32 %s\n", f.value("name", "").c_str(),
                  static_cast<unsigned long long>(f.value("bytes", uint64_t{0})), f.value("crc32", "").c_str());
    } else {
      std::printf("FAIL  %s\n", f.value("name", "").c_str());
      fail("verify", s);
      files_ok = false;
    }
  }
  if (!files_ok) return kExitFailure;
  int64_t tensors = 0, units = 0;
  const om::Status index = check_index(*step_dir, &tensors, &units);
  if (!index.ok()) {
    std::printf("FAIL  index.h5 coverage\n");
    return fail("verify", index);
  }
  std::printf("OK    index.h5: %lld tensors (model, exp_avg, exp_avg_sq) exactly covered by %lld units\n",
              static_cast<long long>(tensors), static_cast<long long>(units));
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h" || args[0] == "help")) {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (args.empty() || (args[0] != "inspect" && args[0] != "verify")) {
    if (!args.empty()) std::fprintf(stderr, "ortho_ckpt: unknown subcommand '%s'\n", args[0].c_str());
    std::fputs(kUsage, stderr);
    return kExitBadUsage;
  }
  const std::string command = args[0];
  std::string path;
  po::options_description desc("ortho_ckpt " + command + " PATH");
  desc.add_options()("help,h", "show this help")("path", po::value(&path),
                                                 "run directory (with `latest`) or step_* directory");
  po::positional_options_description positional;
  positional.add("path", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(std::vector<std::string>(args.begin() + 1, args.end()))
                  .options(desc)
                  .positional(positional)
                  .run(),
              vm);
    if (vm.count("help")) {
      std::cout << desc;
      return kExitOk;
    }
    po::notify(vm);
    if (!vm.count("path")) throw po::error("missing PATH");
  } catch (const po::error& e) {
    std::fprintf(stderr, "ortho_ckpt %s: %s\n%s", command.c_str(), e.what(), kUsage);
    return kExitBadUsage;
  }
  return command == "inspect" ? inspect(path) : verify(path);
}
