#!/usr/bin/env bash
# Prepares, on this machine, what a lent GPU machine lacks and cannot fetch (it reaches no
# package registry), in .vendor/ (ignored by git; travels when a device run names it in
# `carry`):
#   .vendor/headers.tar.xz  the header-only packages ppsim builds with (boost/, nlohmann/,
#                           CLI/ of /usr/include, about 9 MB), for a build there
#                           (cmake/PpsimVendor.cmake, -DPPSIM_VENDOR_INCLUDE);
#   .vendor/bin/            ppsim and ppsim-calibrate built here for the GPU machine (CUDA
#                           arch $ARCH, no MPI and no BLAS: neither library is there), so
#                           the device time goes to measuring, not compiling. The GPU
#                           scripts use them when they load there, else build from source.
# Then, from the session:  run(command="OUT=$OUT tools/gpu_session.sh", carry=[".vendor"])
#   tools/gpu_carry.sh        [ARCH=90 NO_BIN=1: headers only]
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${ARCH:-90}
for d in boost nlohmann CLI; do
  [ -d "/usr/include/$d" ] || tools/setup.sh
done
mkdir -p .vendor
if [ ! -s .vendor/headers.tar.xz ] || [ -n "$(find /usr/include/boost /usr/include/nlohmann /usr/include/CLI \
     -newer .vendor/headers.tar.xz -print -quit)" ]; then
  echo "packing boost/, nlohmann/, CLI/ headers (about 40 s on 2 cores)" >&2
  tar -C /usr/include -cf - boost nlohmann CLI | xz -T0 -6 >".vendor/headers.tar.xz.tmp.$$"
  mv ".vendor/headers.tar.xz.tmp.$$" .vendor/headers.tar.xz
fi
if [ "${NO_BIN:-0}" != 1 ]; then
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  launcher=(); command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DPPSIM_BUILD_TESTS=OFF -DPPSIM_BUILD_BENCHMARKS=OFF \
    -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON -DCMAKE_DISABLE_FIND_PACKAGE_BLAS=ON -DPPSIM_CUDA_EMU=OFF \
    "${launcher[@]}" >/dev/null
  cmake --build build-gpu -j"$(nproc)" --target ppsim ppsim-calibrate
  mkdir -p .vendor/bin
  cp build-gpu/bin/ppsim build-gpu/calibrate/ppsim-calibrate .vendor/bin/
  strip .vendor/bin/ppsim .vendor/bin/ppsim-calibrate
  git describe --always --dirty >.vendor/bin/commit
fi
du -sh .vendor/*
