# Metadata events ("deep metadata"): DNS answers and HTTP responses
# (dissect_dns.c, dissect_http.c), X.509 summaries (dissect_x509.c),
# Community ID (dissect/community_id.c), GeoIP/ASN enrichment
# (export/enrich_geoip.c) and the event formatters (export/event_meta.c).
# The dissect/ tests are built straight from their sources so that they do
# not depend on the rest of dissect/ (nDPI, flows) being buildable.

add_executable(test_dissect_meta
  ${CMAKE_SOURCE_DIR}/tests/unit/test_dissect_meta.c
  ${CMAKE_SOURCE_DIR}/dissect/dissect_dns.c
  ${CMAKE_SOURCE_DIR}/dissect/dissect_http.c)
target_link_libraries(test_dissect_meta PRIVATE kg_common)
add_test(NAME test_dissect_meta COMMAND test_dissect_meta)
set_tests_properties(test_dissect_meta PROPERTIES LABELS unit)

add_executable(test_community_id
  ${CMAKE_SOURCE_DIR}/tests/unit/test_community_id.c
  ${CMAKE_SOURCE_DIR}/dissect/community_id.c)
target_link_libraries(test_community_id PRIVATE kg_common PkgConfig::OPENSSL Threads::Threads)
add_test(NAME test_community_id COMMAND test_community_id)
set_tests_properties(test_community_id PROPERTIES LABELS unit)
# The same hash checked against every community_id row of the tshark oracle
# of the real captures (../shared/pcaps/real, not shipped): exits 77
# (skipped) when the set is absent.
add_test(NAME test_community_id_real
  COMMAND test_community_id --oracle ${CMAKE_SOURCE_DIR}/../shared/pcaps/real/ORACLE.tsv)
set_tests_properties(test_community_id_real PROPERTIES LABELS real SKIP_RETURN_CODE 77 TIMEOUT 300)

# The X.509 test makes its own certificates with the openssl command-line
# tool (argument 1) and reads pcaps/src/server.der.
find_program(KG_OPENSSL_CLI openssl)
add_executable(test_x509
  ${CMAKE_SOURCE_DIR}/tests/unit/test_x509.c
  ${CMAKE_SOURCE_DIR}/dissect/dissect_x509.c)
target_link_libraries(test_x509 PRIVATE kg_common PkgConfig::OPENSSL)
add_test(NAME test_x509 COMMAND test_x509 ${KG_OPENSSL_CLI} ${CMAKE_SOURCE_DIR}/pcaps/src/server.der)
set_tests_properties(test_x509 PROPERTIES LABELS unit)

kg_unit_test(test_event_meta LIBS kg_export PkgConfig::JANSSON)

# The GeoIP test builds its .mmdb files at run time with
# tests/scripts/make_test_mmdb.pl (Perl, MaxMind::DB::Writer: Debian package
# libmaxmind-db-writer-perl) and exits 77 (skipped) when that is missing.
find_program(KG_PERL perl)
add_executable(test_geoip ${CMAKE_SOURCE_DIR}/tests/unit/test_geoip.c)
target_link_libraries(test_geoip PRIVATE kg_export Threads::Threads)
add_test(NAME test_geoip
  COMMAND test_geoip ${KG_PERL} ${CMAKE_SOURCE_DIR}/tests/scripts/make_test_mmdb.pl)
set_tests_properties(test_geoip PROPERTIES LABELS unit SKIP_RETURN_CODE 77)

# libFuzzer harness for DNS answers, HTTP responses and X.509 summaries
# (clang, -DKG_FUZZ=ON; the option is declared in parsers.cmake and repeated
# here so this fragment stands alone):
#   CC=clang cmake -S . -B build-fuzz -DKG_FUZZ=ON -DKG_SANITIZE=address,undefined
#   cmake --build build-fuzz --target fuzz_dissect_meta
option(KG_FUZZ "Build libFuzzer harnesses (clang only)" OFF)
if(KG_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "KG_FUZZ needs clang: configure with CC=clang")
  endif()
  add_executable(fuzz_dissect_meta
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_dissect_meta.c
    ${CMAKE_SOURCE_DIR}/dissect/dissect_dns.c
    ${CMAKE_SOURCE_DIR}/dissect/dissect_http.c
    ${CMAKE_SOURCE_DIR}/dissect/dissect_x509.c)
  target_compile_options(fuzz_dissect_meta PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_dissect_meta PRIVATE -fsanitize=fuzzer)
  target_link_libraries(fuzz_dissect_meta PRIVATE kg_common PkgConfig::OPENSSL)
  add_test(NAME fuzz_dissect_meta COMMAND fuzz_dissect_meta -runs=300000 -max_len=1024 -seed=1)
  set_tests_properties(fuzz_dissect_meta PROPERTIES LABELS fuzz)
endif()
