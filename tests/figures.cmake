# Figure test: every emitted Vega-Lite spec compiles with vega-lite and renders to SVG
# (tools/check_specs.mjs). Skipped (exit 77) without Node or the npm packages.
find_program(PPSIM_NODE node)
if(PPSIM_NODE)
  add_test(NAME vega_render
           COMMAND ${PPSIM_NODE} ${PROJECT_SOURCE_DIR}/tools/check_specs.mjs $<TARGET_FILE:ppsim>
                   ${CMAKE_CURRENT_BINARY_DIR}/vega_render)
else()
  add_test(NAME vega_render
           COMMAND sh -c "echo 'SKIP: node not found; install Node.js and run tools/setup.sh'; exit 77")
endif()
set_tests_properties(vega_render PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                     ENVIRONMENT "PPSIM_DATA_DIR=${PROJECT_SOURCE_DIR}")

# Browser test of the interactive page (ppsim run --html): headless Chromium opens it from
# file://, the test checks one box per op, no error logged, and a non-blank screenshot
# (tools/check_html.py). Skipped (exit 77) without python3, Chromium or the npm packages.
find_program(PPSIM_PYTHON3 python3)
if(PPSIM_PYTHON3)
  add_test(NAME html_browser
           COMMAND ${PPSIM_PYTHON3} ${PROJECT_SOURCE_DIR}/tools/check_html.py $<TARGET_FILE:ppsim>
                   ${CMAKE_CURRENT_BINARY_DIR}/html_browser)
else()
  add_test(NAME html_browser
           COMMAND sh -c "echo 'SKIP: python3 not found; run tools/setup.sh'; exit 77")
endif()
set_tests_properties(html_browser PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                     ENVIRONMENT "PPSIM_DATA_DIR=${PROJECT_SOURCE_DIR}")
