# Installs the build tree into a scratch prefix, then configures, builds and runs an outside
# project that finds shmlog with find_package(shmlog CONFIG) and links shmlog::shmlog.
# Arguments: SOURCE_DIR, BINARY_DIR, WORK_DIR, CXX_COMPILER, SANITIZE.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(run_step)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
endfunction()

run_step(${CMAKE_COMMAND} --install "${BINARY_DIR}" --prefix "${WORK_DIR}/prefix")

# A sanitized library needs the same runtime in whatever links it.
set(flags "")
if(SANITIZE STREQUAL "address")
  set(flags "-fsanitize=address,undefined")
elseif(SANITIZE STREQUAL "thread")
  set(flags "-fsanitize=thread")
endif()

run_step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/install_consumer/project" -B "${WORK_DIR}/build"
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
  "-DCMAKE_C_FLAGS=${flags}"
  -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  "-DCMAKE_CXX_FLAGS=${flags}"
  "-DCMAKE_EXE_LINKER_FLAGS=${flags}")
run_step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run_step("${WORK_DIR}/build/consumer")
run_step("${WORK_DIR}/build/c_consumer")
message(STATUS "outside project built against ${WORK_DIR}/prefix and ran")
