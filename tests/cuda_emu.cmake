# The CUDA kernels without a GPU (calibrate/cuda/emu): the emulator's own cases, then
# `check --backend cuda-emu`, every CUDA kernel and block against the CPU backend, in
# each storage dtype and with both fused attentions (chunked, the default, at its own
# chunk size and at 7 rows; and flash).
if(TARGET ppsim_calibrate_cuda_emu)
  add_executable(ppsim_cuda_emu_tests ${CMAKE_CURRENT_SOURCE_DIR}/cuda_emu/test_cuda_emu.cpp
                 ${CMAKE_CURRENT_SOURCE_DIR}/cuda_emu/test_cuda_emu_shapes.cpp)
  target_include_directories(ppsim_cuda_emu_tests PRIVATE ${PROJECT_SOURCE_DIR}/calibrate/cuda)
  target_include_directories(ppsim_cuda_emu_tests SYSTEM PRIVATE ${PPSIM_CUDA_INCLUDE})
  target_link_libraries(ppsim_cuda_emu_tests PRIVATE ppsim_calibrate_cuda_emu ppsim::calibrate Catch2::Catch2WithMain)
  target_compile_options(ppsim_cuda_emu_tests PRIVATE -Wno-unknown-pragmas)
  catch_discover_tests(ppsim_cuda_emu_tests TEST_PREFIX "cuda_emu: ")

  foreach(dtype fp32 bf16 fp16)
    add_test(NAME calibrate.cuda_emu.check_${dtype} COMMAND ppsim-calibrate check --backend cuda-emu --dtype ${dtype})
  endforeach()
  add_test(NAME calibrate.cuda_emu.check_bf16_chunk7 COMMAND ppsim-calibrate check --backend cuda-emu --dtype bf16)
  set_tests_properties(calibrate.cuda_emu.check_bf16_chunk7 PROPERTIES ENVIRONMENT "PPSIM_ATTENTION_CHUNK_ROWS=7")
  add_test(NAME calibrate.cuda_emu.check_bf16_flash COMMAND ppsim-calibrate check --backend cuda-emu --dtype bf16)
  set_tests_properties(calibrate.cuda_emu.check_bf16_flash PROPERTIES ENVIRONMENT "PPSIM_FUSED_ATTENTION=flash")
  # Threads resumed last to first: a race the first order survives shows in this one.
  add_test(NAME calibrate.cuda_emu.check_fp32_reverse COMMAND ppsim-calibrate check --backend cuda-emu --dtype fp32)
  set_tests_properties(calibrate.cuda_emu.check_fp32_reverse PROPERTIES ENVIRONMENT
                       "PPSIM_CUDA_EMU_ORDER=reverse;PPSIM_ATTENTION_CHUNK_ROWS=7")
  add_test(NAME calibrate.cuda_emu.check_fp32_reverse_flash COMMAND ppsim-calibrate check --backend cuda-emu --dtype fp32)
  set_tests_properties(calibrate.cuda_emu.check_fp32_reverse_flash PROPERTIES ENVIRONMENT
                       "PPSIM_CUDA_EMU_ORDER=reverse;PPSIM_FUSED_ATTENTION=flash")
endif()

# cuda-emu times nothing a GPU does: a measuring command refuses it (one error line,
# exit 2, no file).
if(TARGET ppsim_calibrate_cuda_emu)
  add_test(NAME calibrate.cuda_emu.refuses_measuring
           COMMAND sh -c "rm -f never_emu.json; $<TARGET_FILE:ppsim-calibrate> layers --backend cuda-emu --hidden 64 --heads 4 \
--seq 16 -o never_emu.json 2>err_emu.txt; rc=$?; test $rc -eq 2 && test $(wc -l < err_emu.txt) -eq 1 && \
grep -q '^ppsim-calibrate: error: --backend cuda-emu runs the CUDA kernels on a CPU emulator' err_emu.txt && \
test ! -e never_emu.json"
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endif()
