# The lent-GPU session script, dry-run on the CPU (tools/gpu_session.sh with BACKEND=cpu and
# the tiny model): the script that gets minutes of device time is tested where CI runs.
if(TARGET ppsim-calibrate AND TARGET ppsim_replay)
  add_test(NAME gpu_session_dry
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/gpu_session_dry.sh $<TARGET_FILE:ppsim> $<TARGET_FILE:ppsim-calibrate>
                   ${PROJECT_SOURCE_DIR}/views/timeline.schema.json ${PPSIM_SYSTEM_PYTHON}
                   ${CMAKE_CURRENT_BINARY_DIR}/gpu_session_dry)
  set_tests_properties(gpu_session_dry PROPERTIES TIMEOUT 600 RUN_SERIAL TRUE
                       ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
endif()
