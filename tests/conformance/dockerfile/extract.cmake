# cmake -DTARBALL=... -DOUT=... -DMEMBERS=a;b -P extract.cmake
# Extract MEMBERS of TARBALL under OUT. A missing tarball is not an error: the lexer test that
# depends on this then reports a skip.
if(NOT EXISTS "${TARBALL}")
  message(STATUS "skip: ${TARBALL} not found")
  return()
endif()
file(MAKE_DIRECTORY "${OUT}")
execute_process(COMMAND ${CMAKE_COMMAND} -E tar xzf "${TARBALL}" ${MEMBERS}
  WORKING_DIRECTORY "${OUT}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "extracting ${MEMBERS} from ${TARBALL} failed: ${rc}")
endif()
