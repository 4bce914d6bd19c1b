# Warnings (STYLE.md B10) and sanitizers, applied to every kiln target through kiln_target().
set(KILN_C_WARNINGS
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wmissing-declarations
  -Wpointer-arith -Wformat=2 -Wformat-nonliteral -Wswitch-enum -Wimplicit-fallthrough -Wvla
  -Wno-missing-field-initializers)
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  list(APPEND KILN_C_WARNINGS -Wjump-misses-init -Werror=jump-misses-init)
endif()
if(KILN_WERROR)
  list(APPEND KILN_C_WARNINGS -Werror)
endif()

if(KILN_SANITIZE)
  add_compile_options(-fsanitize=${KILN_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${KILN_SANITIZE})
endif()

# With fuzzers on, every kiln library gets coverage instrumentation so libFuzzer is not blind to
# the code under test (the fuzzer binaries add the libFuzzer runtime at link time).
if(KILN_BUILD_FUZZERS AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

# kiln_target(TARGET): kiln's warnings, include root and feature macros for one of our own targets.
function(kiln_target tgt)
  target_compile_options(${tgt} PRIVATE ${KILN_C_WARNINGS})
  target_compile_definitions(${tgt} PRIVATE _GNU_SOURCE)
  target_include_directories(${tgt} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/include)
endfunction()

# kiln_unit_test(NAME SOURCES... LIBS ...): one cmocka executable registered with ctest, label unit.
function(kiln_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  kiln_target(${name})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set(labels unit ${T_LABELS})
  set_tests_properties(${name} PROPERTIES LABELS "${labels}" SKIP_RETURN_CODE 77
    ENVIRONMENT "KILN_SOURCE_DIR=${PROJECT_SOURCE_DIR};KILN_SHARED_DIR=${PROJECT_SOURCE_DIR}/../shared")
endfunction()
