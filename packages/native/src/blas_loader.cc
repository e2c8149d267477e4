// The system BLAS, opened at run time with dlopen: no header or link-time dependency, so the addon builds and
// loads where there is none, and a BLAS installed later is used without a rebuild. Searched in this order, the
// first with cblas_sgemm wins:
//   KOTUNE_BLAS          a library path the user names (MKL, BLIS, a build of their own)
//   OpenBLAS             libopenblas.so.0 (Debian: libopenblas0-pthread), Homebrew's libopenblas.dylib
//   Apple Accelerate     the system framework on every Mac
//   libblas.so.3         whatever the system's alternative points to (the reference BLAS, ATLAS, BLIS...)
// Only OpenBLAS is measured faster than the built-in kernel (`pnpm bench`), so only it becomes the default
// (KOTUNE_NATIVE=auto); the others are there for KOTUNE_NATIVE=blas.
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "kernels.h"

namespace kotune {

namespace {

using GetStringFn = char* (*)();

struct Candidate {
  const char* path;
  const char* vendor;  // "" when the library says (openblas_get_config) or cannot be told from its name
};

const Candidate kCandidates[] = {
#if defined(__APPLE__)
    {"libopenblas.dylib", "OpenBLAS"},
    {"/opt/homebrew/opt/openblas/lib/libopenblas.dylib", "OpenBLAS"},
    {"/usr/local/opt/openblas/lib/libopenblas.dylib", "OpenBLAS"},
    {"/System/Library/Frameworks/Accelerate.framework/Accelerate", "Accelerate"},
#else
    {"libopenblas.so.0", "OpenBLAS"},
    {"libopenblas.so", "OpenBLAS"},
    {"libopenblasp.so.0", "OpenBLAS"},
    {"libblas.so.3", ""},
#endif
};

// Fills `openblas` from the library at `path` if it has cblas_sgemm; false (and the library closed) if not.
bool TryOpen(const char* path, const char* vendor) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!handle) return false;
  auto sgemm = reinterpret_cast<SgemmFn>(dlsym(handle, "cblas_sgemm"));
  if (!sgemm) {
    dlclose(handle);
    return false;
  }
  openblas.sgemm = sgemm;
  openblas.get_num_threads = reinterpret_cast<GetIntFn>(dlsym(handle, "openblas_get_num_threads"));
  auto get_config = reinterpret_cast<GetStringFn>(dlsym(handle, "openblas_get_config"));
  openblas.library = path;
  openblas.config = get_config ? get_config() : "";
  // libblas.so.3 may be OpenBLAS under the system's alternative: its own functions tell.
  openblas.vendor = get_config ? "OpenBLAS" : *vendor != '\0' ? vendor : "BLAS";
  return true;
}

}  // namespace

OpenBlas openblas;

void OpenOpenBlas() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* named = std::getenv("KOTUNE_BLAS");
    if (named && *named != '\0' && TryOpen(named, "")) return;
    for (const Candidate& c : kCandidates) {
      if (TryOpen(c.path, c.vendor)) return;
    }
  });
}

}  // namespace kotune
