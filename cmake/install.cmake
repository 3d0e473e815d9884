# install.cmake — installs libkp and makes it findable two ways:
#
#   pkg-config:  <libdir>/pkgconfig/libkp.pc        pkg-config --cflags --libs libkp
#   CMake:       <libdir>/cmake/libkp/libkpConfig.cmake, libkpConfigVersion.cmake,
#                libkpTargets*.cmake                   find_package(libkp) -> libkp::kp
#
# Both follow `cmake --install build --prefix /any/where`, whatever
# CMAKE_INSTALL_PREFIX was at configure time (the CMake files are relocatable).
include(CMakePackageConfigHelpers)

set(KP_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/libkp"
    CACHE STRING "Where libkpConfig.cmake is installed, relative to the prefix")
set(KP_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
    CACHE STRING "Where libkp.pc is installed, relative to the prefix")

# Exported include directories must not point into the source or build tree:
# a plain absolute path that src/ declared is wrapped in $<BUILD_INTERFACE:...>
# (so the export stays valid however src/ spells it), and consumers of the
# installed package get <prefix>/include unless src/ already says so.
get_target_property(_kp_incs kp INTERFACE_INCLUDE_DIRECTORIES)
set(_kp_incs_fixed "")
set(_kp_has_install_inc OFF)
if(_kp_incs)
  foreach(_dir IN LISTS _kp_incs)
    if(IS_ABSOLUTE "${_dir}")
      list(APPEND _kp_incs_fixed "$<BUILD_INTERFACE:${_dir}>")
    else()
      list(APPEND _kp_incs_fixed "${_dir}")
      if(_dir MATCHES "^\\$<INSTALL_INTERFACE:")
        set(_kp_has_install_inc ON)
      endif()
    endif()
  endforeach()
endif()
if(NOT _kp_has_install_inc)
  list(APPEND _kp_incs_fixed "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
endif()
set_target_properties(kp PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kp_incs_fixed}")

install(TARGETS kp EXPORT libkpTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
install(FILES "${PROJECT_SOURCE_DIR}/include/kp.h" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

# --- CMake package ---------------------------------------------------------------
# find_dependency(OpenMP) is only needed when OpenMP shows in kp's exported link
# interface (a PUBLIC dependency, or any dependency of a static libkp); a shared
# libkp that links OpenMP privately carries libgomp in its own DT_NEEDED.
get_target_property(_kp_link_iface kp INTERFACE_LINK_LIBRARIES)
get_target_property(_kp_type kp TYPE)
set(KP_CONFIG_NEEDS_OPENMP OFF)
if(_kp_link_iface MATCHES "OpenMP::")
  set(KP_CONFIG_NEEDS_OPENMP ON)
endif()
if(_kp_type STREQUAL "STATIC_LIBRARY")
  get_target_property(_kp_link_all kp LINK_LIBRARIES)
  if(_kp_link_all MATCHES "OpenMP::")
    set(KP_CONFIG_NEEDS_OPENMP ON)
  endif()
endif()

install(EXPORT libkpTargets
  NAMESPACE libkp::
  FILE libkpTargets.cmake
  DESTINATION "${KP_INSTALL_CMAKEDIR}")
configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/libkpConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/libkpConfig.cmake"
  INSTALL_DESTINATION "${KP_INSTALL_CMAKEDIR}")
# Before 1.0 a minor version may break the API: only the same major.minor matches.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/libkpConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMinorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/libkpConfig.cmake"
  "${PROJECT_BINARY_DIR}/libkpConfigVersion.cmake"
  DESTINATION "${KP_INSTALL_CMAKEDIR}")

# --- pkg-config ------------------------------------------------------------------
# The prefix is written at install time, so `cmake --install build --prefix P`
# gives a libkp.pc for P whatever CMAKE_INSTALL_PREFIX was at configure time.
# Absolute CMAKE_INSTALL_LIBDIR / INCLUDEDIR are kept as they are.
set(KP_PC_PREFIX "@KP_INSTALL_PREFIX@") # replaced by install(CODE) below
foreach(_v LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_v}}")
    set(KP_PC_${_v} "${CMAKE_INSTALL_${_v}}")
  else()
    set(KP_PC_${_v} "\${prefix}/${CMAKE_INSTALL_${_v}}")
  endif()
endforeach()

# Libs.private (static linking): SLEEF, libm and the OpenMP runtime. A SLEEF
# outside the linker's default directories gets its -L.
set(KP_PC_LIBS_PRIVATE "")
if(SLEEF_LIBRARY)
  get_filename_component(_sleef_dir "${SLEEF_LIBRARY}" DIRECTORY)
  if(NOT _sleef_dir IN_LIST CMAKE_C_IMPLICIT_LINK_DIRECTORIES)
    string(APPEND KP_PC_LIBS_PRIVATE "-L${_sleef_dir} ")
  endif()
endif()
string(APPEND KP_PC_LIBS_PRIVATE "-lsleef -lnettle -lm")
if(OpenMP_C_FLAGS)
  string(APPEND KP_PC_LIBS_PRIVATE " ${OpenMP_C_FLAGS}")
endif()

configure_file("${CMAKE_CURRENT_LIST_DIR}/libkp.pc.in" "${PROJECT_BINARY_DIR}/libkp.pc.tmpl" @ONLY)
install(CODE "
  file(READ \"${PROJECT_BINARY_DIR}/libkp.pc.tmpl\" _kp_pc)
  string(REPLACE \"@KP_INSTALL_PREFIX@\" \"\${CMAKE_INSTALL_PREFIX}\" _kp_pc \"\${_kp_pc}\")
  file(WRITE \"${PROJECT_BINARY_DIR}/libkp.pc\" \"\${_kp_pc}\")
")
install(FILES "${PROJECT_BINARY_DIR}/libkp.pc" DESTINATION "${KP_INSTALL_PKGCONFIGDIR}")

# --- libkp_mpi, where it was built ---------------------------------------------
# The library and its header. A consumer compiles with mpicc and links -lkp_mpi
# before pkg-config's libkp flags (docs/distributed.md); MPI itself comes from
# the consumer's MPI compiler wrapper, not from libkp's package files.
if(TARGET kp_mpi)
  install(TARGETS kp_mpi
    LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
  install(FILES "${PROJECT_SOURCE_DIR}/include/kp_mpi.h" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
endif()
