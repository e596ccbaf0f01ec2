# Installs the build tree into a scratch prefix, then configures, builds and runs an outside
# project that finds shmlog with find_package(shmlog CONFIG) and links shmlog::shmlog.
# Arguments: SOURCE_DIR, BINARY_DIR, WORK_DIR, CXX_COMPILER, SANITIZE; PYTHON and PYTHON_DIR
# (the interpreter and the module's directory under the prefix) if the Python module was built.
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
if(PYTHON)
  file(WRITE "${WORK_DIR}/consumer.py" "
import os
import shmlog
assert shmlog.__file__.startswith('${WORK_DIR}/prefix/'), shmlog.__file__
n = 'shmlog-py-consumer-%d' % os.getpid()
w = shmlog.Writer.create(n, capacity=4096)
r = shmlog.Reader.attach(n, start='oldest')
w.append(b'installed')
got = r.poll()
r.close()
w.close()
shmlog.destroy(n)
assert got == b'installed', got
print('python consumer: ok')
")
  run_step(${CMAKE_COMMAND} -E env "PYTHONPATH=${WORK_DIR}/prefix/${PYTHON_DIR}" ${PYTHON}
    "${WORK_DIR}/consumer.py")
endif()
message(STATUS "outside project built against ${WORK_DIR}/prefix and ran")
