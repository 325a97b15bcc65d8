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
  # Fused kernels are GPT's only: a Llama model with --kernels fused is one line, exit 2.
  add_test(NAME calibrate.cli.kernels_fused_llama
           COMMAND sh -c "rm -f never_kl.json; $<TARGET_FILE:ppsim-calibrate> layers --backend cpu --model ${PROJECT_SOURCE_DIR}/configs/models/llama2-7b.json --kernels fused -o never_kl.json 2>err_kl.txt; rc=$?; test $rc -eq 2 && test $(wc -l < err_kl.txt) -eq 1 && grep -q '^ppsim-calibrate: error: --kernels fused: fused kernels exist for the gpt block only (this model.s block is llama)' err_kl.txt && test ! -e never_kl.json"
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
  endif()
endif()
