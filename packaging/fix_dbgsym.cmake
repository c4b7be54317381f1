# CPack post-build script: CPack 3.25 writes the -dbgsym package's md5sums with build-tree paths and
# gives it no documentation directory. Rebuild it as dh_strip would: md5sums relative to the root,
# and /usr/share/doc/polymur-dbgsym a link to polymur's (its copyright and changelog).
foreach(file IN LISTS CPACK_PACKAGE_FILES)
  if(NOT file MATCHES "-dbgsym_.*\\.ddeb$")
    continue()
  endif()
  set(root ${CPACK_TOPLEVEL_DIRECTORY}/dbgsym-fix)
  file(REMOVE_RECURSE ${root})
  execute_process(COMMAND dpkg-deb -R ${file} ${root} COMMAND_ERROR_IS_FATAL ANY)
  file(MAKE_DIRECTORY ${root}/usr/share/doc)
  file(CREATE_LINK polymur ${root}/usr/share/doc/polymur-dbgsym SYMBOLIC)
  execute_process(COMMAND sh -c "find usr -name '*.debug' -exec chmod 0644 {} + && find usr -type f | LC_ALL=C sort | xargs md5sum > DEBIAN/md5sums"
                  WORKING_DIRECTORY ${root} COMMAND_ERROR_IS_FATAL ANY)
  execute_process(COMMAND dpkg-deb --root-owner-group -Zxz -b ${root} ${file} OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
  file(REMOVE_RECURSE ${root})
endforeach()
