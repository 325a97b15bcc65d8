# Sourced by the lent-GPU scripts (tools/gpu_session.sh, gpu_issue13.sh, gpu_replay.sh):
# how they find or build ppsim and ppsim-calibrate on a machine that has CUDA and PyTorch
# but no Debian packages and no registry. After `gpu_binaries`, $PPSIM and $CAL are the
# two binaries and $GPU_BACKEND/$GPU_DTYPE what the measurements run with.
#   BACKEND=cpu   a dry run of the whole flow on a machine without a GPU (fp32, CPU
#                 backend; tests/gpu_session_dry.sh); default cuda (bf16)
#   PPSIM=FILE CAL=FILE   use these two binaries as they are
#   ARCH=90       the CUDA architecture of a build made there

GPU_BACKEND=${BACKEND:-cuda}
if [ "$GPU_BACKEND" = cuda ]; then GPU_DTYPE=${DTYPE:-bf16}; else GPU_DTYPE=${DTYPE:-fp32}; fi
export PATH=/usr/local/cuda/bin:$PATH

# The folder of the nvidia-nccl wheel PyTorch brings (include/, lib/libnccl.so.2), if any.
gpu_nccl_root() {
  python3 -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null || true
}

# Library folders the binaries may need there: the CUDA toolkit's and the nvidia wheels'.
gpu_library_path() {
  local dirs=/usr/local/cuda/lib64:/usr/local/cuda/lib d
  for d in $(python3 -c 'import nvidia, os; [print(os.path.join(p, q, "lib")) for p in nvidia.__path__
             for q in os.listdir(p) if os.path.isdir(os.path.join(p, q, "lib"))]' 2>/dev/null); do
    dirs=$dirs:$d
  done
  echo "$dirs"
}

# .vendor/headers.tar.xz (tools/gpu_carry.sh) unpacked once; prints the folder, or nothing.
gpu_vendor_include() {
  local dir=/tmp/ppsim-vendor
  if [ -s .vendor/headers.tar.xz ] && [ ! -d "$dir/boost" ]; then
    mkdir -p "$dir" && { tar -C "$dir" -xJf .vendor/headers.tar.xz 2>/dev/null ||
      python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .vendor/headers.tar.xz "$dir"; }
  fi
  [ -d "$dir/boost" ] && echo "$dir"
}

# True when both binaries (ppsim, ppsim-calibrate) start here (every shared library found).
gpu_binaries_run() {
  [ -x "$1" ] && [ -x "$2" ] && "$1" --version >/dev/null 2>&1 && "$2" --version >/dev/null 2>&1
}

# Sets PPSIM and CAL: as given, else the carried .vendor/bin when it runs here, else
# a build of this checkout in $1 (the whole project, tests and benchmarks off, headers
# from the packages or .vendor). Logs to $2. Returns 1 when there is nothing that runs.
gpu_binaries() {
  local build=$1 log=$2 vendor nccl
  export LD_LIBRARY_PATH=$(gpu_library_path)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  if [ -n "${PPSIM:-}" ] && [ -n "${CAL:-}" ]; then
    :
  elif [ "$GPU_BACKEND" = cuda ] && gpu_binaries_run .vendor/bin/ppsim .vendor/bin/ppsim-calibrate; then
    echo "using the carried binaries (.vendor/bin, built at $(cat .vendor/bin/commit 2>/dev/null))"
    PPSIM=.vendor/bin/ppsim CAL=.vendor/bin/ppsim-calibrate
  else
    vendor=$(gpu_vendor_include); nccl=$(gpu_nccl_root)
    echo "building ppsim and ppsim-calibrate in $build (headers: ${vendor:-packages}, NCCL: ${nccl:-toolkit})"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPPSIM_BUILD_TESTS=OFF -DPPSIM_BUILD_BENCHMARKS=OFF \
      -DCMAKE_CUDA_ARCHITECTURES="${ARCH:-90}" -DPPSIM_CUDA_EMU=OFF ${vendor:+-DPPSIM_VENDOR_INCLUDE=$vendor} \
      ${nccl:+-DPPSIM_NCCL_ROOT=$nccl} >"$log" 2>&1 &&
      cmake --build "$build" -j"$(nproc)" --target ppsim ppsim-calibrate >>"$log" 2>&1 ||
      { grep -E "error|Error" "$log" | head -20; return 1; }
    PPSIM=$build/bin/ppsim CAL=$build/calibrate/ppsim-calibrate
  fi
  PPSIM=$(realpath "$PPSIM") CAL=$(realpath "$CAL")
  gpu_binaries_run "$PPSIM" "$CAL" || { echo "the binaries do not start: $PPSIM $CAL"; return 1; }
  echo "ppsim: $("$PPSIM" --version)   ppsim-calibrate: $("$CAL" --version)"
}
