# Indicators: the unit test (tests/unit/test_indicators.c) is registered by
# tests/CMakeLists.txt; here, a small run of the scale benchmark (200k
# indicators), so it keeps building and answering right. Label "bench":
# `ctest -L bench`, or `ctest -LE bench` to leave it out.
if(TARGET bench_indicators)
  add_test(NAME bench_indicators_smoke COMMAND bench_indicators -n 200000 -q 50000 -t 2)
  set_tests_properties(bench_indicators_smoke PROPERTIES LABELS bench TIMEOUT 300)
endif()

# Tuning (suppression, severity, thresholds): tests/unit/test_tuning.c, its
# fixtures in tests/data/tuning/; it also reads docs/TUNING.md (every yaml
# example must load) and sensor/pipeline.c (every alert place must be known).
kg_unit_test(test_tuning LIBS kg_indicators)
