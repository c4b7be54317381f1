# Renders one man page: the hand-written prose of TEMPLATE with the option lists produced by the
# built BINARY itself (--man-options, --man-config-options, lookup --man-options), so the pages
# list exactly what --help lists. Writes OUTPUT (roff) and OUTPUT.gz (gzip -9n, reproducible).
#   cmake -DBINARY=... -DTEMPLATE=... -DOUTPUT=... -DVERSION=... -DDATE=... -P render.cmake
foreach(run IN ITEMS "OPTIONS;--man-options" "CONF_OPTIONS;--man-config-options" "LOOKUP_OPTIONS;lookup;--man-options")
  list(POP_FRONT run placeholder)
  execute_process(COMMAND ${BINARY} ${run} OUTPUT_VARIABLE text RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR text STREQUAL "")
    message(FATAL_ERROR "${BINARY} ${run}: exit ${rc}, no option list")
  endif()
  string(STRIP "${text}" ${placeholder})
endforeach()
file(READ ${TEMPLATE} page)
foreach(placeholder IN ITEMS OPTIONS CONF_OPTIONS LOOKUP_OPTIONS VERSION DATE)
  string(REPLACE "@${placeholder}@" "${${placeholder}}" page "${page}")
endforeach()
file(WRITE ${OUTPUT} "${page}")
execute_process(COMMAND gzip -9nc ${OUTPUT} OUTPUT_FILE ${OUTPUT}.gz RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip ${OUTPUT}: exit ${rc}")
endif()
