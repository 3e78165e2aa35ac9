# Build-and-register helpers shared by every folder.

# om_set_warnings(target): house warning flags, sanitizers and -Werror if asked.
function(om_set_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers>
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${OM_WERROR}>>:-Werror>)
  if(OM_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${OM_SANITIZE} -fno-omit-frame-pointer>)
    target_link_options(${target} PRIVATE -fsanitize=${OM_SANITIZE})
  endif()
endfunction()

# om_add_library(name SOURCES ... DEPS ...): a static library rooted at the repository.
function(om_add_library name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})
  om_set_warnings(${name})
endfunction()

# om_add_test(name SOURCES ... DEPS ... LABELS ... [SKIP_RETURN_CODE n]):
# one gtest binary registered as ONE ctest entry (a whole binary per entry keeps 2-core CI fast).
set(OM_SKIP_RETURN_CODE 77)
function(om_add_test name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE ${A_DEPS} om_test_support GTest::gtest)
  om_set_warnings(${name})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${A_LABELS}" SKIP_RETURN_CODE ${OM_SKIP_RETURN_CODE}
                       ENVIRONMENT "OMP_NUM_THREADS=2")
endfunction()

# om_add_bench(name SOURCES ... DEPS ...): a benchmark binary linking the production kernels.
function(om_add_bench name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE ${A_DEPS} om_bench_harness)
  om_set_warnings(${name})
endfunction()
