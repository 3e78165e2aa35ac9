// Library-call checks for CUDA builds (STYLE.md §5): any failure is fatal and names the statement,
// rank and host. Include only from .cu files and CUDA-only .cc files.
#pragma once

#include <cuda_runtime_api.h>

#include "core/check.h"

#define OM_CUDA_CHECK(expr) OM_CHECK_GEN(expr, cudaSuccess, cudaGetErrorString)
// After every kernel launch: catches launch-configuration errors immediately.
#define OM_CUDA_CHECK_LAUNCH() OM_CUDA_CHECK(cudaGetLastError())
