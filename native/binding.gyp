# The optional "wasm + native oneDNN kernels" rung (docs/backends.md, the backend ladder). Built by
# scripts/build-native.mjs only when Debian's libdnnl-dev (oneDNN 2.x headers and libdnnl.so) is present.
#
# Two products in build/Release/ (src/core_api.h explains the split):
#   srgan_dnnl.node     the N-API front; links no oneDNN, dlopens the core after setting OMP_WAIT_POLICY
#   srgan_dnnl_core.so  the oneDNN convolutions and our small training ops (train_ops.cc) behind a C ABI;
#                       links libdnnl (and so libgomp)
{
  "targets": [
    {
      "target_name": "srgan_dnnl",
      "sources": ["src/addon.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "libraries": ["-ldl"]
    },
    {
      "target_name": "srgan_dnnl_core",
      "type": "shared_library",
      "product_prefix": "",
      "product_extension": "so",
      "sources": ["src/core.cc", "src/conv_plans.cc", "src/train_ops.cc", "src/work_pool.cc"],
      # dnnl.hpp reports errors as C++ exceptions (dnnl::error); core.cc turns them into messages.
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      # -fopenmp-simd: the `omp simd` hints of train_ops.cc (its threads are work_pool.cc's, not OpenMP's).
      # -fno-trapping-math: lets GCC turn `x > 0 ? a : a * s` into a vector select (with the default
      # it keeps a branch around the multiply, which may trap, and the loop stays scalar: 10× slower);
      # -fno-math-errno: sqrt without an errno check, so Adam's loop vectorizes. Results are unchanged.
      "cflags_cc": ["-std=c++17", "-O3", "-pthread", "-fopenmp-simd", "-fno-trapping-math", "-fno-math-errno",
                    "-fexceptions", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "ldflags": ["-pthread"],
      # libgomp: omp_set_num_threads for Debian's OpenMP build of oneDNN (already one of libdnnl's own deps).
      "libraries": ["-ldnnl", "-lgomp"]
    }
  ]
}
