# Real third-party captures (../shared/pcaps/real, not shipped with the
# repository) checked against the tshark oracle: every run must exit 0 with
# valid JSON, and >= 95 % of the SNI / DNS-query rows must raise an alert.
# The script exits 77 (skipped) when the capture set is absent.
if(TARGET kagami)
  find_program(KG_PYTHON3 python3)
  if(KG_PYTHON3)
    add_test(NAME test_real_captures
      COMMAND ${KG_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/real_oracle.py
              --kagami $<TARGET_FILE:kagami>
              --real-dir ${CMAKE_SOURCE_DIR}/../shared/pcaps/real)
    set_tests_properties(test_real_captures PROPERTIES
      LABELS real
      SKIP_RETURN_CODE 77
      TIMEOUT 300
      ENVIRONMENT "KG_SOURCE_DIR=${CMAKE_SOURCE_DIR};KG_BUILD_DIR=${CMAKE_BINARY_DIR}")
  endif()
endif()
