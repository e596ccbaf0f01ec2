# Installs the build tree into a scratch prefix, then builds and runs an outside program against
# it in each way a user may link shmlog, and checks what each binary needs at run time:
#   cmake-static  find_package(shmlog CONFIG), shmlog::shmlog: no libshmlog.so needed
#   cmake-shared  find_package(shmlog CONFIG), shmlog::shmlog_shared: needs SONAME, from the prefix
#   pc-shared     pkg-config --cflags --libs shmlog: -lshmlog takes the .so (as on Debian)
#   pc-static     pkg-config --static --libs shmlog, with the archive named (-l:libshmlog.a)
# The shared variants run only if the build has the shared library (SHMLOG_BUILD_SHARED).
# Arguments: SOURCE_DIR, BINARY_DIR, WORK_DIR, CXX_COMPILER, SANITIZE, LIBDIR (relative to the
# prefix), SHARED (ON/OFF), SONAME, VERSION (the project's), READELF; PYTHON and PYTHON_DIR
# (the interpreter and the module's directory under the prefix) if the Python module was built.
# The CMake variants also build and run the C API's consumer (main.c).
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# run_step(<command...>): runs it; fails the test with its output unless it exits 0. Its
# standard output is left in `step_output` for the caller.
function(run_step)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  string(STRIP "${out}" out)
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix "${WORK_DIR}/prefix")
set(libdir "${prefix}/${LIBDIR}")
run_step(${CMAKE_COMMAND} --install "${BINARY_DIR}" --prefix "${prefix}")

# A sanitized library needs the same runtime in whatever links it.
set(flags "")
if(SANITIZE STREQUAL "address")
  set(flags "-fsanitize=address,undefined")
elseif(SANITIZE STREQUAL "thread")
  set(flags "-fsanitize=thread")
endif()

# check_needs(<binary> <YES|NO>): whether the binary's dynamic section needs SONAME, and if so,
# that the dynamic loader finds it in the prefix (with LD_LIBRARY_PATH as the caller runs it).
function(check_needs binary needed)
  run_step(${READELF} -d "${binary}")
  string(FIND "${step_output}" "Shared library: [${SONAME}]" at)
  if(needed AND at EQUAL -1)
    message(FATAL_ERROR "${binary} does not need ${SONAME}:\n${step_output}")
  elseif(NOT needed AND NOT at EQUAL -1)
    message(FATAL_ERROR "${binary} needs ${SONAME} although linked statically:\n${step_output}")
  endif()
  if(NOT needed AND step_output MATCHES "libshmlog")
    message(FATAL_ERROR "${binary} needs a libshmlog although linked statically:\n${step_output}")
  endif()
  if(needed)
    # ldd runs the loader: it must resolve SONAME to the prefix's copy, the only one there is.
    run_step(${CMAKE_COMMAND} -E env "LD_LIBRARY_PATH=${libdir}" ldd "${binary}")
    if(NOT step_output MATCHES "${SONAME} => ${libdir}/${SONAME}")
      message(FATAL_ERROR "${binary}: ${SONAME} is not loaded from ${libdir}:\n${step_output}")
    endif()
  endif()
endfunction()

# find_package(shmlog CONFIG): the static library, then the shared one.
set(cmake_variants cmake-static shmlog::shmlog NO)
if(SHARED)
  list(APPEND cmake_variants cmake-shared shmlog::shmlog_shared YES)
endif()
while(cmake_variants)
  list(POP_FRONT cmake_variants variant target needed)
  set(build "${WORK_DIR}/${variant}")
  run_step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/install_consumer/project" -B "${build}"
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
    -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DSHMLOG_TARGET=${target}
    -DSHMLOG_EXPECT_VERSION=${VERSION}
    "-DCMAKE_C_FLAGS=${flags}"
    "-DCMAKE_CXX_FLAGS=${flags}"
    "-DCMAKE_EXE_LINKER_FLAGS=${flags}")
  run_step(${CMAKE_COMMAND} --build "${build}")
  check_needs("${build}/consumer" ${needed})
  # CMake gives the shared variant an RPATH to the prefix's lib dir, as it does for any
  # imported shared library: it runs as built.
  run_step("${build}/consumer")
  message(STATUS "${variant}: ${step_output}")
  check_needs("${build}/c_consumer" ${needed})
  run_step("${build}/c_consumer")
endwhile()

# pkg-config: the installed shmlog.pc.
set(pkg_config ${CMAKE_COMMAND} -E env "PKG_CONFIG_PATH=${libdir}/pkgconfig" pkg-config)
run_step(${pkg_config} --modversion shmlog)
if(NOT step_output STREQUAL VERSION)
  message(FATAL_ERROR "pkg-config --modversion shmlog says '${step_output}', the project ${VERSION}")
endif()
run_step(${pkg_config} --cflags shmlog)
separate_arguments(cflags UNIX_COMMAND "${step_output}")

set(pc_variants "")
if(SHARED)
  run_step(${pkg_config} --libs shmlog)
  list(APPEND pc_variants "pc-shared|YES|${step_output}")
endif()
# --static adds what the archive needs (-lhiredis, -pthread). -lshmlog would still take the
# .so where both are installed, as for any library: naming the archive is the user's choice
# (docs/operations.md, "Installing").
run_step(${pkg_config} --static --libs shmlog)
string(REGEX REPLACE "(^| )-lshmlog( |$)" "\\1-l:libshmlog.a\\2" static_libs "${step_output}")
list(APPEND pc_variants "pc-static|NO|${static_libs}")
separate_arguments(sanitize_flags UNIX_COMMAND "${flags}")
foreach(entry IN LISTS pc_variants)
  string(REPLACE "|" ";" entry "${entry}")
  list(GET entry 0 variant)
  list(GET entry 1 needed)
  list(GET entry 2 libs)
  separate_arguments(libs UNIX_COMMAND "${libs}")
  set(binary "${WORK_DIR}/${variant}/consumer")
  file(MAKE_DIRECTORY "${WORK_DIR}/${variant}")
  run_step(${CXX_COMPILER} -std=c++20 ${sanitize_flags} ${cflags}
    "-DSHMLOG_FOUND_VERSION=\"${VERSION}\""
    "${SOURCE_DIR}/tests/install_consumer/project/main.cc" -o "${binary}" ${libs})
  check_needs("${binary}" ${needed})
  # No RPATH here: the loader finds the library through LD_LIBRARY_PATH, as for a prefix the
  # system's loader configuration does not list.
  run_step(${CMAKE_COMMAND} -E env "LD_LIBRARY_PATH=${libdir}" "${binary}")
  message(STATUS "${variant}: ${step_output}")
endforeach()
if(PYTHON)
  file(WRITE "${WORK_DIR}/consumer.py" "
import os
import shmlog
assert shmlog.__file__.startswith('${prefix}/'), shmlog.__file__
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
  run_step(${CMAKE_COMMAND} -E env "PYTHONPATH=${prefix}/${PYTHON_DIR}" ${PYTHON}
    "${WORK_DIR}/consumer.py")
endif()
message(STATUS "outside projects built against ${prefix} and ran")
