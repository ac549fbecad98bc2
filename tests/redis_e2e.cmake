# End-to-end Redis sink test: a throwaway redis-server on a free loopback
# port; kagami's Redis list must hold exactly the alerts of its file sink
# (plain, with a password in the URL, and with Redis starting late).
# The script exits 77 (skipped) when redis-server / redis-cli are missing.
if(TARGET kagami)
  find_program(KG_PYTHON3 python3)
  if(KG_PYTHON3)
    add_test(NAME test_redis_e2e
      COMMAND ${KG_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/redis_e2e.py
              --kagami $<TARGET_FILE:kagami>
              --source-dir ${CMAKE_SOURCE_DIR})
    set_tests_properties(test_redis_e2e PROPERTIES
      LABELS redis
      SKIP_RETURN_CODE 77
      TIMEOUT 90
      ENVIRONMENT "KG_SOURCE_DIR=${CMAKE_SOURCE_DIR};KG_BUILD_DIR=${CMAKE_BINARY_DIR}")
  endif()
endif()
