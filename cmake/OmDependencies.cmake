# Finds every external dependency once and exposes it as an imported target.
# Debian package names are listed in scripts/setup.sh; keep the two in agreement.

if(OM_WITH_CUDA)
  # H100/H200 unless the user chose: set before enable_language, which would otherwise cache the
  # compiler's default (sm_52 or sm_75, depending on the nvcc version).
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  enable_language(CUDA)
  # CMake 3.25 knows no CUDA20 dialect for nvcc; tell it the flag (ENVIRONMENT.md).
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "52")
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  find_package(CUDAToolkit REQUIRED)
  # NCCL and cuDNN ship inside the toolkit tree here; make imported targets for them.
  find_path(OM_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
  find_library(OM_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} REQUIRED)
  find_path(OM_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
  find_library(OM_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} REQUIRED)
  add_library(om::nccl UNKNOWN IMPORTED)
  set_target_properties(om::nccl PROPERTIES IMPORTED_LOCATION ${OM_NCCL_LIBRARY}
                        INTERFACE_INCLUDE_DIRECTORIES ${OM_NCCL_INCLUDE_DIR})
  add_library(om::cudnn UNKNOWN IMPORTED)
  set_target_properties(om::cudnn PROPERTIES IMPORTED_LOCATION ${OM_CUDNN_LIBRARY}
                        INTERFACE_INCLUDE_DIRECTORIES ${OM_CUDNN_INCLUDE_DIR})
endif()

find_package(OpenMP REQUIRED COMPONENTS CXX)

set(MPI_CXX_SKIP_MPICXX ON)
find_package(MPI REQUIRED COMPONENTS C CXX)

set(HDF5_PREFER_PARALLEL OFF)
find_package(HDF5 REQUIRED COMPONENTS C)
if(HDF5_IS_PARALLEL)
  message(FATAL_ERROR "Found a parallel HDF5 (${HDF5_C_LIBRARIES}); ortho-megatron needs serial HDF5 "
                      "(Debian: libhdf5-dev). Point HDF5_ROOT at a serial build.")
endif()

find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(nlohmann_json 3 REQUIRED)
find_package(ZLIB REQUIRED)  # CRC-32 of checkpoint files

find_package(PkgConfig REQUIRED)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

# oneDNN's sgemm is the CPU GEMM (bench/results has the measurement that chose it).
find_package(dnnl REQUIRED)

if(OM_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(OM_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()
