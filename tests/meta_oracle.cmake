# Metadata events on the real third-party captures (../shared/pcaps/real,
# not shipped with the repository), checked against the tshark oracle:
# kagami runs with events.dns/tls/http/quic/flow on, and meta_oracle.py
# requires its dns/tls/http/quic events to hold the oracle's SNI, DNS name,
# HTTP host and URI, JA3 and server-certificate SHA1 on the same flow
# (>= 99 %, 98 % for JA3 and certificates) and every community_id row on an
# event of that flow (100 %), valid JSON and unique event_ids. Rows that
# cannot match by construction are counted apart (see the script's
# docstring). The script exits 77 (skipped) when the capture set is absent.
if(TARGET kagami)
  find_program(KG_PYTHON3 python3)
  if(KG_PYTHON3)
    add_test(NAME test_meta_oracle
      COMMAND ${KG_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/meta_oracle.py
              --kagami $<TARGET_FILE:kagami>
              --real-dir ${CMAKE_SOURCE_DIR}/../shared/pcaps/real)
    set_tests_properties(test_meta_oracle PROPERTIES
      LABELS real
      SKIP_RETURN_CODE 77
      TIMEOUT 300
      ENVIRONMENT "KG_SOURCE_DIR=${CMAKE_SOURCE_DIR};KG_BUILD_DIR=${CMAKE_BINARY_DIR}")
  endif()
endif()
