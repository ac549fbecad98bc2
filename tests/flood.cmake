# Flood test (label `pcap`): kagami reads a generated flood (SYNs from random
# sources, IP fragments that never complete, UDP and half TLS handshakes from
# random sources; bench/gen_traffic --flood mixed, piped in) with small caps
# (--workers 2, flow.max_flows=4096, defrag.max_mb=4). It must exit 0, evict
# flows and fragments, keep its peak RSS under a bound derived from the caps,
# and not grow when the flood is ten times longer (1 and 10 million packets;
# tests/scripts/flood_test.py explains the bound). About 25 s.
#   ctest -R test_flood --output-on-failure
# Sanitizer builds change what memory means (shadow memory, quarantine) and
# run ten times slower: they run a shorter flood and report memory without
# checking it. Debug builds run half a million and five million packets.
if(TARGET kagami AND TARGET gen_traffic)
  find_program(KG_PYTHON3 python3)
  if(KG_PYTHON3)
    if(KG_SANITIZE)
      set(KG_FLOOD_ARGS --packets 200000 --scale 0 --no-rss-check)
    elseif(CMAKE_BUILD_TYPE STREQUAL "Debug")
      # -O0 is about three times slower; the caps are reached after ~20,000
      # packets either way.
      set(KG_FLOOD_ARGS --packets 500000)
    else()
      set(KG_FLOOD_ARGS)
    endif()
    add_test(NAME test_flood
      COMMAND ${KG_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/flood_test.py
              --kagami $<TARGET_FILE:kagami>
              --gen-traffic $<TARGET_FILE:gen_traffic>
              --source-dir ${CMAKE_SOURCE_DIR}
              ${KG_FLOOD_ARGS})
    set_tests_properties(test_flood PROPERTIES
      LABELS pcap
      SKIP_RETURN_CODE 77
      TIMEOUT 300
      ENVIRONMENT "KG_SOURCE_DIR=${CMAKE_SOURCE_DIR};KG_BUILD_DIR=${CMAKE_BINARY_DIR}")
  endif()
endif()
