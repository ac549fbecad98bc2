# TLS ClientHello (JA3, JA4), server-certificate locator and QUIC Initial
# decryption of dissect/ (dissect_tls.c, dissect_quic.c; dissect_parsers.h).
# Built straight from the sources so that the tests do not depend on the
# rest of dissect/ (nDPI, flows) being buildable.
add_executable(test_dissect_tls
  ${CMAKE_SOURCE_DIR}/tests/unit/test_dissect_tls.c
  ${CMAKE_SOURCE_DIR}/dissect/dissect_tls.c
  ${CMAKE_SOURCE_DIR}/dissect/dissect_quic.c)
target_link_libraries(test_dissect_tls PRIVATE kg_common PkgConfig::OPENSSL)
add_test(NAME test_dissect_tls COMMAND test_dissect_tls)
set_tests_properties(test_dissect_tls PROPERTIES LABELS unit)

# Real third-party captures (../shared/pcaps/real, not shipped with the
# repository): test_tls_real prints SNI/JA3/JA4 for every ClientHello and
# QUIC Initial it finds, ja_oracle.py compares them with ORACLE.tsv and
# requires >= 98 % agreement on the rows the tool could see. The script
# exits 77 (skipped) when the capture set is absent.
add_executable(test_tls_real
  ${CMAKE_SOURCE_DIR}/tests/unit/test_tls_real.c
  ${CMAKE_SOURCE_DIR}/dissect/dissect_tls.c
  ${CMAKE_SOURCE_DIR}/dissect/dissect_quic.c)
target_link_libraries(test_tls_real PRIVATE kg_common PkgConfig::OPENSSL PkgConfig::PCAP)
find_program(KG_PYTHON3 python3)
if(KG_PYTHON3)
  add_test(NAME test_tls_real
    COMMAND ${KG_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/ja_oracle.py
            --tool $<TARGET_FILE:test_tls_real>
            --real-dir ${CMAKE_SOURCE_DIR}/../shared/pcaps/real)
  set_tests_properties(test_tls_real PROPERTIES
    LABELS real
    SKIP_RETURN_CODE 77
    TIMEOUT 300)
endif()

# libFuzzer harness (clang, -DKG_FUZZ=ON; the option is declared in
# parsers.cmake and repeated here so this fragment stands alone):
#   CC=clang cmake -S . -B build-fuzz -DKG_FUZZ=ON -DKG_SANITIZE=address,undefined
#   cmake --build build-fuzz --target fuzz_tls_quic
option(KG_FUZZ "Build libFuzzer harnesses (clang only)" OFF)
if(KG_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "KG_FUZZ needs clang: configure with CC=clang")
  endif()
  add_executable(fuzz_tls_quic
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_tls_quic.c
    ${CMAKE_SOURCE_DIR}/dissect/dissect_tls.c
    ${CMAKE_SOURCE_DIR}/dissect/dissect_quic.c)
  target_include_directories(fuzz_tls_quic PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
  target_compile_options(fuzz_tls_quic PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_tls_quic PRIVATE -fsanitize=fuzzer)
  target_link_libraries(fuzz_tls_quic PRIVATE kg_common PkgConfig::OPENSSL)
  add_test(NAME fuzz_tls_quic COMMAND fuzz_tls_quic -runs=300000 -max_len=2048 -seed=1)
  set_tests_properties(fuzz_tls_quic PROPERTIES LABELS fuzz)
endif()
