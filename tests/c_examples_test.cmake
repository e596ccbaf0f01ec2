# Runs the C examples (examples/c) as a user would: c_producer appends two records from its
# arguments and two lines from its standard input (built in place with claims) to a new log,
# and c_consumer prints the four with their offsets. Arguments: PRODUCER, CONSUMER, WORK_DIR.
# The log's name has this process's pid (the shell's parent), so parallel runs do not collide.
execute_process(COMMAND sh -c "echo $PPID" OUTPUT_VARIABLE pid OUTPUT_STRIP_TRAILING_WHITESPACE)
set(name "c-example-${pid}")
file(REMOVE /dev/shm/${name})
file(MAKE_DIRECTORY "${WORK_DIR}")
file(WRITE "${WORK_DIR}/lines.txt" "from stdin\nsecond line\n")

function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    file(REMOVE /dev/shm/${name})
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

run_step(${PRODUCER} ${name} "AAPL 189.91" "MSFT 411.2")
execute_process(COMMAND ${PRODUCER} ${name} INPUT_FILE "${WORK_DIR}/lines.txt" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE /dev/shm/${name})
  message(FATAL_ERROR "c_producer with standard input failed (${rc})")
endif()
run_step(${CONSUMER} ${name} 4)
file(REMOVE /dev/shm/${name})
set(expected "0\tAAPL 189.91\n24\tMSFT 411.2\n48\tfrom stdin\n72\tsecond line\n")
if(NOT out STREQUAL expected)
  message(FATAL_ERROR "c_consumer printed:\n${out}\nexpected:\n${expected}")
endif()

# Bad usage is refused with status 2; a log that does not exist, with status 1 and its name.
execute_process(COMMAND ${CONSUMER} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "c_consumer without arguments exited ${rc}, expected 2")
endif()
execute_process(COMMAND ${CONSUMER} ${name} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "${name}")
  message(FATAL_ERROR "c_consumer of a missing log exited ${rc} saying '${err}'")
endif()
message(STATUS "c_producer and c_consumer ran as expected")
