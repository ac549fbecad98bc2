# Live capture (label `live`): kagami on one end of a veth pair, captures
# replayed into the other end (in a network namespace) by tcpreplay; the
# alerts must equal those of `kagami -r` on the same file, with no kernel
# drops (tests/scripts/live_test.py). Needs root, iproute2 and tcpreplay;
# the script exits 77 (skipped) without them.
#   ctest -L live --output-on-failure
if(TARGET kagami)
  find_program(KG_PYTHON3 python3)
  if(KG_PYTHON3)
    add_test(NAME test_live_capture
      COMMAND ${KG_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/live_test.py
              --kagami $<TARGET_FILE:kagami>
              --source-dir ${CMAKE_SOURCE_DIR})
    set_tests_properties(test_live_capture PROPERTIES
      LABELS live
      SKIP_RETURN_CODE 77
      TIMEOUT 120
      ENVIRONMENT "KG_SOURCE_DIR=${CMAKE_SOURCE_DIR};KG_BUILD_DIR=${CMAKE_BINARY_DIR}")
  endif()
endif()

# tests/unit/test_capture.c runs its live part (netns + veth, fanout) only
# as root; otherwise it exits 77 after the file tests pass.
if(TEST test_capture)
  set_tests_properties(test_capture PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()

# Indicator hot reload under live capture (label `live`): feed replaced by
# rename (inotify) and SIGHUP reloads while tcpreplay sends, with no kernel
# drop; a feed that cannot be read keeps the previous set and emits an
# `error` event (tests/scripts/reload_test.py).
if(TARGET kagami AND KG_PYTHON3)
  add_test(NAME test_reload_live
    COMMAND ${KG_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/reload_test.py
            --kagami $<TARGET_FILE:kagami>
            --source-dir ${CMAKE_SOURCE_DIR})
  set_tests_properties(test_reload_live PROPERTIES
    LABELS live
    SKIP_RETURN_CODE 77
    TIMEOUT 120)
endif()
