# Installation and the Debian package (`make deb`): the systemd units, the
# group, the folders, the default configuration, the man pages (scdoc) and
# the bash completion; CPack's DEB generator ships them with liid and
# liictl. Included last by the top-level CMakeLists.txt, once the targets
# exist.

# Paths the system manager reads, whatever the installation prefix.
pkg_get_variable(LII_SYSTEMD_UNITDIR systemd systemdsystemunitdir)
pkg_get_variable(LII_SYSUSERSDIR systemd sysusersdir)
pkg_get_variable(LII_TMPFILESDIR systemd tmpfilesdir)
if(NOT LII_SYSTEMD_UNITDIR)
  set(LII_SYSTEMD_UNITDIR /lib/systemd/system)
endif()
if(NOT LII_SYSUSERSDIR)
  set(LII_SYSUSERSDIR /usr/lib/sysusers.d)
endif()
if(NOT LII_TMPFILESDIR)
  set(LII_TMPFILESDIR /usr/lib/tmpfiles.d)
endif()

# Reproducible builds: one commit gives the same bytes whatever folder it
# is built in and whenever. The compiler records no build paths in what is
# shipped, and every date (man pages, the package's files) is the commit's.
foreach(target liiproto liidcore liid liictl liictl-verify liictl-publish)
  target_compile_options(${target} PRIVATE
    -ffile-prefix-map=${CMAKE_SOURCE_DIR}=.
    -ffile-prefix-map=${CMAKE_BINARY_DIR}=.)
endforeach()
set(LII_SOURCE_DATE_EPOCH_FILE ${CMAKE_BINARY_DIR}/source-date-epoch)
add_custom_target(lii_source_date_epoch ALL
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${CMAKE_SOURCE_DIR}
          -DOUTPUT=${LII_SOURCE_DATE_EPOCH_FILE} -P ${CMAKE_SOURCE_DIR}/cmake/source-date-epoch.cmake
  BYPRODUCTS ${LII_SOURCE_DATE_EPOCH_FILE}
  COMMENT "Taking SOURCE_DATE_EPOCH from the git commit"
  VERBATIM)

# Man pages, from scdoc sources, compressed as Debian ships them.
find_program(SCDOC scdoc)
set(LII_MAN_PAGES liid.8 liictl.1 liid.conf.5 lii-desired-state.5)
if(SCDOC)
  set(man_outputs)
  foreach(page ${LII_MAN_PAGES})
    string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
    set(src ${CMAKE_SOURCE_DIR}/packaging/man/${page}.scd)
    set(out ${CMAKE_BINARY_DIR}/man/${page}.gz)
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND sh -c "SOURCE_DATE_EPOCH=$(cat \"$0\") \"$1\" < \"$2\" > \"$3.tmp\" && gzip -9n < \"$3.tmp\" > \"$3\" && rm \"$3.tmp\""
              ${LII_SOURCE_DATE_EPOCH_FILE} ${SCDOC} ${src} ${out}
      DEPENDS ${src} ${LII_SOURCE_DATE_EPOCH_FILE}
      COMMENT "Building man page ${page}"
      VERBATIM)
    list(APPEND man_outputs ${out})
    install(FILES ${out} DESTINATION share/man/man${section})
  endforeach()
  add_custom_target(lii_man ALL DEPENDS ${man_outputs})
  add_dependencies(lii_man lii_source_date_epoch)
else()
  message(WARNING "scdoc not found: the man pages are not built (run 'make deps')")
endif()

# The unit names liid where this installation puts it; the rest of the
# system files go where systemd and Debian look for them, whatever the
# prefix. ${CMAKE_INSTALL_PREFIX} is read when installing, as CPack
# installs with its own.
install(CODE "
  set(LII_SBINDIR \"\${CMAKE_INSTALL_PREFIX}/sbin\")
  configure_file(\"${CMAKE_SOURCE_DIR}/packaging/liid.service.in\"
                 \"${CMAKE_BINARY_DIR}/packaging/liid.service\" @ONLY)")
install(FILES ${CMAKE_BINARY_DIR}/packaging/liid.service packaging/liid.socket
        DESTINATION ${LII_SYSTEMD_UNITDIR})
install(FILES packaging/sysusers.d/lii.conf DESTINATION ${LII_SYSUSERSDIR})
install(FILES packaging/tmpfiles.d/lii.conf DESTINATION ${LII_TMPFILESDIR})
install(FILES packaging/sysctl.d/50-lii.conf DESTINATION /usr/lib/sysctl.d)
install(FILES packaging/liid.conf DESTINATION /etc/lii)
install(DIRECTORY DESTINATION /etc/lii/keys/desired.d)
install(DIRECTORY DESTINATION /etc/lii/keys/artifact.d)
# The glob makes the build notice when the completion appears or goes.
file(GLOB LII_BASH_COMPLETION CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/packaging/liictl.bash-completion)
if(LII_BASH_COMPLETION)
  install(FILES ${LII_BASH_COMPLETION}
          DESTINATION share/bash-completion/completions RENAME liictl)
endif()

# The Debian package. `make deb` (the `deb` target) runs CPack with the
# commit's SOURCE_DATE_EPOCH; LII_DEB_VERSION overrides the version.
set(LII_DEB_VERSION "${PROJECT_VERSION}" CACHE STRING "Version of the Debian package")
set(LII_DEB_MAINTAINER "lii maintainers <lii@localhost>" CACHE STRING
    "Maintainer field of the Debian package")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME lii)
set(CPACK_PACKAGE_VERSION ${LII_DEB_VERSION})
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/deb)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
# /etc and the systemd folders are absolute destinations: CPack installs
# with DESTDIR so that they land in the package, not on the build host.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "node agent that deploys services by replacement")
# CPack puts the summary first; paragraphs are separated by an empty line.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
  "lii (Lean Immutable Infrastructure) makes every deployment on a host a
replacement. liid watches a signed desired-state document; when a service
changes it fetches the new artifact, verifies its minisign signature and
hash, unpacks it read-only into a content-addressed store, starts it as a
fresh sandboxed transient systemd unit beside the running one, checks its
health, and only then retires the old instance.

liictl asks a host what it runs and drives liid over its local socket.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${LII_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# liid manages units of the system manager, through the system bus.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd, default-dbus-system-bus | dbus-system-bus")
# minisign signs documents; etcdctl (etcd-client) looks into a fleet's
# etcd, where liictl publish writes.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "minisign, etcd-client")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles
  ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
  ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
  ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
include(CPack)

add_custom_target(deb
  COMMAND sh -c "SOURCE_DATE_EPOCH=$(cat \"$0\") exec \"$1\" -G DEB --config \"$2\""
          ${LII_SOURCE_DATE_EPOCH_FILE} ${CMAKE_CPACK_COMMAND} ${CMAKE_BINARY_DIR}/CPackConfig.cmake
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
  COMMENT "Building the Debian package in ${CMAKE_BINARY_DIR}/deb"
  VERBATIM)
add_dependencies(deb liid liictl lii_source_date_epoch)
if(TARGET lii_man)
  add_dependencies(deb lii_man)
endif()
