# DNS question and HTTP/1.x request parsers of dissect/ (dissect_parsers.h).
# The unit test is built straight from the parser sources so that it does not
# depend on the rest of dissect/ (nDPI, flows) being buildable.
add_executable(test_dissect_parsers
  ${CMAKE_SOURCE_DIR}/tests/unit/test_dissect_parsers.c
  ${CMAKE_SOURCE_DIR}/dissect/dissect_dns.c
  ${CMAKE_SOURCE_DIR}/dissect/dissect_http.c)
target_link_libraries(test_dissect_parsers PRIVATE kg_common)
add_test(NAME test_dissect_parsers COMMAND test_dissect_parsers)
set_tests_properties(test_dissect_parsers PROPERTIES LABELS unit)

# libFuzzer harness: only with clang and -DKG_FUZZ=ON, e.g.
#   CC=clang cmake -S . -B build-fuzz -DKG_FUZZ=ON -DKG_SANITIZE=address,undefined
#   cmake --build build-fuzz --target fuzz_dissect_parsers
# The ctest entry (label fuzz) runs a short, bounded campaign.
option(KG_FUZZ "Build libFuzzer harnesses (clang only)" OFF)
if(KG_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "KG_FUZZ needs clang: configure with CC=clang")
  endif()
  add_executable(fuzz_dissect_parsers
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_dissect_parsers.c
    ${CMAKE_SOURCE_DIR}/dissect/dissect_dns.c
    ${CMAKE_SOURCE_DIR}/dissect/dissect_http.c)
  target_compile_options(fuzz_dissect_parsers PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_dissect_parsers PRIVATE -fsanitize=fuzzer)
  add_test(NAME fuzz_dissect_parsers COMMAND fuzz_dissect_parsers -runs=500000 -max_len=1024 -seed=1)
  set_tests_properties(fuzz_dissect_parsers PROPERTIES LABELS fuzz)
endif()
