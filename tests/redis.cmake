# The Redis sink and its spool (export/sink_redis.c, sink_spool.c, redis_conn.c).
#
# test_spool          label unit: the spool, a Redis sink without a server,
#                     the file sink's rotation; no server needed.
# test_sink_redis     label redis: against throwaway redis-server processes
#                     (plain, TLS, ACL users, Sentinel) that the test starts
#                     on free loopback ports in a temporary directory; exits
#                     77 (skipped) when redis-server cannot be run.
# test_redis_fault    label redis: tests/scripts/redis_fault.py, 100,000+
#                     events through a spooled sink while the master is
#                     killed 5 times and failed over once through Sentinel.
# bench_redis         the driver of the fault test and of the benchmark
#                     (bench/bench_redis.sh, docs/PERFORMANCE.md).
if(TARGET kg_export)
  add_executable(test_spool ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_spool.c)
  target_link_libraries(test_spool PRIVATE kg_export)
  add_test(NAME test_spool COMMAND test_spool)
  set_tests_properties(test_spool PROPERTIES LABELS unit TIMEOUT 120)

  add_executable(test_sink_redis ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sink_redis.c)
  target_link_libraries(test_sink_redis PRIVATE kg_export PkgConfig::JANSSON)
  add_test(NAME test_sink_redis COMMAND test_sink_redis)
  set_tests_properties(test_sink_redis PROPERTIES LABELS redis SKIP_RETURN_CODE 77 TIMEOUT 240)

  add_executable(bench_redis ${CMAKE_SOURCE_DIR}/bench/bench_redis.c)
  target_link_libraries(bench_redis PRIVATE kg_export)

  find_program(KG_PYTHON3_FAULT python3)
  if(KG_PYTHON3_FAULT)
    add_test(NAME test_redis_fault
      COMMAND ${KG_PYTHON3_FAULT} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/redis_fault.py
              --driver $<TARGET_FILE:bench_redis>)
    set_tests_properties(test_redis_fault PROPERTIES LABELS redis SKIP_RETURN_CODE 77 TIMEOUT 180)
  endif()
endif()
