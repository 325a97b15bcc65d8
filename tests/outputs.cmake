# output_signals: SIGTERM/SIGINT during a long write leave no output and no temporary
# (tests/output_signals.sh).
find_program(PPSIM_BASH bash)
if(PPSIM_BASH)
  add_test(NAME output_signals
           COMMAND ${PPSIM_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/output_signals.sh $<TARGET_FILE:ppsim> ${PROJECT_SOURCE_DIR})
  set_tests_properties(output_signals PROPERTIES TIMEOUT 180)
endif()

# `--version` names the project's one version (CMakeLists.txt project()).
add_test(NAME cli.version COMMAND ppsim --version)
set_tests_properties(cli.version PROPERTIES PASS_REGULAR_EXPRESSION "^ppsim ${PROJECT_VERSION}")
