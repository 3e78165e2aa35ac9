#include "checkpoints/h5.h"

#include <mutex>

namespace om::h5 {
namespace {

// HDF5 prints its error stack to stderr by default; our Statuses say what failed instead.
void quiet() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

Status fail(const std::string& path, const std::string& what) {
  return Status::IOError("HDF5 file '" + path + "': " + what);
}

std::vector<hsize_t> dims(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

}  // namespace

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    Reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::Reset() {
  if (id_ >= 0 && close_ != nullptr) close_(id_);
  id_ = H5I_INVALID_HID;
}

StatusOr<File> File::Create(const std::string& path) {
  quiet();
  File f;
  f.path_ = path;
  // The 1.8+ object format stores attributes densely, so the `units` attribute may exceed 64 KiB
  // (thousands of units); HDF5 1.8 and later, h5py included, read it.
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
  if (id < 0) return fail(path, "cannot create the file (check the directory exists and is writable)");
  f.file_ = Handle(id, H5Fclose);
  return f;
}

StatusOr<File> File::OpenRead(const std::string& path) {
  quiet();
  File f;
  f.path_ = path;
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) return Status::Corruption("HDF5 file '" + path + "': cannot open it (missing, truncated or not HDF5)");
  f.file_ = Handle(id, H5Fclose);
  return f;
}

Status File::EnsureParents(const std::string& name) {
  for (size_t pos = name.find('/', 1); pos != std::string::npos; pos = name.find('/', pos + 1)) {
    const std::string group = name.substr(0, pos);
    if (H5Lexists(file_.get(), group.c_str(), H5P_DEFAULT) > 0) continue;
    Handle g(H5Gcreate2(file_.get(), group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!g.valid()) return fail(path_, "cannot create group '" + group + "'");
  }
  return Status::Ok();
}

Status File::WriteF32(const std::string& name, const std::vector<int64_t>& shape, const float* data) {
  OM_RETURN_IF_ERROR(EnsureParents(name));
  const std::vector<hsize_t> d = dims(shape);
  Handle space(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), H5Sclose);
  Handle ds(H5Dcreate2(file_.get(), name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            H5Dclose);
  if (!ds.valid()) return fail(path_, "cannot create dataset '" + name + "'");
  if (H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    return fail(path_, "cannot write dataset '" + name + "' (disk full?)");
  return Status::Ok();
}

bool File::Exists(const std::string& name) const {
  // Every prefix must exist for H5Lexists on the full path to be defined.
  for (size_t pos = name.find('/', 1);; pos = name.find('/', pos + 1)) {
    const std::string prefix = pos == std::string::npos ? name : name.substr(0, pos);
    if (H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

StatusOr<std::vector<int64_t>> File::Shape(const std::string& name) const {
  if (!Exists(name)) return Status::NotFound("HDF5 file '" + path_ + "' has no dataset '" + name + "'");
  Handle ds(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) return fail(path_, "cannot open dataset '" + name + "'");
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  const int n = H5Sget_simple_extent_ndims(space.get());
  if (n < 0) return fail(path_, "cannot read the shape of '" + name + "'");
  std::vector<hsize_t> d(static_cast<size_t>(n));
  H5Sget_simple_extent_dims(space.get(), d.data(), nullptr);
  return std::vector<int64_t>(d.begin(), d.end());
}

Status File::ReadF32(const std::string& name, const std::vector<int64_t>& start, const std::vector<int64_t>& count,
                     float* out) const {
  if (!Exists(name)) return Status::NotFound("HDF5 file '" + path_ + "' has no dataset '" + name + "'");
  // Opened once per file object and kept (a loader reads many regions of one virtual dataset, and
  // each open of a virtual dataset opens its source files). Virtual datasets name their sources
  // relative to this file.
  auto it = open_datasets_.find(name);
  if (it == open_datasets_.end()) {
    Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
    H5Pset_virtual_prefix(dapl.get(), "${ORIGIN}");
    Handle opened(H5Dopen2(file_.get(), name.c_str(), dapl.get()), H5Dclose);
    if (!opened.valid()) return fail(path_, "cannot open dataset '" + name + "'");
    it = open_datasets_.emplace(name, std::move(opened)).first;
  }
  const Handle& ds = it->second;
  Handle fspace(H5Dget_space(ds.get()), H5Sclose);
  const std::vector<hsize_t> s = dims(start), c = dims(count);
  if (H5Sget_simple_extent_ndims(fspace.get()) != static_cast<int>(c.size()) ||
      H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, s.data(), nullptr, c.data(), nullptr) < 0 ||
      H5Sselect_valid(fspace.get()) <= 0) {
    return Status::Corruption("HDF5 file '" + path_ + "': dataset '" + name + "' does not hold the region asked for");
  }
  Handle mspace(H5Screate_simple(static_cast<int>(c.size()), c.data(), nullptr), H5Sclose);
  if (H5Dread(ds.get(), H5T_NATIVE_FLOAT, mspace.get(), fspace.get(), H5P_DEFAULT, out) < 0)
    return Status::Corruption("HDF5 file '" + path_ + "': cannot read dataset '" + name + "' (a damaged source file?)");
  return Status::Ok();
}

Status File::CreateVirtualF32(const std::string& name, const std::vector<int64_t>& shape,
                              const std::vector<Mapping>& mappings) {
  OM_RETURN_IF_ERROR(EnsureParents(name));
  const std::vector<hsize_t> d = dims(shape);
  Handle vspace(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  for (const Mapping& m : mappings) {
    const std::vector<hsize_t> s = dims(m.start), c = dims(m.count);
    Handle src(H5Screate_simple(static_cast<int>(c.size()), c.data(), nullptr), H5Sclose);
    if (H5Sselect_hyperslab(vspace.get(), H5S_SELECT_SET, s.data(), nullptr, c.data(), nullptr) < 0 ||
        H5Pset_virtual(dcpl.get(), vspace.get(), m.file.c_str(), m.dataset.c_str(), src.get()) < 0) {
      return fail(path_, "cannot map '" + m.file + ":" + m.dataset + "' into virtual dataset '" + name + "'");
    }
  }
  H5Sselect_all(vspace.get());
  Handle ds(H5Dcreate2(file_.get(), name.c_str(), H5T_IEEE_F32LE, vspace.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
            H5Dclose);
  if (!ds.valid()) return fail(path_, "cannot create virtual dataset '" + name + "'");
  return Status::Ok();
}

StatusOr<std::vector<File::Mapping>> File::VirtualMappings(const std::string& name) const {
  if (!Exists(name)) return Status::NotFound("HDF5 file '" + path_ + "' has no dataset '" + name + "'");
  // Reading the creation properties does not open the source files.
  Handle ds(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) return fail(path_, "cannot open dataset '" + name + "'");
  Handle dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
  if (!dcpl.valid() || H5Pget_layout(dcpl.get()) != H5D_VIRTUAL)
    return Status::InvalidArgument("HDF5 file '" + path_ + "': dataset '" + name + "' is not a virtual dataset");
  size_t n = 0;
  if (H5Pget_virtual_count(dcpl.get(), &n) < 0) return fail(path_, "cannot read the mappings of '" + name + "'");
  // H5Pget_virtual_{filename,dsetname} return the length without the terminator; call once to size.
  auto get_string = [&](ssize_t (*get)(hid_t, size_t, char*, size_t), size_t i, std::string* out) {
    const ssize_t len = get(dcpl.get(), i, nullptr, 0);
    if (len < 0) return false;
    std::vector<char> buf(static_cast<size_t>(len) + 1, '\0');
    if (get(dcpl.get(), i, buf.data(), buf.size()) < 0) return false;
    out->assign(buf.data(), static_cast<size_t>(len));
    return true;
  };
  std::vector<Mapping> out(n);
  for (size_t i = 0; i < n; ++i) {
    Mapping& m = out[i];
    Handle vspace(H5Pget_virtual_vspace(dcpl.get(), i), H5Sclose);
    const int rank = vspace.valid() ? H5Sget_simple_extent_ndims(vspace.get()) : -1;
    if (rank < 0 || !get_string(H5Pget_virtual_filename, i, &m.file) ||
        !get_string(H5Pget_virtual_dsetname, i, &m.dataset))
      return fail(path_, "cannot read mapping " + std::to_string(i) + " of '" + name + "'");
    std::vector<hsize_t> lo(static_cast<size_t>(rank)), hi(static_cast<size_t>(rank));
    if (rank > 0 && H5Sget_select_bounds(vspace.get(), lo.data(), hi.data()) < 0)
      return fail(path_, "cannot read the region of mapping " + std::to_string(i) + " of '" + name + "'");
    for (int d = 0; d < rank; ++d) {
      m.start.push_back(static_cast<int64_t>(lo[static_cast<size_t>(d)]));
      m.count.push_back(static_cast<int64_t>(hi[static_cast<size_t>(d)] - lo[static_cast<size_t>(d)] + 1));
    }
  }
  return out;
}

StatusOr<std::vector<std::string>> File::Members(const std::string& group) const {
  if (group != "/" && !Exists(group))
    return Status::NotFound("HDF5 file '" + path_ + "' has no group '" + group + "'");
  Handle g(H5Gopen2(file_.get(), group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) return fail(path_, "'" + group + "' is not a group");
  H5G_info_t info;
  if (H5Gget_info(g.get(), &info) < 0) return fail(path_, "cannot list group '" + group + "'");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) return fail(path_, "cannot list group '" + group + "'");
    std::vector<char> buf(static_cast<size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, buf.data(), buf.size(), H5P_DEFAULT);
    names.emplace_back(buf.data(), static_cast<size_t>(len));
  }
  return names;
}

Status File::SetStringAttribute(const std::string& name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), value.empty() ? 1 : value.size());
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(file_.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid() || H5Awrite(attr.get(), type.get(), value.empty() ? "" : value.data()) < 0)
    return fail(path_, "cannot write attribute '" + name + "'");
  return Status::Ok();
}

StatusOr<std::string> File::StringAttribute(const std::string& name) const {
  if (H5Aexists(file_.get(), name.c_str()) <= 0)
    return Status::Corruption("HDF5 file '" + path_ + "' has no attribute '" + name + "'");
  Handle attr(H5Aopen(file_.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  const size_t n = H5Tget_size(type.get());
  std::string value(n, '\0');
  if (H5Aread(attr.get(), type.get(), value.data()) < 0)
    return Status::Corruption("HDF5 file '" + path_ + "': cannot read attribute '" + name + "'");
  while (!value.empty() && value.back() == '\0') value.pop_back();
  return value;
}

Status File::SetIntAttribute(const std::string& name, int64_t value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(file_.get(), name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid() || H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) < 0)
    return fail(path_, "cannot write attribute '" + name + "'");
  return Status::Ok();
}

Status File::Close() {
  if (!file_.valid()) return Status::Ok();
  const hid_t id = file_.get();
  open_datasets_.clear();
  if (H5Fflush(id, H5F_SCOPE_GLOBAL) < 0) return fail(path_, "cannot flush (disk full?)");
  file_ = Handle();  // H5Fclose
  return Status::Ok();
}

}  // namespace om::h5
