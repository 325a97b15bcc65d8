# install_layout: `cmake --install` into a temporary prefix; the installed ppsim and
# ppsim-calibrate run away from the source tree and must never read from it
# (tests/install_check.sh). Needs bash; --svg is checked where node is on PATH.
find_program(PPSIM_BASH bash)
if(PPSIM_BASH)
  add_test(NAME install_layout
           COMMAND ${PPSIM_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/install_check.sh ${CMAKE_COMMAND}
                   ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
  set_tests_properties(install_layout PROPERTIES TIMEOUT 300)
endif()
