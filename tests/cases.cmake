# End-to-end pcap cases: one ctest per tests/cases/<name>/case.json. Each runs
# kagami on the case's capture (pcaps/, made by scripts/make_pcaps.py) with
# its indicators and compares the alerts with expected.jsonl, the
# metadata events with expected_events.jsonl when the case turns them on,
# and, for the encapsulation cases ("same_as_plain" in case.json), the alerts
# of the capture's plain form, which must be the same (tests/scripts/
# run_case.py, standard-library Python 3).
#   ctest -L pcap --output-on-failure
if(TARGET kagami)
  find_program(KG_PYTHON3 python3)
  if(KG_PYTHON3)
    file(GLOB KG_CASE_FILES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cases/*/case.json)
    list(SORT KG_CASE_FILES)
    foreach(case_json ${KG_CASE_FILES})
      get_filename_component(case_dir ${case_json} DIRECTORY)
      get_filename_component(case_name ${case_dir} NAME)
      add_test(NAME pcap_${case_name}
        COMMAND ${KG_PYTHON3} ${CMAKE_SOURCE_DIR}/tests/scripts/run_case.py
                --kagami $<TARGET_FILE:kagami>
                --case ${case_dir}
                --source-dir ${CMAKE_SOURCE_DIR})
      set_tests_properties(pcap_${case_name} PROPERTIES
        LABELS pcap
        TIMEOUT 300
        ENVIRONMENT "KG_SOURCE_DIR=${CMAKE_SOURCE_DIR};KG_BUILD_DIR=${CMAKE_BINARY_DIR}")
    endforeach()
  else()
    message(WARNING "python3 not found: the pcap cases (tests/cases) are not registered")
  endif()
endif()

# The committed captures and cases are what the generator makes (it is
# deterministic). Needs Debian's python3 with scapy; skipped without it.
if(EXISTS /usr/bin/python3)
  add_test(NAME pcap_generator_current
    COMMAND sh -c "/usr/bin/python3 -c 'import scapy' 2>/dev/null || { echo 'scapy not installed: skipped'; exit 77; }; exec /usr/bin/python3 \"$0\" --check" ${CMAKE_SOURCE_DIR}/scripts/make_pcaps.py)
  set_tests_properties(pcap_generator_current PROPERTIES LABELS pcap TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()
