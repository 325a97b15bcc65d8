# Emitted timelines are checked against views/timeline.schema.json (python3-jsonschema).
add_test(NAME timeline_schema
         COMMAND ${PPSIM_SYSTEM_PYTHON} ${PROJECT_SOURCE_DIR}/tools/check_timeline.py $<TARGET_FILE:ppsim>
                 ${PROJECT_SOURCE_DIR}/views/timeline.schema.json ${PROJECT_SOURCE_DIR}/configs/default.json
                 ${CMAKE_CURRENT_SOURCE_DIR}/data/links.json
                 ${PROJECT_SOURCE_DIR}/configs/experiments/gpt3-13b-3d-2x-dgx-h100.json)
set_tests_properties(timeline_schema PROPERTIES SKIP_RETURN_CODE 77)
