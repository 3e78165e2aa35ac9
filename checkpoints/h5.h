// Thin RAII over the serial HDF5 C API for checkpoints (checkpoints/FORMAT.md): files, datasets of f32,
// string and int64 attributes, virtual datasets and hyperslab reads. Every failure is a Status naming
// the file and object; the HDF5 library's own error stack printing is turned off.
// Thread safety: one thread (serial HDF5 is not thread-safe).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace om::h5 {

// An owned hid_t closed with its matching H5?close.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { Reset(); }
  void Reset();
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*close_)(hid_t) = nullptr;
};

class File {
 public:
  static StatusOr<File> Create(const std::string& path);    // truncates
  static StatusOr<File> OpenRead(const std::string& path);  // virtual datasets resolve relative to the file
  const std::string& path() const { return path_; }
  hid_t id() const { return file_.get(); }

  // An f32 dataset at `name` (intermediate groups created) holding `data` of `shape` (row-major).
  Status WriteF32(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  // Reads the hyperslab [start, start + count) of an f32 dataset (virtual or not) into `out`.
  Status ReadF32(const std::string& name, const std::vector<int64_t>& start, const std::vector<int64_t>& count,
                 float* out) const;
  StatusOr<std::vector<int64_t>> Shape(const std::string& name) const;
  bool Exists(const std::string& name) const;

  // A virtual f32 dataset of `shape` at `name`; each mapping puts a whole source dataset (of `count`
  // elements shaped like the region) at [start, start + count).
  struct Mapping {
    std::string file, dataset;
    std::vector<int64_t> start, count;
  };
  Status CreateVirtualF32(const std::string& name, const std::vector<int64_t>& shape,
                          const std::vector<Mapping>& mappings);
  // The mappings of the virtual dataset `name` as stored (source names as written, regions as the
  // bounding box of each mapping's selection). InvalidArgument when `name` is not a virtual dataset.
  StatusOr<std::vector<Mapping>> VirtualMappings(const std::string& name) const;
  // The names of the members of `group` ("/model"), in name order. NotFound when it does not exist.
  StatusOr<std::vector<std::string>> Members(const std::string& group) const;

  Status SetStringAttribute(const std::string& name, const std::string& value);  // on the root group
  StatusOr<std::string> StringAttribute(const std::string& name) const;
  Status SetIntAttribute(const std::string& name, int64_t value);

  Status Close();  // flushes; errors here mean the file is incomplete

 private:
  Status EnsureParents(const std::string& name);
  std::string path_;
  Handle file_;
  mutable std::map<std::string, Handle> open_datasets_;  // ReadF32's handles; destroyed before file_
};

}  // namespace om::h5
