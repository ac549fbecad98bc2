# Redis sink against throwaway redis-server processes (label `redis`).
# The test starts and stops its own servers on free ports in a temporary
# directory; it exits 77 (skipped) when redis-server cannot be run.
if(TARGET kg_export)
  add_executable(test_sink_redis ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sink_redis.c)
  target_link_libraries(test_sink_redis PRIVATE kg_export PkgConfig::JANSSON)
  add_test(NAME test_sink_redis COMMAND test_sink_redis)
  set_tests_properties(test_sink_redis PROPERTIES LABELS redis SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
