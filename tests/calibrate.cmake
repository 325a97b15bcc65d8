# ppsim-calibrate ctest entries beyond the Catch2 cases: the CLI end to end, the CUDA
# backend (skipped without a GPU) and MPI send/recv between two local ranks.
if(TARGET ppsim-calibrate)
  target_compile_definitions(ppsim_tests PRIVATE PPSIM_CALIBRATE_BIN="$<TARGET_FILE:ppsim-calibrate>")
  add_dependencies(ppsim_tests ppsim-calibrate)

  add_test(NAME calibrate.cli.missing_shape
           COMMAND ppsim-calibrate layers --backend cpu --dtype fp32 -o ${CMAKE_CURRENT_BINARY_DIR}/never.json)
  set_tests_properties(calibrate.cli.missing_shape PROPERTIES WILL_FAIL ON)
  # The CPU backend needs no --dtype (it stores fp32; issue 13 item 7): a tiny block measures
  # and the profile it writes validates, naming fp32.
  add_test(NAME calibrate.cli.cpu_default_dtype
           COMMAND sh -c "$<TARGET_FILE:ppsim-calibrate> layers --backend cpu --hidden 64 --heads 4 --seq 16 \
--blocks-only --warmup 1 --min-iters 2 --max-iters 2 -o cpu_default.json >/dev/null && \
$<TARGET_FILE:ppsim-calibrate> validate cpu_default.json >/dev/null && grep -q '\"dtype\": \"fp32\"' cpu_default.json"
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  # import (issue 13 item 4): a synthetic torch.profiler trace becomes a profile that
  # validates and that ppsim runs; a CPU-only trace is one error line, exit 2, no file.
  add_test(NAME calibrate.cli.import_trace
           COMMAND sh -c "$<TARGET_FILE:ppsim-calibrate> import ${CMAKE_CURRENT_SOURCE_DIR}/data/traces/synthetic_block.json \
--hidden 256 --heads 4 --seq 128 -o imported.json 2>/dev/null && $<TARGET_FILE:ppsim-calibrate> validate imported.json && \
grep -q '\"backend\": \"torch-trace\"' imported.json"
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  add_test(NAME calibrate.cli.import_cpu_only_trace
           COMMAND sh -c "rm -f cpu_only.json; $<TARGET_FILE:ppsim-calibrate> import ${CMAKE_CURRENT_SOURCE_DIR}/data/traces/cpu_only.json \
--hidden 256 --heads 4 --seq 128 -o cpu_only.json 2>err.txt; rc=$?; test $rc -eq 2 && test $(wc -l < err.txt) -eq 1 && \
grep -q '^ppsim-calibrate: error: .*cpu_only.json: traceEvents: no GPU activity' err.txt && test ! -e cpu_only.json"
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  # --kernels fused (issue 13 item 1): the fused block's profile validates, its key and
  # shape say fused, and the measured activation bytes equal the formula; an unknown
  # kernels name is one error line, exit 2, no file.
  add_test(NAME calibrate.cli.kernels_fused
           COMMAND sh -c "rm -f fused.json; $<TARGET_FILE:ppsim-calibrate> layers --backend cpu --hidden 64 --heads 4 --seq 40 \
--blocks-only --kernels fused --warmup 1 --min-iters 2 --max-iters 2 -o fused.json 2>/dev/null && \
$<TARGET_FILE:ppsim-calibrate> validate fused.json >/dev/null && grep -q 'ffn=256 fused b=1' fused.json && \
grep -q '\"kernels\": \"fused\"' fused.json && grep -q '\"activation_bytes\": 124160' fused.json && \
grep -q '\"expected_activation_bytes\": 124160' fused.json"
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  add_test(NAME calibrate.cli.kernels_unknown
           COMMAND sh -c "rm -f never_k.json; $<TARGET_FILE:ppsim-calibrate> layers --backend cpu --hidden 64 --heads 4 --seq 16 \
--kernels flash -o never_k.json 2>err_k.txt; rc=$?; test $rc -eq 2 && test $(wc -l < err_k.txt) -eq 1 && \
grep -q '^ppsim-calibrate: error: --kernels: flash not in {plain,fused}' err_k.txt && test ! -e never_k.json"
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  add_test(NAME calibrate.cli.version COMMAND ppsim-calibrate --version)
  set_tests_properties(calibrate.cli.version PROPERTIES PASS_REGULAR_EXPRESSION "^ppsim-calibrate ${PROJECT_VERSION}")
  add_test(NAME calibrate.cli.validate_shipped_profile
           COMMAND ppsim-calibrate validate ${PROJECT_SOURCE_DIR}/configs/profiles/h200.json)
  add_test(NAME calibrate.cli.validate_shipped_profile_h100
           COMMAND ppsim-calibrate validate ${PROJECT_SOURCE_DIR}/configs/profiles/h100.json)

  get_property(_cal_cuda GLOBAL PROPERTY PPSIM_CALIBRATE_HAVE_CUDA)
  if(_cal_cuda)
    # Exit 2 = no GPU / driver here: reported as skipped, not passed.
    add_test(NAME calibrate.cuda.kernel_checks COMMAND ppsim-calibrate check --backend cuda --dtype bf16)
    set_tests_properties(calibrate.cuda.kernel_checks PROPERTIES SKIP_RETURN_CODE 2)
  endif()

  get_property(_cal_mpi GLOBAL PROPERTY PPSIM_CALIBRATE_HAVE_MPI)
  find_program(PPSIM_MPIRUN NAMES mpirun mpiexec)
  if(_cal_mpi AND PPSIM_MPIRUN)
    add_test(NAME calibrate.mpi.sendrecv
             COMMAND ${PPSIM_MPIRUN} --allow-run-as-root --oversubscribe -np 2 $<TARGET_FILE:ppsim-calibrate>
                     p2p --transport mpi --min-size 4KiB --max-size 1MiB --warmup 2 --min-iters 5 --target-ms 5
                     -o ${CMAKE_CURRENT_BINARY_DIR}/calibrate_mpi_profile.json)
    # OpenMPI's own start-up allocations are never freed; LeakSanitizer would report
    # them as ours in the sanitizer build. Address and UB checks stay on.
    set_tests_properties(calibrate.mpi.sendrecv PROPERTIES TIMEOUT 60
                         ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
    # collectives (issue 13 item 5) through MPI on host memory at two local ranks: every
    # op x size present, times > 0, busbw = algbw x nccl-tests' factor exactly.
    find_program(PPSIM_PYTHON3 python3)
    if(PPSIM_PYTHON3)
      add_test(NAME calibrate.mpi.collectives
               COMMAND sh -c "rm -f mpi_collectives.json mpi_collectives_profile.json && ${PPSIM_MPIRUN} --allow-run-as-root --oversubscribe -np 2 \
$<TARGET_FILE:ppsim-calibrate> collectives --transport mpi --ops all_reduce,all_gather,reduce_scatter,broadcast \
--min-bytes 4KiB --max-bytes 256KiB --iters 5 --warmup 2 -o mpi_collectives.json --profile mpi_collectives_profile.json \
>/dev/null 2>&1 && ${PPSIM_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/collectives_check.py mpi_collectives.json \
all_reduce,all_gather,reduce_scatter,broadcast 4096,8192,16384,32768,65536,131072,262144 && \
$<TARGET_FILE:ppsim-calibrate> validate mpi_collectives_profile.json | grep -q 'link mpi_all_reduce_ring_n2: 7 points'"
               WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
      set_tests_properties(calibrate.mpi.collectives PROPERTIES TIMEOUT 120
                           ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
    endif()
    # Bad input to collectives and p2p: one error line, exit 2, no file (the cases that
    # start MPI run it as a singleton; the messages are the MPI build's).
    file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/collectives_errors)
    add_test(NAME calibrate.cli.collectives_errors
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/collectives_errors.sh $<TARGET_FILE:ppsim-calibrate>
             WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/collectives_errors)
    set_tests_properties(calibrate.cli.collectives_errors PROPERTIES TIMEOUT 120
                         ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
  endif()
  # --transport nccl without a GPU (or without NCCL in the build): one error line, exit 2,
  # before MPI starts. On a GPU machine the one-rank run measures (exit 0).
  foreach(_nccl_cmd "collectives --transport nccl --max-bytes 8KiB --iters 2" "p2p --transport nccl --max-size 8KiB")
    string(REGEX MATCH "^[a-z0-9]+" _nccl_name "${_nccl_cmd}")
    add_test(NAME calibrate.cli.${_nccl_name}_nccl_without_gpu
             COMMAND sh -c "rm -f nccl_${_nccl_name}.json; $<TARGET_FILE:ppsim-calibrate> ${_nccl_cmd} -o nccl_${_nccl_name}.json \
>/dev/null 2>nccl_${_nccl_name}.err; rc=$?; test $rc -eq 0 && exit 0; test $rc -eq 2 && \
test $(wc -l < nccl_${_nccl_name}.err) -eq 1 && test ! -e nccl_${_nccl_name}.json && \
grep -Eq '^ppsim-calibrate: error: .*(needs an NVIDIA GPU|no NCCL|run under mpirun)' nccl_${_nccl_name}.err"
             WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  endforeach()
endif()
