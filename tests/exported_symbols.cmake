# Fails unless libshmlog.so exports the public API only (docs/design.md, "The shared library
# and its symbols"), and has the SONAME the project version gives it.
# Arguments: LIBRARY (the built libshmlog.so), NM, READELF, SONAME (expected).
#
# Every dynamic symbol the library defines must be one of:
#   - a function or static member in namespace shmlog (the C++ API of the installed headers),
#     whose qualified name has no detail:: part, no ::impl (the classes behind the pimpls), is
#     not in shmlog::remote (the private headers of replication/remote/) and has nothing of
#     Boost;
#   - the vtable, typeinfo or typeinfo name of a class in namespace shmlog;
#   - an extern "C" function named shmlog_* (the C API).
# Anything else (the standard library's or Boost's templates instantiated in the library, a
# private header's function) is reported by name and fails the test.
foreach(arg LIBRARY NM READELF SONAME)
  if(NOT ${arg})
    message(FATAL_ERROR "exported_symbols.cmake needs -D${arg}=...")
  endif()
endforeach()

execute_process(COMMAND ${NM} -D --defined-only -C "${LIBRARY}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} -D --defined-only -C ${LIBRARY} failed (${rc}): ${err}")
endif()

# One symbol a line; a ';' in a demangled name would split it, so none may be taken for a list
# separator.
string(REPLACE ";" "<semicolon>" out "${out}")
string(REPLACE "\n" ";" lines "${out}")
set(count 0)
set(bad "")
set(names "")
foreach(line IN LISTS lines)
  if(line STREQUAL "")
    continue()
  endif()
  if(NOT line MATCHES "^[0-9a-f]+ [A-Za-z] (.+)$")
    list(APPEND bad "unparsed nm line: ${line}")
    continue()
  endif()
  set(name "${CMAKE_MATCH_1}")
  math(EXPR count "${count} + 1")
  list(APPEND names "${name}")
  if(name MATCHES "^shmlog_[A-Za-z0-9_]*$")
    continue()  # the C API
  endif()
  set(entity "${name}")
  if(entity MATCHES "^(typeinfo name for|typeinfo for|vtable for) (.+)$")
    set(entity "${CMAKE_MATCH_2}")
  endif()
  # The qualified name is what comes before the parameter list; the parameters may name any
  # type (std::string_view, shmlog::reader::impl behind a private constructor's unique_ptr).
  string(FIND "${entity}" "(" paren)
  if(paren GREATER -1)
    string(SUBSTRING "${entity}" 0 ${paren} entity)
  endif()
  # A function template's demangled name starts with its return type ("shmlog::poll_result
  # std::f<...>"): drop template arguments, innermost first, then what precedes the last space.
  set(previous "")
  while(NOT entity STREQUAL previous)
    set(previous "${entity}")
    string(REGEX REPLACE "<[^<>]*>" "" entity "${entity}")
  endwhile()
  string(REGEX REPLACE "^.* " "" entity "${entity}")
  if(NOT entity MATCHES "^shmlog::")
    list(APPEND bad "not in namespace shmlog: ${name}")
  elseif(entity MATCHES "^shmlog::remote::|detail::|::impl(::|$)|boost::")
    list(APPEND bad "internal: ${name}")
  endif()
endforeach()

# The check above passes a library that exports nothing: these must be there too, as a sample of
# each header the consumers of the shared library need (and shmlog::error's typeinfo, without
# which a catch in the consumer might not match what the library throws).
set(required
  "^shmlog::writer::create\\("
  "^shmlog::writer::open_or_create\\("
  "^shmlog::writer::append\\("
  "^shmlog::reader::attach\\("
  "^shmlog::reader::poll_copy\\("
  "^shmlog::inspect\\("
  "^shmlog::list_logs\\("
  "^shmlog::service_notifier::"
  "^shmlog_writer_create$"
  "^shmlog_reader_poll_copy$"
  "^shmlog::destroy\\("
  "^shmlog::snapshot_service::snapshot_service\\("
  "^shmlog::replica::catch_up\\("
  "^shmlog::open_producer\\("
  "^shmlog::run_replica_daemon\\("
  "^shmlog::run_shipper\\("
  "^shmlog::to_string\\(shmlog::errc\\)"
  "^typeinfo for shmlog::error$")
foreach(pattern IN LISTS required)
  set(found OFF)
  foreach(name IN LISTS names)
    if(name MATCHES "${pattern}")
      set(found ON)
      break()
    endif()
  endforeach()
  if(NOT found)
    list(APPEND bad "missing: no exported symbol matches ${pattern}")
  endif()
endforeach()

execute_process(COMMAND ${READELF} -d "${LIBRARY}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE dynamic ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${READELF} -d ${LIBRARY} failed (${rc}): ${err}")
endif()
if(NOT dynamic MATCHES "Library soname: \\[([^]]*)\\]")
  list(APPEND bad "no SONAME")
elseif(NOT CMAKE_MATCH_1 STREQUAL SONAME)
  list(APPEND bad "SONAME is ${CMAKE_MATCH_1}, expected ${SONAME}")
endif()

list(LENGTH bad bad_count)
if(bad_count GREATER 0)
  string(REPLACE ";" "\n  " bad_text "${bad}")
  string(REPLACE "<semicolon>" ";" bad_text "${bad_text}")
  message(FATAL_ERROR
    "${LIBRARY}: ${bad_count} problem(s) among ${count} exported symbols:\n  ${bad_text}")
endif()
message(STATUS "${LIBRARY}: ${count} exported symbols, all public API; SONAME ${SONAME}")
