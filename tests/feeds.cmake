# Indicators beyond plain files (label `redis`: it starts a redis-server):
# Ed25519-signed feeds (accepted, tampered, untrusted, unsigned), the Redis
# feed source, and GSOC tuning end to end (tests/scripts/feeds_e2e.py).
if(TARGET kagami)
  find_program(KG_PYTHON3 python3)
  if(KG_PYTHON3)
    add_test(NAME test_feeds_e2e
      COMMAND ${KG_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/feeds_e2e.py
              --kagami $<TARGET_FILE:kagami> --source-dir ${CMAKE_SOURCE_DIR})
    set_tests_properties(test_feeds_e2e PROPERTIES LABELS redis SKIP_RETURN_CODE 77 TIMEOUT 120)
  endif()
endif()
