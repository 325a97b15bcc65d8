# With PPSIM_TSAN=ON (tools/test.sh, build-tsan/): ppsim_sweep_tests, the sweep's own test
# files only, so the ThreadSanitizer build compiles two test files instead of all of them;
# ctest runs its "[sweep]" cases (the sweep runs points on threads).
if(PPSIM_TSAN)
  add_executable(ppsim_sweep_tests test_sweep.cpp test_sweep_cli.cpp)
  target_link_libraries(ppsim_sweep_tests PRIVATE ppsim::core Catch2::Catch2WithMain)
  target_compile_definitions(ppsim_sweep_tests PRIVATE
    PPSIM_BIN="$<TARGET_FILE:ppsim>"
    PPSIM_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    PPSIM_TEST_DATA="${CMAKE_CURRENT_SOURCE_DIR}/data"
    PPSIM_SCHEMA="${PROJECT_SOURCE_DIR}/views/timeline.schema.json")
  add_dependencies(ppsim_sweep_tests ppsim)
  add_test(NAME tsan_sweep COMMAND ppsim_sweep_tests "[sweep]")
  set_tests_properties(tsan_sweep PROPERTIES
    ENVIRONMENT "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1" TIMEOUT 900)
  # The replay runs one thread per device (issue 14): its CPU cases under TSan too.
  if(TARGET ppsim::replay AND TARGET ppsim-calibrate)
    add_executable(ppsim_replay_tests test_replay.cpp)
    target_link_libraries(ppsim_replay_tests PRIVATE ppsim::core ppsim::replay Catch2::Catch2WithMain)
    target_compile_definitions(ppsim_replay_tests PRIVATE
      PPSIM_HAVE_REPLAY=1
      PPSIM_BIN="$<TARGET_FILE:ppsim>"
      PPSIM_CALIBRATE_BIN="$<TARGET_FILE:ppsim-calibrate>"
      PPSIM_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
      PPSIM_SCHEMA="${PROJECT_SOURCE_DIR}/views/timeline.schema.json")
    add_dependencies(ppsim_replay_tests ppsim ppsim-calibrate)
    add_test(NAME tsan_replay COMMAND ppsim_replay_tests "[replay]")
    set_tests_properties(tsan_replay PROPERTIES
      ENVIRONMENT "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1" TIMEOUT 900)
  endif()
endif()
