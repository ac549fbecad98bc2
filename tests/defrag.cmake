# IPv4/IPv6 fragment reassembly of dissect/ (dissect/defrag.h). Built straight
# from its source so that it does not depend on the rest of dissect/ (nDPI,
# flows) being buildable. Replays ../shared/pcaps/real when present.
add_executable(test_defrag
  ${CMAKE_SOURCE_DIR}/tests/unit/test_defrag.c
  ${CMAKE_SOURCE_DIR}/dissect/defrag.c)
target_include_directories(test_defrag PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
target_link_libraries(test_defrag PRIVATE kg_common)
add_test(NAME test_defrag COMMAND test_defrag)
set_tests_properties(test_defrag PROPERTIES LABELS unit
  ENVIRONMENT "KG_REAL_DIR=${CMAKE_SOURCE_DIR}/../shared/pcaps/real")
